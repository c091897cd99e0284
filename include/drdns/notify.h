/*
 * NOTIFY and convergence.
 *
 * drdns_notify_batch() sends a NOTIFY (opcode 4, SOA question, AA set) for every
 * (secondary, zone) pair from the DR address, TSIG-signed when the secondary has
 * a key, retrying with exponential backoff until a response arrives (any
 * rcode: REFUSED or NOTAUTH will not change by resending) or the attempts run
 * out.  acked means the response was NOERROR.
 *
 * drdns_converge_watch() then polls each secondary's SOA for every zone until it
 * serves the expected serial (or newer, RFC 1982) or the deadline passes, and
 * reports per secondary how long it took.
 */
#ifndef DRDNS_NOTIFY_H
#define DRDNS_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include <uv.h>

#include "drdns/xfr_acl.h"

struct drdns_tsig_key;

struct drdns_xfr_peer {
	const char *name;    /* NS name, for reports (not copied: must outlive the batch) */
	const char *address; /* (not copied) */
	uint16_t port;
	const struct drdns_tsig_key *key; /* or NULL (not copied) */
};

struct drdns_zone_serial {
	const char *zone; /* (not copied) */
	uint32_t serial;
};

struct drdns_notify_result {
	const char *peer; /* points into the peer array given */
	const char *zone; /* points into the zone array given */
	bool acked;       /* a NOERROR NOTIFY response arrived */
	int rcode;        /* rcode of the last response, -1 if none */
	int attempts;
	double seconds; /* from the first send to the ack */
	char detail[64];
};

/* results: n_peers * n_zones entries, peer-major; handed over (free() the array). */
typedef void (*drdns_notify_cb)(struct drdns_notify_result *results, size_t n, void *arg);

int drdns_notify_batch(uv_loop_t *loop, const char *source, const struct drdns_xfr_peer *peers,
                       size_t n_peers, const struct drdns_zone_serial *zones, size_t n_zones,
                       double first_timeout, int attempts, drdns_notify_cb cb, void *arg);

struct drdns_converge_result {
	const char *peer; /* points into the peer array given */
	const char *address;
	bool converged; /* every zone serves the expected serial (or newer) */
	double seconds; /* from the start of the watch to the last zone converging */
	size_t n_zones;
	uint32_t *served; /* last serial seen per zone (owned); valid where has_served */
	bool *has_served; /* (owned) */
	char detail[64];  /* e.g. "timeout: example.edu. still at 2026112301" */
	/* Not converged, and drdns refused a transfer of one of the watched zones
	 * during the watch that concerns this peer (its key name, its address or
	 * transfer_sources), or possibly (an unknown source address): refusal says
	 * which, from where, and the fix.  Only with a refusal source set
	 * (drdns_converge_set_refusals). */
	bool refused;
	struct drdns_xfr_explained refusal;
};

/* Where watches learn about refused transfers: drdnsd points this at its
 * server's refusal record and its configuration.  mark(arg): the record's
 * position now (taken at the start of each watch); explain(arg, since, ...):
 * drdns_xfr_explain over the refusals after since.  Copied; NULL: none. */
struct drdns_converge_refusals {
	uint64_t (*mark)(void *arg);
	bool (*explain)(void *arg, uint64_t since, const char *peer_name, const char *const *zones,
	                size_t n_zones, struct drdns_xfr_explained *out);
	void *arg;
};
void drdns_converge_set_refusals(const struct drdns_converge_refusals *src);

/* The refusal of r as JSON, for the per-secondary reports (new reference), or
 * JSON null when r has none:
 *   {"source": "127.0.0.111", "zone": "example.edu.", "signed": false,
 *    "key": null | "name.", "reason": "not-allowed" | "tsig-badkey" | ...,
 *    "count": n (identical refusals merged), "first", "last": Unix times,
 *    "possibly": bool, "text": "transfer of ... refused (...): fix"} */
json_t *drdns_converge_refusal_json(const struct drdns_converge_result *r);

/* results: n_peers entries, handed over: free with drdns_converge_results_free(). */
typedef void (*drdns_converge_cb)(struct drdns_converge_result *results, size_t n, void *arg);

int drdns_converge_watch(uv_loop_t *loop, const char *source, const struct drdns_xfr_peer *peers,
                         size_t n_peers, const struct drdns_zone_serial *zones, size_t n_zones,
                         double poll_interval, double wait, drdns_converge_cb cb, void *arg);

void drdns_converge_results_free(struct drdns_converge_result *results, size_t n);

#endif
