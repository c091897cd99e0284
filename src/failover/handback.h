/*
 * The hand-back relay's first half (see failover.h, drdns_stepdown_start):
 * fetch every DR zone from the campus master by AXFR and check each copy
 * before anything changes.  Private to src/failover.
 *
 * The transfers run in libuv's thread pool, at most DRDNS_HANDBACK_PARALLEL
 * at once (the pool has 4 threads by default and the server renders its
 * transfer caches there too), from controller.address to master.address:port,
 * TSIG-signed with master.tsig_key when configured (every response message
 * verified, see axfr.h), each bounded by master.axfr_timeout.  A copy passes
 * when the transfer completed (SOA ... SOA), its SOA is the zone asked for,
 * every record is inside the zone and of class IN, the apex has NS records,
 * and its serial is above the serial drdns published (RFC 1982).
 *
 * Shutdown: when ctx->server goes away (drdnsd's SIGTERM closes it) the
 * transfers still running are cancelled within DRDNS_AXFR_CANCEL_MS and the
 * result is a failure ("drdnsd is stopping").
 */
#ifndef DRDNS_FAILOVER_HANDBACK_H
#define DRDNS_FAILOVER_HANDBACK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct drdns_ctx;
struct drdns_zoneset;

#define DRDNS_HANDBACK_PARALLEL 3

struct drdns_handback_zone {
	const char *zone;   /* "example.edu." (copied) */
	uint32_t dr_serial; /* what drdns publishes: the copy must be above it */
};

/*
 * Called once on the loop, never before drdns_handback_fetch returns:
 *   copies: every zone's campus copy, sorted by name (ownership passes), or
 *           NULL when any zone failed;
 *   report: [{zone, dr_serial, campus_serial (or null), records (or null), ok,
 *             detail}] in the order given (reference stolen; may be NULL on out
 *           of memory);
 *   error:  NULL when every copy passed, else "zone: why" for the first zone
 *           that failed, followed by the others on their own lines (valid
 *           during the call only).
 */
typedef void (*drdns_handback_cb)(struct drdns_zoneset *copies, json_t *report, const char *error,
                                  void *arg);

/* Start the fetches (everything needed is copied from ctx->conf now, so a
 * reload cannot pull anything away).  Returns 0, or DRDNS_ENOMEM /
 * DRDNS_EINVAL (no zones) and cb is never called. */
int drdns_handback_fetch(struct drdns_ctx *ctx, const struct drdns_handback_zone *zones, size_t n,
                         drdns_handback_cb cb, void *arg);

#endif
