/* dispatch: from a parsed request head to its action. cutover's own health
 * answer first; then the route, the project's registry entry (counted
 * once), and the action the scope's mode picks: forward to old or new
 * (through admission), the maintenance answer, or parking while the scope
 * is on hold. A request released from the hold or an admission queue
 * comes back here with its routing intact and reads the mode again. */
#ifndef CUTOVER_DISPATCH_H
#define CUTOVER_DISPATCH_H

struct conn_env;
struct request;

/* conn_env.dispatch */
void dispatch_request(struct request *r);
/* The modes changed: parked requests whose scope left hold go on. */
void dispatch_state_changed(struct conn_env *env);

#endif
