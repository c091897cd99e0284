/*
 * The alert book: alerts that nag until a person acknowledges them.
 *
 * An alert exists while its condition holds.  When it is first held it is
 * raised: on_alert runs at once, then again every conf.repeat seconds while
 * nobody has acknowledged it (drdnsctl ack ID --reason TEXT, which records who
 * and why).  When on_alert has been repeated conf.escalate_after times without
 * an acknowledgement, on_escalate runs as well (once per alert).  An
 * acknowledged alert is silent, but stays listed (with who acknowledged it)
 * until its condition ends; then it is cleared, and the next time the
 * condition holds it is a new alert that needs a new acknowledgement.
 *
 * Ids are stable strings chosen by the caller, one per condition and
 * severity, e.g. "rrsig:example.edu:3d": when things get worse the caller
 * holds a new id (the old one is cleared), so a worse condition is never
 * covered by the acknowledgement of a milder one.  Ids are compared exactly.
 *
 * Pure: no I/O, no clock.  The caller passes the time, so unit tests drive it
 * with simulated time.  The watchdog calls drdns_alertbook_sync() once per
 * probe round with every condition that holds now, and turns the actions into
 * hook runs and log lines.
 */
#ifndef DRDNS_ALERTS_H
#define DRDNS_ALERTS_H

#include <stdbool.h>
#include <stddef.h>

#define DRDNS_ALERT_ID_MAX 200 /* longest id accepted (bytes, without the NUL) */

struct drdns_alertbook_conf {
	double repeat;           /* seconds between on_alert runs while unacknowledged, > 0 */
	unsigned escalate_after; /* repeats (runs after the first) before on_escalate; 0: never */
};

struct drdns_alert {
	char *id;         /* owned */
	char *message;    /* owned: the latest text held */
	double raised_at; /* when the condition was first held */
	double last_sent; /* last on_alert run */
	unsigned sent;    /* on_alert runs so far (1 after the raise) */
	bool escalated;   /* on_escalate has run */
	bool acked;       /* acknowledged: no more runs */
	char *acked_by;   /* owned, when acked */
	char *ack_reason; /* owned, when acked */
	double acked_at;  /* when acked */
	bool restored;    /* restored from state.json, not yet held by a sync */
};

struct drdns_alertbook {
	struct drdns_alertbook_conf conf;
	struct drdns_alert *alerts; /* n, owned, sorted by id (strcmp) */
	size_t n;
};

/* A condition that holds now (both strings borrowed for the call). */
struct drdns_alert_cond {
	const char *id;
	const char *message;
};

enum drdns_alert_action_kind {
	DRDNS_ALERT_RUN,      /* run on_alert (first time: repeat == 0) */
	DRDNS_ALERT_ESCALATE, /* run on_escalate */
	DRDNS_ALERT_CLEARED,  /* the condition ended; the alert is gone */
};

struct drdns_alert_action {
	enum drdns_alert_action_kind kind;
	char *id;        /* owned (drdns_alert_actions_free) */
	char *message;   /* owned: the alert's latest message */
	unsigned repeat; /* RUN: 0 for the raise, then 1, 2, ...; ESCALATE: the repeats
	                  * seen; CLEARED: 0 */
	bool acked;      /* CLEARED: it had been acknowledged */
};

void drdns_alertbook_init(struct drdns_alertbook *b, const struct drdns_alertbook_conf *conf);
void drdns_alertbook_free(struct drdns_alertbook *b); /* what b owns, not b */
/* New repeat / escalate_after (reload); alerts and their counts are kept. */
void drdns_alertbook_set_conf(struct drdns_alertbook *b, const struct drdns_alertbook_conf *conf);

/*
 * The conditions that hold at `now` (n may be 0; ids must be distinct, non
 * empty and at most DRDNS_ALERT_ID_MAX bytes: others are skipped).  Every
 * alert not in conds is cleared; every cond not yet in the book is raised;
 * messages are updated.  Actions, in id order (an alert's RUN before its
 * ESCALATE; CLEARED ones first):
 *   CLEARED   for each alert that is gone (a restored one too);
 *   RUN       for each new alert (repeat 0), and for each unacknowledged
 *             alert whose last run is at least conf.repeat ago
 *             (now - last_sent >= repeat); a restored, unacknowledged alert
 *             that is held again counts its runs on from what was restored;
 *   ESCALATE  with the RUN whose repeat count reaches conf.escalate_after
 *             (escalate_after > 0), once per alert, never when acknowledged.
 * A restored alert that is held again keeps raised_at, sent, escalated and
 * its acknowledgement.
 * Returns 0 and *out (caller frees with drdns_alert_actions_free; NULL when
 * *n_out == 0), or DRDNS_ENOMEM (the book is unchanged then).
 */
int drdns_alertbook_sync(struct drdns_alertbook *b, const struct drdns_alert_cond *conds, size_t n,
                         double now, struct drdns_alert_action **out, size_t *n_out);

void drdns_alert_actions_free(struct drdns_alert_action *a, size_t n);

/*
 * drdnsctl ack: acknowledge alert id.  who and reason are required (non-empty;
 * copied).  Acknowledging an acknowledged alert again replaces who, reason and
 * the time.  Returns 0; DRDNS_EINVAL with err "no active alert ID (active: a,
 * b, c)" (or "... (none is active)") when id is not in the book, or "who and
 * reason are required"; or DRDNS_ENOMEM.  err may be NULL.
 */
int drdns_alertbook_ack(struct drdns_alertbook *b, const char *id, const char *who,
                        const char *reason, double now, char *err, size_t errlen);

/* The alert with this id, or NULL. */
const struct drdns_alert *drdns_alertbook_find(const struct drdns_alertbook *b, const char *id);

/*
 * Restore an alert from state.json at start-up (so a restart neither repeats
 * the raise nor forgets an acknowledgement).  acked_by/ack_reason may be NULL
 * when not acked.  The alert is marked restored; the first sync that does not
 * hold it clears it.  An id already in the book is replaced.  Returns 0,
 * DRDNS_EINVAL (bad id) or DRDNS_ENOMEM.
 */
int drdns_alertbook_restore(struct drdns_alertbook *b, const struct drdns_alert *a);

#endif
