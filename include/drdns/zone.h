/*
 * DR zone files: loading and validation (all or nothing), and writing.
 *
 * A DR zone set is a directory holding one RFC 1035 master file per zone named
 * "<zone>.zone"; the origin is the file name (a trailing "." is implied).
 * Loading parses with ldns record by record so every record keeps its line
 * number, then validates:
 *   - the file parses (errors as file:line; a multi-line record is reported at
 *     its last line);
 *   - $ORIGIN, when present, stays inside the zone named by the file;
 *   - exactly one SOA, at the apex;
 *   - at least one NS at the apex;
 *   - in-zone NS targets have glue (A or AAAA);
 *   - no data outside the zone;
 *   - no CNAME beside other data at the same name (and none at the apex);
 *   - class IN only; $INCLUDE is not allowed (a DR set must be self-contained).
 */
#ifndef DRDNS_ZONE_H
#define DRDNS_ZONE_H

#include <ldns/ldns.h>
#include <stddef.h>
#include <stdint.h>

struct drdns_diag;

struct drdns_zone {
	char *name;        /* origin, lowercase, trailing dot: "example.edu." (owned) */
	char *path;        /* file it came from, or NULL for a rewritten zone (owned) */
	ldns_rdf *origin;  /* owned */
	ldns_rr *soa;      /* owned */
	ldns_rr_list *rrs; /* every record but the SOA, in file order, exact duplicates
	                    * removed (owned, deep) */
};

struct drdns_zoneset {
	struct drdns_zone **zones; /* n entries, sorted by name; owned */
	size_t n;
};

/* Load and validate one file.  origin_text is the zone name ("example.edu" or
 * "example.edu.").  Returns 0, or DRDNS_EZONE with messages in diag. */
int drdns_zone_load(const char *path, const char *origin_text, struct drdns_zone **out,
                    struct drdns_diag *diag);

/* Load every "*.zone" in dir.  All or nothing: if any file fails, nothing is
 * returned and every problem is in diag.  An empty directory is an error. */
int drdns_zoneset_load_dir(const char *dir, struct drdns_zoneset **out, struct drdns_diag *diag);

/* Deep copy (caller frees). */
struct drdns_zone *drdns_zone_clone(const struct drdns_zone *z);

void drdns_zone_free(struct drdns_zone *z);
void drdns_zoneset_free(struct drdns_zoneset *set);

/* Zone by name (case-insensitive, trailing dot optional), or NULL. */
struct drdns_zone *drdns_zoneset_find(const struct drdns_zoneset *set, const char *name);

uint32_t drdns_zone_serial(const struct drdns_zone *z);
/* The serial of an SOA record (e.g. the first record of an AXFR), or 0 when
 * soa is NULL or has no serial field. */
uint32_t drdns_soa_rr_serial(const ldns_rr *soa);
size_t drdns_zone_rr_count(const struct drdns_zone *z); /* including the SOA */

/* The zone in master-file form ($ORIGIN, SOA first, then records), newly
 * allocated (caller frees). */
char *drdns_zone_to_text(const struct drdns_zone *z);

/* Write the zone to path atomically (temp file, fsync, rename, fsync dir). */
int drdns_zone_write(const struct drdns_zone *z, const char *path);

/* Names of the apex NS targets, lowercase with trailing dot, in file order;
 * returns the count and a newly allocated array of newly allocated strings
 * (free each, then the array). */
size_t drdns_zone_ns_names(const struct drdns_zone *z, char ***names);

/* First in-zone A or AAAA address of name as text, newly allocated, or NULL. */
char *drdns_zone_glue_address(const struct drdns_zone *z, const char *name);

#endif
