/* bev: how cutover drives libevent bufferevents on the data path, shared by
 * the client side (conn) and the upstream side (httpclient): one budget per
 * direction, reads past libevent's 4 KiB cap, writes in the same loop
 * round, timeouts given in seconds. */
#ifndef CUTOVER_BEV_H
#define CUTOVER_BEV_H

#include <stddef.h>

struct bufferevent;

/* Reading stops once CAP bytes wait in the input, the peer is refilled once
 * its output fell to half, and a write may move up to CAP bytes (libevent's
 * default is 16 KiB). */
void bev_set_budget(struct bufferevent *bev, size_t cap);

/* Reads on directly until WANT bytes wait in the input (plain sockets only).
 * Call it only right after moving bytes to the other side: that move
 * guarantees a write callback, which consumes what was read here. */
void bev_read_more(struct bufferevent *bev, size_t want);

/* Runs the write callback in this loop round when output waits, so that an
 * answer that fits in the socket costs no epoll_ctl arm/disarm pair. */
void bev_write_soon(struct bufferevent *bev);

/* Read and write timeouts in seconds; 0 = none. */
void bev_set_timeouts(struct bufferevent *bev, double read, double write);

#endif
