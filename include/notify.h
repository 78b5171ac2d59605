/* notify: systemd's service notifications (sd_notify) for a Type=notify
 * unit: ready once cutover serves, reloading, stopping. Every call is a
 * no-op when NOTIFY_SOCKET is unset (not started by systemd). */
#ifndef CUTOVER_NOTIFY_H
#define CUTOVER_NOTIFY_H

/* Each returns > 0 when the message was sent, 0 when there is nobody to
 * tell (no NOTIFY_SOCKET), or a negative errno when sending failed. STATUS
 * is a one-line text systemctl status shows (a line end is cut there). */

/* READY=1 with STATUS and MAINPID: the listeners and the admin socket
 * accept and the workers run. Also ends a reload. */
int notify_ready(const char *status);
/* RELOADING=1 (with MONOTONIC_USEC, as systemd 253+ wants): a reload
 * started; notify_ready() ends it, whatever its outcome. */
int notify_reloading(void);
/* STOPPING=1 with STATUS: a graceful stop began (draining). */
int notify_stopping(const char *status);

#endif
