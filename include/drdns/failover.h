/*
 * The controller's operations, as the daemon runs them.
 *
 * Promotion, step by step (each step repeatable; see DESIGN.md):
 *   1. load and validate the whole DR zone set (all or nothing);
 *   2. probe the master and every nameserver for every zone's SOA;
 *      refuse (exit 4) if the master gives any DNS answer, unless --force;
 *   3. rewrite every zone (NS, MNAME, serial, TTLs);  --dry-run stops here;
 *   4. write the set as a new generation and read it back, then commit
 *      state.json (the commit point), then swap it into the server;
 *   5. NOTIFY every live secondary and poll until each serves the new serials
 *      or --wait runs out.
 * A promote while promoted publishes nothing new: it re-sends NOTIFY and
 * re-checks convergence (no second serial bump).
 */
#ifndef DRDNS_FAILOVER_H
#define DRDNS_FAILOVER_H

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

#include "drdns/ctl.h"
#include "drdns/notify.h"

struct drdns_conf;
struct drdns_state;
struct drdns_server;
struct drdns_watchdog;
struct drdns_soa_result;

/* Everything the daemon's operations share.  Owned by the daemon's main. */
struct drdns_ctx {
	uv_loop_t *loop;
	struct drdns_conf *conf;
	struct drdns_state *state;
	struct drdns_server *server;
	bool busy;                       /* a promotion or step-down is running */
	struct drdns_watchdog *watchdog; /* or NULL (tests) */
	/* unix time the hand-back window closes at the latest while a step-down
	 * relays the campus copies (drdns_server_handback_zones), else 0.  Not
	 * persisted: after a restart drdnsd is standby and answers REFUSED. */
	double handback_until;
};

/* Called once with the reply for the control client (reference stolen) and the
 * exit code (also in reply["exit"]). */
typedef void (*drdns_op_done_cb)(json_t *reply, void *arg);

/* Refused transfers in the reports: every convergence watch (promote, demote,
 * step-down, resign, drill) names the refused transfer that explains a
 * secondary that did not converge (notify.h, drdns_converge_result.refused),
 * read from ctx->server's refusal record with ctx->conf (both read at each use,
 * so a reload is seen).  drdnsd calls this once; NULL unsets it (tests). */
void drdns_failover_watch_refusals(struct drdns_ctx *ctx);

struct drdns_xfr_explained;
/* drdns_xfr_explain over ctx->server's refusals after since (0: all kept). */
bool drdns_failover_explain(const struct drdns_ctx *ctx, uint64_t since, const char *peer_name,
                            const char *const *zones, size_t n_zones,
                            struct drdns_xfr_explained *out);

struct drdns_promote_opts {
	const char *reason; /* required, copied */
	bool dry_run;
	bool force;        /* planned switchover: promote although the master answers */
	double wait;       /* seconds to wait for convergence; < 0: policy.default_wait */
	const json_t *who; /* who asked (borrowed, copied into the audit record) */
	/* Probe results to use instead of probing again (the watchdog's round, taken
	 * just now): what drdns_probe_soa returns for drdns_nameservers_targets()
	 * over the DR set on disk.  Copied.  When they do not match the targets
	 * (zones-dr/ changed meanwhile), promote probes afresh.  May be NULL. */
	const struct drdns_soa_result *probes;
	size_t n_probes;
};

/* Start a promotion.  Returns 0 and calls done later, or returns an error (then
 * done is never called): DRDNS_EBUSY when one is already running. */
int drdns_promote_start(struct drdns_ctx *ctx, const struct drdns_promote_opts *opts,
                        drdns_op_done_cb done, void *arg);

/*
 * Re-sign while promoted: drdns's signatures must never age out while it is
 * the primary.  The watchdog starts this when the earliest signature served
 * expires within dnssec.refresh; drdnsctl resign asks for it.  Takes the set
 * being served; every zone with keys gets the next serial (above the
 * published one and every serial a nameserver serves or was seen serving) and
 * fresh signatures; zones without keys stay as they are.  Then, as for a
 * promotion: key continuity against what the nameservers publish now (a
 * changed key set is refused with exit 4 unless force), a new generation
 * committed (the role, the promotion's time, reason and who are kept), the
 * server swapped, NOTIFY and convergence (--wait).  Reply as promote's with
 * "command": "resign" and zones[] {zone, old_serial, new_serial, dnssec}.
 * Exit 1 when no zone has keys.  Returns 0 and calls done later, or
 * DRDNS_ESTATE (not promoted) / DRDNS_EBUSY / DRDNS_ENOMEM.
 */
struct drdns_resign_opts {
	const char *reason; /* copied */
	bool dry_run;
	bool force;        /* publish although the DNSKEY set differs from the nameservers' */
	double wait;       /* < 0: policy.default_wait */
	const json_t *who; /* borrowed */
};
int drdns_resign_start(struct drdns_ctx *ctx, const struct drdns_resign_opts *opts,
                       drdns_op_done_cb done, void *arg);

/* Probe the master and every secondary now and report (see ctl.h for the shape). */
int drdns_status_start(struct drdns_ctx *ctx, drdns_op_done_cb done, void *arg);

/* At start-up when state says promoted: NOTIFY the secondaries again (the
 * promotion may have been interrupted after its commit point). Fire and forget. */
void drdns_promote_resume_notify(struct drdns_ctx *ctx);

/*
 * Step down: stop serving the DR set and return to standby, through the
 * hand-back relay.  The watchdog does this once the master is back and ahead
 * of the DR serial on every zone; drdnsctl demote does it after checking the
 * same.
 *   1. Fetch every published zone from the campus master by AXFR (thread
 *      pool, a few at once, TSIG with master.tsig_key when configured) and
 *      check each copy (handback.h: complete, the zone asked for, apex NS,
 *      serial above the DR serial).  Any failure: done gets exit 1 naming the
 *      zone and why, and nothing changed (still promoted, the same set served,
 *      state.json untouched); audit record result "error".  dry_run stops
 *      here with exit 0 and the copies' report (no audit record).
 *   2. Commit state.json (promoted = false; the published serials are
 *      remembered as seen, so a later promotion goes above them), audit-log.
 *   3. Serve the campus copies exactly as they are from the server's
 *      hand-back slot (drdns_server_set_handback) instead of the DR set, so a
 *      secondary that asks only drdns (PowerDNS asks the NOTIFY's sender; a
 *      BIND listing drdns first that missed the campus NOTIFY) gets the
 *      campus data; NOTIFY the peers with the copies' serials and poll each
 *      until it serves them (or newer), for wait seconds (policy.default_wait
 *      when wait <= 0).
 *   4. When every peer converged or the wait ran out, stop serving the
 *      copies (REFUSED again).
 * The window is not persisted: a crash or restart in it leaves drdnsd standby
 * (REFUSED); the secondaries still find the campus primary.  done gets the
 * reply: exit 0, or 3 when wait > 0 and a peer did not converge; reply
 * "handback": {zones: [...], seconds, closed}.  done never runs before
 * drdns_stepdown_start returns 0.  Returns DRDNS_EBUSY when an operation runs,
 * DRDNS_ESTATE when not promoted (or no server), DRDNS_ENOMEM (then nothing
 * changed and done is never called).
 */
struct drdns_stepdown_opts {
	const char *action; /* "stepdown" (watchdog) or "demote" (operator): audit, reply */
	const char *reason;
	const json_t *who;                              /* borrowed (copied) */
	const struct drdns_zone_serial *master_serials; /* per zone (copied): audit */
	size_t n_serials;
	const struct drdns_xfr_peer *peers; /* copied; NULL: every configured secondary */
	size_t n_peers;
	double wait;  /* > 0: watch convergence this long; exit 3 if not all converge */
	bool dry_run; /* fetch and check the campus copies only */
};
int drdns_stepdown_start(struct drdns_ctx *ctx, const struct drdns_stepdown_opts *opts,
                         drdns_op_done_cb done, void *arg);

/* drdnsctl demote (see README "Failing back"). */
struct drdns_demote_opts {
	const char *reason; /* required, copied */
	bool dry_run;
	double wait;       /* < 0: policy.default_wait */
	const json_t *who; /* borrowed */
};
/* Returns 0 and calls done (at once when not promoted: exit 0, nothing to do),
 * or DRDNS_EBUSY / an error (done never called). */
int drdns_demote_start(struct drdns_ctx *ctx, const struct drdns_demote_opts *opts,
                       drdns_op_done_cb done, void *arg);

/*
 * drdnsctl check: read-only.  Loads and validates the DR set on disk (all or
 * nothing), runs the advisory checks (checks.h), and for every zone fetches
 * the campus zone from the master by AXFR (from controller.address,
 * TSIG-signed with master.tsig_key where configured, in libuv's thread pool
 * so the loop never blocks) to report what the DR set leaves out.  Reply:
 *   {"exit": 0 (valid; warnings do not fail) | 1 (invalid DR set or error),
 *    "command": "check",
 *    "dr_set": {"directory": D, "valid": bool, "errors": ["file:line: ..."]},
 *    "warnings": ["file: zone Z: ..."],
 *    "zones": [{"zone": Z, "records": N,               (DR records, SOA included)
 *               "publishes_self": bool  (the DR file lists controller.ns_name in
 *                                        its NS set: a promotion publishes drdnsd
 *                                        as a public nameserver of Z),
 *               "campus": {"fetched": bool, "serial": S, "records": M,
 *                          "detail": why not fetched (when !fetched; serial,
 *                                    records, left_out, dr_only are null then),
 *                          "left_out": {"names": n, "rrsets": n, "records": n,
 *                                       "examples": ["name TYPE", ... up to 10]},
 *                          "dr_only": {same shape: in the DR set, not on campus}}}],
 *    "message": one line}
 * Returns 0 and calls done later (never before returning), or an error
 * (DRDNS_EBUSY: a check is running; one at a time).  See check.c for the
 * time limits and what a shutdown does to a running check. */
int drdns_check_start(struct drdns_ctx *ctx, drdns_op_done_cb done, void *arg);

/*
 * drdnsctl drill (see README "DR drills").  Only while standby.
 *
 * Pre-flight, always, read-only: the DR set loads and validates; every
 * nameserver is probed for every zone; the promotion plan (the same one
 * promote --dry-run --force would show) succeeds, so the serial plan is safe;
 * NS that would be dropped are warnings, NS kept only for min_ns although
 * silent fail; every configured secondary that is not on_campus answers for
 * every zone; DNSSEC: the keys load and key continuity holds (continuity.h);
 * the master answers for the drill zone.  Any failure: exit 4, nothing
 * changed.
 *
 * Live drill, when a drill zone is configured (drill.zone) or given, unless
 * preflight_only.  With S the master's serial of the drill zone, drdns serves
 * only the drill zone (every other zone stays REFUSED) in three steps, using
 * RFC 1982 arithmetic so the secondaries end up following the campus again
 * without anyone touching the campus primary:
 *   1. promote: the DR copy at S + T (T = floor(2^32/3)), NOTIFY, watch each
 *      off-campus secondary (on_campus ones would be dark in a disaster);
 *   2. return:  the same data at S + 2T (greater than S + T, and lower than S
 *      by T + 1), NOTIFY, watch;
 *   3. release: the hand-back relay (handback.h): fetch the drill zone's
 *      campus copy by AXFR (master.tsig_key) and check it (serial above
 *      S + 2T), serve it in the hand-back slot in place of the drill zone,
 *      NOTIFY with its serial, watch each secondary come back to it, then
 *      answer REFUSED.  A failed fetch: REFUSED at once, the secondaries come
 *      back by their own refresh; the reply's "release" ({relay, detail,
 *      copy}), a warning and the message say so; not a failure by itself.
 * Then production zones are probed again: every secondary must still serve
 * the serial it served before, or the master's current one.  The drill holds
 * the controller busy (promote, demote and the watchdog wait for it) and is
 * not persisted: a drill cut short by a restart leaves secondaries on S + T or
 * S + 2T of the drill zone only (any two of the three serials are less than
 * 2^31 apart, so a real promotion still finds a serial).  The next drill
 * takes every off-campus secondary through all three steps whatever it
 * serves, which brings such leftovers back, but a secondary that did not start
 * below S + T skipped a step: that drill ends with exit 3 ("run the drill
 * again"), and the next one is a full test.  A step a secondary misses does
 * not drop it: the later steps still NOTIFY and watch it.
 * Exit 0 pass, 3 a secondary did not converge or return, a production serial
 * moved (or a secondary answering before no longer answers), or an error
 * after something was served; 4 pre-flight failed (nothing changed); 1 error
 * before anything was served.
 */
struct drdns_drill_opts {
	const char *zone;    /* NULL: conf drill.zone (may be NULL: pre-flight only) */
	bool preflight_only; /* stop after the pre-flight */
	double wait;         /* per step; < 0: policy.default_wait */
	const char *reason;  /* may be NULL ("drill"); copied, audit-logged */
	const json_t *who;   /* borrowed */
};
int drdns_drill_start(struct drdns_ctx *ctx, const struct drdns_drill_opts *opts,
                      drdns_op_done_cb done, void *arg);

/* Who asked, as one line for state.json and logs: "watchdog controller=ID", or
 * "uid=N user=... sudo_user=... ssh_client=..." from a who object as drdnsd
 * builds it.  Caller frees; NULL on out of memory. */
char *drdns_who_text(const json_t *who);

/* A reply object {"exit":code, "command":command, "error":message}. */
json_t *drdns_error_reply(const char *command, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
