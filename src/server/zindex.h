/*
 * The query index of one served zone, built once per installed generation
 * (src/server/zindex.c) and read-only afterwards, so the answer engine
 * (answer.c) never scans the zone.  It points into the zone's records (the
 * zone must outlive the index); only the pointer arrays and the owner names of
 * empty non-terminals are its own.
 *
 *   names   every owner, plus every empty non-terminal between an owner and
 *           the apex, in canonical order (RFC 4034 6.1); binary search;
 *   rrsets  per name, one per type, each with the RRSIGs covering that type;
 *   cuts    names owning NS below the apex (flag);
 *   NSEC    the names owning an NSEC, in canonical order (predecessor search
 *           finds the covering NSEC);
 *   NSEC3   the names owning an NSEC3, sorted by their hashed label, with the
 *           hash parameters from the apex NSEC3PARAM.
 */
#ifndef DRDNS_ZINDEX_H
#define DRDNS_ZINDEX_H

#include <ldns/ldns.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct drdns_zone;

struct zrrset {
	uint16_t type;
	uint32_t n, nsig;
	uint32_t ord;   /* position of its first record in the zone (SOA: 0) */
	ldns_rr **rrs;  /* n records (the zone's) */
	ldns_rr **sigs; /* nsig RRSIGs covering type (the zone's) */
};

#define ZN_CUT 1u /* owns NS, not the apex */
#define ZN_ENT 2u /* owns nothing: an empty non-terminal */
#define ZN_N3                                                                                      \
	4u /* owns only NSEC3 (and its RRSIGs): not a name for lookups                             \
	    * (RFC 5155 7.2.8: answered as if it did not exist) */

struct zname {
	const ldns_rdf *owner; /* a record's owner, or names_own for ENTs */
	struct zrrset *sets;   /* nsets, sorted by type */
	uint32_t nsets;
	uint32_t flags;
};

struct zn3 {
	uint8_t hash[64]; /* the hashed label, lowercase base32hex */
	uint8_t len;
	uint32_t name; /* index in names */
};

struct zindex {
	const struct drdns_zone *zone;
	struct zname *names;
	size_t n;
	size_t apex; /* index of the apex in names */
	struct zrrset *sets_pool;
	ldns_rr **rr_pool;
	ldns_rdf **ent_owners; /* owned */
	size_t n_ent;
	uint32_t *nsec; /* names owning NSEC, canonical order */
	size_t n_nsec;
	struct zn3 *nsec3; /* sorted by hash */
	size_t n_nsec3;
	bool has_nsec3param;
	uint8_t n3_alg, n3_salt_len;
	uint16_t n3_iter;
	uint8_t n3_salt[256];
	size_t records; /* indexed records, SOA included */
	size_t bytes;   /* memory the index holds (pointer arrays, ENT names) */
};

/* Build the index of z (which must outlive it).  Returns 0 or DRDNS_ENOMEM. */
int zindex_build(const struct drdns_zone *z, struct zindex **out);
void zindex_free(struct zindex *ix);

/* The name equal to name (case-insensitive), or NULL; NSEC3-only names are
 * not found. */
const struct zname *zindex_find(const struct zindex *ix, const ldns_rdf *name);
/* The RRset of type at n, or NULL. */
const struct zrrset *zname_rrset(const struct zname *n, uint16_t type);
/* The name owning the NSEC that covers or matches name, or NULL. */
const struct zname *zindex_nsec_cover(const struct zindex *ix, const ldns_rdf *name);
/* NSEC3: the name owning the NSEC3 matching name's hash (exact) or covering
 * it (!exact), or NULL. */
const struct zname *zindex_nsec3(const struct zindex *ix, const ldns_rdf *name, bool exact);

#endif
