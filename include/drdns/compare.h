/*
 * What a DR zone leaves out of the campus zone (pure: no I/O, no clock).
 * drdnsctl check runs it on each DR zone and the campus copy fetched by AXFR.
 *
 * Records are compared as DNS defines RR equality: owner name
 * case-insensitively, class, type and RDATA exactly, in canonical wire form
 * (RFC 4034 6.2: the names inside NS, CNAME, MX, PTR, SRV... RDATA are
 * case-folded too).  TTLs are ignored: a promotion clamps every DR TTL.
 * SOA records are ignored on both sides (the DR SOA is rewritten anyway), so
 * are the records a signer makes (RRSIG, NSEC, NSEC3, NSEC3PARAM; DNSKEY is
 * compared), and a record present twice on one side counts once.
 *
 * For each direction (left_out: on campus, not in the DR zone; dr_only: in
 * the DR zone, not on campus):
 *   names    owner names with records on this side and none on the other;
 *   rrsets   (name, type) pairs with records on this side and none on the
 *            other;
 *   records  records on this side missing on the other (whole RRsets and
 *            single records of RRsets both sides have);
 *   examples the first DRDNS_COMPARE_EXAMPLES RRsets, in canonical order
 *            (RFC 4034 name order, then type number), with at least one
 *            record missing on the other side, as "name TYPE" (name
 *            lowercase, with trailing dot).
 */
#ifndef DRDNS_COMPARE_H
#define DRDNS_COMPARE_H

#include <jansson.h>
#include <ldns/ldns.h>
#include <stddef.h>

struct drdns_zone;

#define DRDNS_COMPARE_EXAMPLES 10

struct drdns_compare_side {
	size_t names, rrsets, records;
	char *examples[DRDNS_COMPARE_EXAMPLES]; /* "name TYPE", owned */
	size_t n_examples;
};

struct drdns_compare_result {
	size_t dr_records;     /* DR records compared (SOA excluded, duplicates once) */
	size_t campus_records; /* campus records compared (likewise) */
	struct drdns_compare_side left_out; /* on campus, not in the DR zone */
	struct drdns_compare_side dr_only;  /* in the DR zone, not on campus */
};

/* Compare dr with campus (every record of the campus zone, e.g. as an AXFR
 * brings it; SOA included or not; neither is modified).  Fills *out (zeroed
 * first); free its strings with drdns_compare_result_clear, also after an
 * error.  Returns 0 or DRDNS_ENOMEM. */
int drdns_zone_compare(const struct drdns_zone *dr, const ldns_rr_list *campus,
                       struct drdns_compare_result *out);

/* Free the examples; the struct can be reused. */
void drdns_compare_result_clear(struct drdns_compare_result *r);

/* {"names": n, "rrsets": n, "records": n, "examples": ["name TYPE", ...]}
 * (new reference, NULL on out of memory). */
json_t *drdns_compare_side_json(const struct drdns_compare_side *side);

#endif
