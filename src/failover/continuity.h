/*
 * DNSSEC key continuity (issue 5): before a promotion publishes a signed zone,
 * the DNSKEY set it would publish must be the one the nameservers publish now.
 * Otherwise validating resolvers holding the old keys (or the parent's DS)
 * reject the new signatures at the cutover -- the failure seen in real
 * standby-signer switches.
 *
 * drdns_dnskey_probe() asks each target for the zone's DNSKEY RRset (UDP,
 * TCP when truncated); drdns_continuity_check() compares (pure).
 * Private to src/failover.
 */
#ifndef DRDNS_FAILOVER_CONTINUITY_H
#define DRDNS_FAILOVER_CONTINUITY_H

#include <jansson.h>
#include <ldns/ldns.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct drdns_dnskey_target {
	const char *label;   /* "master" or an NS name (copied) */
	const char *address; /* (copied) */
	uint16_t port;
	const char *zone; /* (copied) */
};

struct drdns_dnskey_result {
	char *label, *address, *zone; /* owned */
	bool answered;                /* NOERROR with AA: dnskeys is the whole set */
	ldns_rr_list *dnskeys;        /* owned; empty when the zone has none */
	char detail[64];              /* "ok", "timeout", "REFUSED", ... */
};

/* results: n entries in target order, handed over (free with
 * drdns_dnskey_results_free).  Called once, from the loop. */
typedef void (*drdns_dnskey_cb)(struct drdns_dnskey_result *results, size_t n, void *arg);

/* Returns 0 (cb called later, also for n == 0) or an error (cb never called). */
int drdns_dnskey_probe(uv_loop_t *loop, const char *source,
                       const struct drdns_dnskey_target *targets, size_t n, double timeout,
                       int attempts, drdns_dnskey_cb cb, void *arg);
void drdns_dnskey_results_free(struct drdns_dnskey_result *results, size_t n);

enum drdns_continuity {
	DRDNS_CONT_SAME,         /* every answering nameserver publishes our set */
	DRDNS_CONT_NEWLY_SIGNED, /* nobody publishes DNSKEYs; we would sign: safe */
	DRDNS_CONT_UNSIGNED,     /* nobody publishes DNSKEYs; we would not sign */
	DRDNS_CONT_UNKNOWN,      /* no nameserver answered: cannot tell */
	DRDNS_CONT_MISMATCH,     /* someone publishes another set: validation breaks */
	DRDNS_CONT_WOULD_UNSIGN, /* someone publishes DNSKEYs; we have no keys */
};

/*
 * Compare ours (the DNSKEY set a promotion would publish for zone, or NULL
 * when it has no keys) with what each result for that zone shows.  Sets are
 * compared by RDATA (flags, protocol, algorithm, key), TTLs and order
 * ignored.  *detail gets a JSON object (new reference) for the plan:
 * {"continuity": "same"|..., "ours": [tags], "published": [{"by": label,
 * "tags": [...]}], "message": text}.
 */
enum drdns_continuity drdns_continuity_check(const char *zone, const ldns_rr_list *ours,
                                             const struct drdns_dnskey_result *results, size_t n,
                                             json_t **detail);

const char *drdns_continuity_str(enum drdns_continuity c);
/* A refusal: would break validation (MISMATCH, WOULD_UNSIGN). */
bool drdns_continuity_breaks(enum drdns_continuity c);

#endif
