/*
 * The watchdog runtime: probes the master (SOA over UDP and TCP, every zone)
 * and every nameserver (SOA over UDP) once per master.interval, feeds each
 * round to the detector (detector.h), and acts on its decisions:
 *   PROMOTE   run hooks.pre_promote (a non-zero exit vetoes), then the
 *             promotion pipeline (failover.h) with this round's probe results,
 *             then hooks.post_promote;
 *   STEPDOWN  stop serving the DR set (drdns_stepdown_start), then
 *             hooks.post_demote;
 *   alerts    logged, and hooks.on_alert run once per raised alert.
 * It also keeps, for status and metrics, the last round's results: master
 * health, each secondary's serial and lag (in serial and in seconds), and each
 * zone's deadline (time left before a secondary may drop it).
 */
#ifndef DRDNS_WATCHDOG_H
#define DRDNS_WATCHDOG_H

#include <jansson.h>
#include <stdbool.h>

struct drdns_ctx;
struct drdns_watchdog;

/* Called after every round with a one-line summary (for sd_notify STATUS=). */
typedef void (*drdns_watchdog_round_cb)(const char *summary, void *arg);

/* Start probing ctx's master and nameservers.  Reads the pause switch, the last
 * promotion time and the master contact memory from ctx->state.  Returns 0 and
 * *out, or an error. */
int drdns_watchdog_start(struct drdns_ctx *ctx, drdns_watchdog_round_cb round_cb, void *arg,
                         struct drdns_watchdog **out);

/* Stop probing and free wd (rounds and hooks in flight finish on their own and
 * act on nothing).  NULL is fine. */
void drdns_watchdog_stop(struct drdns_watchdog *wd);

/* ctx->conf was replaced (reload): take the new thresholds and targets, and
 * reload the DR zone set's names.  Streaks and memory are kept. */
int drdns_watchdog_reconf(struct drdns_watchdog *wd);

/* drdnsctl pause / resume: persisted in state.json (who and why recorded).
 * Returns 0, or an error with a message in err (nothing changed). */
int drdns_watchdog_set_paused(struct drdns_watchdog *wd, bool paused, const char *reason,
                              const char *who, char *err, size_t errlen);

/* drdnsctl ack ID --reason: acknowledge an alert of the alert book (alerts.h)
 * and persist it in state.json.  Returns 0, or an error with a message in err
 * (an unknown id lists the active ones; nothing changed). */
int drdns_watchdog_ack(struct drdns_watchdog *wd, const char *id, const char *who,
                       const char *reason, char *err, size_t errlen);

/* The watchdog's view for drdnsctl status ("watchdog" object): state, paused,
 * streaks, outage start, active alerts, per-zone deadline and seconds left,
 * per-secondary serial/lag, last round time.  New reference. */
json_t *drdns_watchdog_status(const struct drdns_watchdog *wd);

/* Prometheus text for /metrics (caller frees). */
char *drdns_watchdog_metrics(const struct drdns_watchdog *wd);

#endif
