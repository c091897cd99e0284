/*
 * The DR primary: a small authoritative server for the DR zone set, on
 * controller.address:port over UDP and TCP (libuv).
 *
 * While no zone set is installed (not promoted) every query is answered
 * REFUSED at once, so secondaries that list drdns first move on to the campus
 * primary without waiting.  Once a set is installed it answers:
 *   - SOA (UDP and TCP) for the apex of a served zone, AA set;
 *   - AXFR over TCP: SOA, every record, SOA, in as many messages as needed
 *     (name compression, two-byte length framing), each written only after
 *     the previous one left, so large zones never block the loop and many
 *     transfers run at once.  Each installed zone's transfer is rendered to
 *     wire once, in libuv's thread pool; transfers copy the cached messages
 *     (patching id and question) and build messages one by one only until
 *     that cache is ready;
 *   - IXFR: answered AXFR-style over TCP; over UDP with the SOA only (RFC 1995
 *     "use TCP");
 *   - NOTIFY: acknowledged (NOERROR, no action);
 *   - REFUSED for zones it does not serve; NOTIMP for other opcodes;
 *     FORMERR for malformed requests that can be answered; garbage is dropped.
 * Transfers (AXFR/IXFR) are allowed:
 *   - when TSIG-signed with the key of a configured secondary (response signed,
 *     multi-message per RFC 8945); a bad signature gets NOTAUTH;
 *   - unsigned only from the address (or a transfer_sources entry) of a
 *     secondary that has no key, or from an address or prefix in
 *     controller.allow_transfer (include/drdns/xfr_acl.h).  Everything else is
 *     REFUSED, and noted in a small record of refused transfers that the
 *     convergence reports and status explain (drdns_server_refusals).
 * Other queries for a served zone get a complete authoritative answer, the
 * same as NSD 4.6 gives for the zone (src/server/answer.c: referrals with
 * glue, DS from the parent side, CNAME chains, wildcards, additional
 * addresses, minimal ANY, DNSSEC records and proofs with DO, truncation),
 * from a per-zone index built once per installed set (src/server/zindex.c;
 * zones above 50,000 records are indexed in the thread pool and get SERVFAIL,
 * but the apex SOA, until it lands).  CHAOS TXT id.server/hostname.bind and
 * version.bind/version.server answer controller.identity/version, REFUSED
 * when unset; the EDNS NSID option carries controller.nsid when asked.
 */
#ifndef DRDNS_SERVER_H
#define DRDNS_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "drdns/xfr_acl.h"

struct drdns_conf;
struct drdns_zoneset;

struct drdns_server;

/* Bind UDP and TCP on conf->controller.address:port and start serving (REFUSED
 * until a zone set is installed).  conf must outlive the server (it is re-pointed
 * with drdns_server_set_conf on reload).  Returns 0 or a negative error (e.g.
 * -EADDRINUSE). */
int drdns_server_new(uv_loop_t *loop, const struct drdns_conf *conf, struct drdns_server **out);

/* Install the set to serve (ownership passes to the server), or NULL to stop
 * serving (REFUSED).  Atomic for clients: a transfer already running finishes
 * from the set it started with; the old set is freed when its last transfer ends. */
void drdns_server_set_zones(struct drdns_server *srv, struct drdns_zoneset *set);

/* A drill (drdnsctl drill): serve set (ownership passes; NULL: stop) while no
 * zone set is installed -- only its zones are answered, everything else stays
 * REFUSED.  An installed zone set always wins; drdns_server_zones() never
 * returns the drill's set.  Returns 0, or an error (out of memory, server
 * closing): then set is freed and what was served before stays. */
int drdns_server_set_drill(struct drdns_server *srv, struct drdns_zoneset *set);
/* The hand-back relay (failover.h, drdns_stepdown_start): serve the campus
 * copies in set exactly as they are (ownership passes; NULL: stop) while no
 * zone set is installed, before a drill's set.  Same contract as
 * drdns_server_set_drill; drdns_server_zones() never returns this set. */
int drdns_server_set_handback(struct drdns_server *srv, struct drdns_zoneset *set);
/* The hand-back set, or NULL (still owned by the server). */
const struct drdns_zoneset *drdns_server_handback_zones(const struct drdns_server *srv);
/* The drill's set, or NULL (still owned by the server). */
const struct drdns_zoneset *drdns_server_drill_zones(const struct drdns_server *srv);
/* The set being served, or NULL (still owned by the server). */
const struct drdns_zoneset *drdns_server_zones(const struct drdns_server *srv);

void drdns_server_set_conf(struct drdns_server *srv, const struct drdns_conf *conf);

/* Counters for status and tests. */
struct drdns_server_stats {
	unsigned long queries, refused, axfr, axfr_refused, tsig_failed, notify_received;
	unsigned active_transfers;
};
void drdns_server_stats(const struct drdns_server *srv, struct drdns_server_stats *out);

/* Refused transfers (unsigned from an address the ACL does not allow, or a
 * failed TSIG on a transfer request), merged and bounded: see xfr_acl.h.
 * drdns_server_refusals_mark: the latest sequence number (0: none yet; srv may
 * be NULL).  drdns_server_refusals: copies into out (caller's array of max) the
 * entries seen after mark since, oldest first; returns how many. */
uint64_t drdns_server_refusals_mark(const struct drdns_server *srv);
size_t drdns_server_refusals(const struct drdns_server *srv, uint64_t since,
                             struct drdns_xfr_refusal *out, size_t max);

/* Stop listening, abort transfers, cancel or stop any AXFR pre-rendering in the
 * thread pool, free everything; cb (may be NULL) runs when all handles are closed
 * and every render job has finished. */
void drdns_server_close(struct drdns_server *srv, void (*cb)(void *arg), void *arg);

#endif
