/*
 * The watchdog's failure detector and state machine.  Pure: no I/O, no clock of
 * its own.  The runtime (src/watchdog/watchdog.c) feeds it one probe round at a
 * time, with the time it was taken, and acts on the decision it returns; unit
 * tests feed it simulated rounds and times.
 *
 * States (enum drdns_wd_state):
 *   NORMAL       standby; the master answers.
 *   SUSPECT      standby; the master has been silent for 1..fail_after-1 rounds.
 *   MASTER_DOWN  standby; silent for fail_after rounds or more (or silent, then
 *                answering for fewer than recover_after rounds), while a majority
 *                of the configured secondaries still answers: the fault is on
 *                the campus side.
 *   ISOLATED     standby; the master is silent AND fewer than a majority of the
 *                secondaries answer: the fault is most likely on this host's
 *                side.  Never promotes; raises an alert.
 *   PROMOTING    a promotion is in flight (automatic or drdnsctl promote).
 *   PROMOTED     this controller is the primary (state.json says so).
 *   DEMOTING     a step-down is in flight.
 * Pausing is a flag, not a state: a paused watchdog keeps detecting and
 * reporting (an operator who paused for maintenance still needs to see
 * MASTER_DOWN), it only never acts.
 *
 * "Silent" means no DNS response of any kind over UDP or TCP for any zone
 * (timeouts, network errors).  A master that answers at all, even REFUSED or
 * not authoritatively or over one transport only, is alive ("degraded"): a
 * promotion would be refused then anyway (two primaries), so the detector never
 * asks for one.
 *
 * Expiry guard: a secondary resets its EXPIRE timer at each successful refresh
 * and refreshes at least every REFRESH seconds, so its last contact with the
 * master was at least last_ok - REFRESH, where last_ok is the last time this
 * controller saw the master answer the zone.  The earliest moment a secondary
 * may drop the zone is therefore  last_ok - REFRESH + EXPIRE  (the "deadline").
 * A signed zone also goes dark when its signatures expire: when drdns could
 * re-sign it (it holds the keys), the earliest RRSIG expiration served counts
 * as a deadline too (round_zone.rrsig_dark), whichever comes first.
 * The watchdog promotes no later than expire_margin before the earliest
 * deadline, even when promote_after would wait longer.
 */
#ifndef DRDNS_DETECTOR_H
#define DRDNS_DETECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum drdns_wd_state {
	DRDNS_WD_NORMAL,
	DRDNS_WD_SUSPECT,
	DRDNS_WD_MASTER_DOWN,
	DRDNS_WD_ISOLATED,
	DRDNS_WD_PROMOTING,
	DRDNS_WD_PROMOTED,
	DRDNS_WD_DEMOTING,
};
const char *drdns_wd_state_name(enum drdns_wd_state s); /* "NORMAL", ... */

/* The master's answer to one round, per zone. */
enum drdns_master_answer {
	DRDNS_MASTER_SILENT,   /* no DNS response on UDP nor TCP */
	DRDNS_MASTER_DEGRADED, /* some DNS response, but not an authoritative SOA on both */
	DRDNS_MASTER_OK,       /* authoritative SOA over UDP and over TCP */
};

struct drdns_detector_conf {
	int fail_after;              /* silent rounds before MASTER_DOWN (>= 1) */
	int recover_after;           /* answering rounds before MASTER_DOWN -> NORMAL and
	                              * before a step-down (>= 1) */
	bool auto_promote;           /* may promote on its own */
	bool auto_demote;            /* may step down once the master is ahead, without
	                              * waiting for the secondaries to follow it */
	double promote_after;        /* seconds of continuous silence before promoting */
	double expire_margin;        /* promote at the latest this long before a deadline */
	double block_after_failover; /* no automatic promotion this long after one */
	double retry_after;          /* after a failed automatic promotion, wait this long
	                              * before the next attempt (doubled each time, capped
	                              * at 16x) */
};

struct drdns_round_zone {
	const char *zone; /* borrowed for the call */
	enum drdns_master_answer master;
	uint32_t master_serial; /* valid when master == OK */
	uint32_t expire;        /* the master's SOA EXPIRE and REFRESH, valid when OK or
	                         * contact */
	uint32_t refresh;
	/* the master served an authoritative SOA for the zone over at least one
	 * transport (implied by OK): the secondaries can refresh, so last_ok moves
	 * on even while the master is DEGRADED (TCP filtered from here, say) */
	bool contact;
	bool has_published;        /* promoted: the serial drdns publishes for the zone */
	uint32_t published_serial; /* valid when has_published */
	/* every answering secondary that carries the zone serves master_serial or
	 * newer (only meaningful when master == OK) */
	bool secondaries_at_master;
	/* the earliest RRSIG expiration the nameservers serve for the zone (unix
	 * time, expiry.h), when drdns holds keys and could sign it after a
	 * promotion; 0: none.  It counts for the deadline like the EXPIRE. */
	double rrsig_dark;
};

struct drdns_round {
	double now; /* unix time the round was taken (seconds, fraction allowed) */
	const struct drdns_round_zone *zones;
	size_t n_zones;
	size_t secondaries_total;    /* configured secondaries */
	size_t secondaries_answered; /* those that gave any DNS response this round */
	bool promoted;               /* state.json says this controller is the primary */
	bool busy;                   /* a promotion or step-down is in flight */
	double last_promotion_at;    /* unix time of the last committed promotion, 0: never */
};

enum drdns_wd_action {
	DRDNS_WD_NONE,
	DRDNS_WD_PROMOTE,  /* start an automatic promotion (run pre_promote first) */
	DRDNS_WD_STEPDOWN, /* the master is ahead: stop serving the DR set */
};

/* Alerts are raised once when their condition starts (edge-triggered: bit k of
 * decision.raised) and stay in detector.active (bit k, text in alert_msg[k])
 * while it lasts.  MANUAL_NEEDED, PAUSED_WHILE_DOWN and BLOCKED hold as soon as
 * the state is MASTER_DOWN (the operator must know now, not after
 * promote_after). */
enum drdns_alert_kind {
	DRDNS_ALERT_MASTER_DOWN,       /* the master is down (no automatic action yet) */
	DRDNS_ALERT_ISOLATED,          /* this controller seems cut off */
	DRDNS_ALERT_MASTER_DEGRADED,   /* the master answers, but not cleanly */
	DRDNS_ALERT_MANUAL_NEEDED,     /* down and auto_promote is off */
	DRDNS_ALERT_PAUSED_WHILE_DOWN, /* down, and the watchdog is paused */
	DRDNS_ALERT_BLOCKED,           /* down, within block_after_failover */
	DRDNS_ALERT_EXPIRY,            /* a deadline is within expire_margin */
	DRDNS_ALERT_PROMOTE_FAILED,    /* an automatic promotion failed; retrying later */
	DRDNS_ALERT_MASTER_RETURNED,   /* promoted, and the master answers again */
	DRDNS_ALERT_MASTER_AHEAD,      /* promoted, the master serves newer serials */
	DRDNS_ALERT_N
};
const char *drdns_alert_kind_name(enum drdns_alert_kind k); /* "master_down", ... */

#define DRDNS_DETECTOR_MSG 512
#define DRDNS_CONTACT_SAVE 300.0 /* persist last_ok at least this often */

struct drdns_decision {
	enum drdns_wd_action action;
	char reason[DRDNS_DETECTOR_MSG]; /* for PROMOTE/STEPDOWN: one line, for the audit */
	unsigned raised;                 /* bit (1u << kind): alerts raised by this round */
	bool state_changed;              /* state differs from before the round */
	bool contact_changed;            /* a zone's last_ok/expire/refresh changed in a way
	                                  * worth persisting (first OK answer, changed timers,
	                                  * first silent round after OK ones, and every
	                                  * DRDNS_CONTACT_SAVE seconds of progress) */
};

struct drdns_detector_zone {
	char *zone;      /* owned */
	double last_ok;  /* last round the master served its SOA (round_zone.contact),
	                  * unix time; 0: never */
	uint32_t expire; /* from the master's SOA, 0: unknown */
	uint32_t refresh;
	bool ok_last_round; /* the master answered it OK in the previous round */
	bool current;       /* the zone was in the last round (only those count for the
	                     * deadline: a zone removed from zones-dr/ must not) */
	double reported_ok; /* last_ok when contact_changed last reported it */
	double rrsig_dark;  /* from the last round (drdns_round_zone.rrsig_dark) */
};

struct drdns_detector {
	struct drdns_detector_conf conf;
	enum drdns_wd_state state;
	bool paused;
	int fail_streak;   /* consecutive silent rounds */
	int ok_streak;     /* consecutive answering rounds */
	int ahead_streak;  /* promoted: consecutive rounds with the master ahead everywhere */
	double down_since; /* first silent round of the current streak */
	double retry_at;   /* no automatic promotion before this (after a failure) */
	int failures;      /* consecutive failed automatic promotions */
	double last_round; /* time of the last round */
	unsigned active;   /* bit (1u << kind): alerts whose condition holds */
	char alert_msg[DRDNS_ALERT_N][DRDNS_DETECTOR_MSG]; /* text of each active alert */
	struct drdns_detector_zone *zones;                 /* n_zones, owned */
	size_t n_zones;
	bool promote_in_flight;  /* PROMOTE returned, promotion_done not yet called */
	bool stepdown_in_flight; /* STEPDOWN returned; cleared by stepdown_done or by a
	                          * promoted round that is not busy */
};

/* Initialise d (zeroed by the caller or not).  Starts NORMAL, not paused. */
void drdns_detector_init(struct drdns_detector *d, const struct drdns_detector_conf *conf);
void drdns_detector_free(struct drdns_detector *d); /* frees what d owns, not d */

/* Take a new configuration (SIGHUP); streaks and memory are kept. */
void drdns_detector_set_conf(struct drdns_detector *d, const struct drdns_detector_conf *conf);

/* Restore what was persisted about a zone's master contact (at start-up).  A
 * newer last_ok already known wins. */
int drdns_detector_restore_zone(struct drdns_detector *d, const char *zone, double last_ok,
                                uint32_t expire, uint32_t refresh);

void drdns_detector_set_paused(struct drdns_detector *d, bool paused);

/* Feed one round; fills *out.  The caller acts on out->action and reports the
 * alerts in out->raised.  A round with no zones carries no information and
 * changes nothing.  While promoted the state is PROMOTED (also while busy with
 * an operator's repeated promote), or DEMOTING after a STEPDOWN until a round
 * that is not busy.  Automatic promotion is allowed again from
 * last_promotion_at + block_after_failover on (inclusive). */
void drdns_detector_round(struct drdns_detector *d, const struct drdns_round *r,
                          struct drdns_decision *out);

/* The outcome of a PROMOTE the caller started (or vetoed through pre_promote:
 * committed = false).  committed: the promotion reached its commit point.
 * Until this is called no further PROMOTE is returned (state PROMOTING).  A
 * failure makes the next round raise ALERT_PROMOTE_FAILED (again, even if it
 * was raised before) and holds automatic promotion for retry_after. */
void drdns_detector_promotion_done(struct drdns_detector *d, double now, bool committed);

/* The caller did not start the PROMOTE after all (the master answered again,
 * the watchdog was paused, auto_promote was switched off, or an operator's
 * promotion was running while pre_promote ran): no failure is counted. */
void drdns_detector_promotion_abandoned(struct drdns_detector *d);

/* The outcome of a STEPDOWN the caller started.  done: the controller is
 * standby now. */
void drdns_detector_stepdown_done(struct drdns_detector *d, double now, bool done);

/* The earliest deadline over the zones of the last round (see above), 0 when
 * none is known;
 * *zone (may be NULL) is set to the zone it belongs to (borrowed). */
double drdns_detector_deadline(const struct drdns_detector *d, const char **zone);
/* The deadline of one zone (the earlier of EXPIRE and rrsig_dark), 0 when
 * unknown. */
double drdns_detector_zone_deadline(const struct drdns_detector *d, const char *zone);
/* The EXPIRE part alone: last_ok - REFRESH + EXPIRE, 0 when unknown. */
double drdns_detector_zone_expire_deadline(const struct drdns_detector *d, const char *zone);

#endif
