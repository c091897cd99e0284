/*
 * SOA probes: ask many (server, zone) pairs for the zone's SOA at once and
 * report, per pair, whether the server answered authoritatively and which
 * serial it serves.
 */
#ifndef DRDNS_PROBE_H
#define DRDNS_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct drdns_tsig_key;

struct drdns_soa_target {
	const char *label;   /* who this is, e.g. "master" or an NS name (copied) */
	const char *address; /* (copied) */
	uint16_t port;
	const char *zone; /* (copied) */
};

struct drdns_soa_result {
	char *label;   /* owned */
	char *address; /* owned */
	uint16_t port;
	char *zone;       /* owned */
	bool answered;    /* NOERROR, AA set, SOA for the zone in the answer */
	uint32_t serial;  /* valid when answered */
	uint32_t expire;  /* SOA EXPIRE, valid when answered */
	uint32_t refresh; /* SOA REFRESH, valid when answered */
	double rtt;       /* seconds */
	char detail[64];  /* "ok", "timeout", "REFUSED", "not authoritative", ... */
};

/* Called once when every target has an outcome.  results (n entries, same order as
 * the targets) are handed over: free with drdns_soa_results_free(). */
typedef void (*drdns_probe_cb)(struct drdns_soa_result *results, size_t n, void *arg);

/* Probe all targets from source (may be NULL).  n == 0 calls cb at once (from the
 * loop, not from inside this call).  Returns 0, or an error and cb is never called. */
int drdns_probe_soa(uv_loop_t *loop, const char *source, const struct drdns_soa_target *targets,
                    size_t n, double timeout, int attempts, bool tcp, drdns_probe_cb cb, void *arg);

/* No DNS response at all (timeout, network or local error): the server is
 * silent, as opposed to answering REFUSED, SERVFAIL, without AA... */
bool drdns_soa_result_silent(const struct drdns_soa_result *r);

/* A deep copy of n results, or NULL (out of memory). */
struct drdns_soa_result *drdns_soa_results_copy(const struct drdns_soa_result *results, size_t n);

void drdns_soa_results_free(struct drdns_soa_result *results, size_t n);

#endif
