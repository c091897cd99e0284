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
};

/* Called once with the reply for the control client (reference stolen) and the
 * exit code (also in reply["exit"]). */
typedef void (*drdns_op_done_cb)(json_t *reply, void *arg);

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

/* Probe the master and every secondary now and report (see ctl.h for the shape). */
int drdns_status_start(struct drdns_ctx *ctx, drdns_op_done_cb done, void *arg);

/* At start-up when state says promoted: NOTIFY the secondaries again (the
 * promotion may have been interrupted after its commit point). Fire and forget. */
void drdns_promote_resume_notify(struct drdns_ctx *ctx);

/*
 * Step down: stop serving the DR set and return to standby.  The watchdog
 * does this once the master is back and ahead of the DR serial on every zone
 * (the secondaries fail back by themselves then); drdnsctl demote does it
 * after checking the same.  Commits state.json (promoted = false; the
 * published serials are remembered as seen, so a later promotion goes above
 * them), installs nothing in the server (REFUSED again, so BIND secondaries
 * that list drdns first move on to the campus primary), audit-logs, and
 * NOTIFYs the peers with the master's serials so each re-checks its primaries
 * now; with wait > 0 it also polls each peer until it serves the master's
 * serials, at the same time.  done gets the reply (exit 0, or 3 when a peer
 * did not converge); it may run before drdns_stepdown_start returns.  Returns
 * DRDNS_EBUSY when an operation runs, DRDNS_ESTATE when not promoted, or a
 * save error (then nothing changed).
 */
struct drdns_stepdown_opts {
	const char *action; /* "stepdown" (watchdog) or "demote" (operator): audit, reply */
	const char *reason;
	const json_t *who;                              /* borrowed */
	const struct drdns_zone_serial *master_serials; /* per zone (copied) */
	size_t n_serials;
	const struct drdns_xfr_peer *peers; /* copied; NULL: every configured secondary */
	size_t n_peers;
	double wait; /* > 0: watch convergence this long */
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

/* Who asked, as one line for state.json and logs: "watchdog controller=ID", or
 * "uid=N user=... sudo_user=... ssh_client=..." from a who object as drdnsd
 * builds it.  Caller frees; NULL on out of memory. */
char *drdns_who_text(const json_t *who);

/* A reply object {"exit":code, "command":command, "error":message}. */
json_t *drdns_error_reply(const char *command, int exit_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
