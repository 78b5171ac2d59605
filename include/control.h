/* control: the operator's actions (switch, maintenance, hold, resume,
 * scheduled switches) and the status they are judged by. Each action is
 * validated, preflighted when it sends traffic somewhere new, applied
 * through the state module (persisted, then published), journaled, and
 * answered once the scope's old upstream has drained. Runs on the control
 * thread; admin.c is its HTTP face. */
#ifndef CUTOVER_CONTROL_H
#define CUTOVER_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

struct config;
struct event_base;
struct spool_store;
struct worker;

struct control;

/* Answers an action: STATUS is the HTTP status the admin API sends,
 * ANSWER the JSON body (the callee's to decref). */
typedef void (*control_done_fn)(void *arg, int status, json_t *answer);

/* What a reload needs of the config wiring (config.h), which belongs to
 * the entry layer: main.c hands it over, so control does not depend on it. */
struct control_config_ops {
	/* Loads and validates PATH; NULL after printing every error to ERRS. */
	struct config *(*load)(const char *path, FILE *errs);
	void (*free)(struct config *cfg);
	/* The first key from RUNNING to NEXT that needs a restart, or NULL. */
	const char *(*restart_needed)(const struct config *running, const struct config *next);
};

/* OPS must outlive the control (a static table); SPOOL (NULL: no
 * spool.dir) too: status reads its totals, the replay will drive it. */
struct control *control_new(struct event_base *base, struct config *cfg,
			    const struct control_config_ops *ops, struct worker **workers,
			    int n_workers, struct spool_store *spool, char *why, size_t why_len);
void control_free(struct control *ctl);

/* ACTION is "switch", "maintenance", "hold" or "resume"; BODY its JSON
 * request (see admin.h); WHO the operator for the journal. DONE may be
 * called before this returns. */
void control_act(struct control *ctl, const char *action, json_t *body, const char *who,
		 control_done_fn done, void *arg);
/* Cancels scheduled switch ID: 200, or 404 if there is none. */
int control_cancel(struct control *ctl, long id, const char *who, json_t **answer);

/* Re-reads the config file: validated fully first; refused (400 with every
 * FILE:LINE error, or 409 when a key that needs a restart changed) without
 * touching the running one; else handed to every worker, whose connections
 * take it at their next request. Returns the HTTP status. */
int control_reload(struct control *ctl, const char *who, json_t **answer);

/* The status answer (see admin.h); NULL when out of memory. */
json_t *control_status(struct control *ctl);
/* GET /metrics: the Prometheus exposition appended to OUT; 0 or -1 (out of
 * memory: OUT holds a part). */
struct evbuffer;
int control_metrics(struct control *ctl, struct evbuffer *out);
/* The store (NULL: no spool.dir), for the admin's spool endpoints. */
struct spool_store *control_spool(struct control *ctl);
/* Appends ENTRY (taken) to the journal: an operator's spool action. */
void control_journal_append(struct control *ctl, json_t *entry);
/* The config in force (the latest reload's). */
const struct config *control_config(const struct control *ctl);
/* The last N journal entries: 200, or 500 when the journal cannot be read. */
int control_journal(struct control *ctl, size_t n, json_t **answer);

#endif
