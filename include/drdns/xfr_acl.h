/*
 * The transfer ACL of the DR primary, and why transfers were refused (pure: no
 * I/O, no clock, no loop; src/server/acl.c).
 *
 * Who may transfer (AXFR/IXFR) a served zone:
 *   - a request TSIG-signed with the key of a configured secondary (the server
 *     verifies the signature first; a bad one is a refusal too, NOTAUTH);
 *   - unsigned: from the address of a secondary that has no key, from one of
 *     its transfer_sources (addresses or prefixes its transfers come from:
 *     multi-homed hosts, anycast nodes), or from controller.allow_transfer
 *     (addresses or prefixes, e.g. operators' tools).
 * Everything else is REFUSED.
 *
 * The refusal record: the server notes each refused transfer (time, zone,
 * source address, signed or not and the key name, reason) in a small bounded
 * record.  Identical refusals (a secondary retrying) are merged into one entry
 * with a count, which moves to the newest place; when the record is full the
 * oldest entry goes.  Every note gets the next sequence number, so a reader
 * takes a mark (drdns_xfr_refusals_mark) and later asks for what came since.
 *
 * drdns_xfr_explain turns the refusals of some zones into one sentence for a
 * secondary that did not converge, attributing a refusal to it by its key
 * name or by its address (or transfer_sources); a refusal from an unknown
 * address may concern any secondary, and is worded "possibly".
 */
#ifndef DRDNS_XFR_ACL_H
#define DRDNS_XFR_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

struct drdns_conf;

/* ---- addresses and prefixes ---- */

struct drdns_prefix {
	int family; /* AF_INET or AF_INET6 (IPv4-mapped IPv6 is folded to AF_INET) */
	uint8_t b[16];
	unsigned bits; /* 32 or 128 for a single address */
};

/* Parse "192.0.2.1", "192.0.2.0/24", "2001:db8::1" or "2001:db8::/48".  Returns
 * 0, or DRDNS_EINVAL with the reason in err (may be NULL): not an address, a
 * length out of range, or bits set below the length ("192.0.2.1/24": did you
 * mean 192.0.2.0/24?). */
int drdns_prefix_parse(const char *text, struct drdns_prefix *out, char *err, size_t errlen);

/* Is sa (AF_INET or AF_INET6; IPv4-mapped folded) inside p? */
bool drdns_prefix_contains(const struct drdns_prefix *p, const struct sockaddr *sa);

/* The same for an address literal; false when text is not an address. */
bool drdns_prefix_contains_text(const struct drdns_prefix *p, const char *text);

/* ---- the decision ---- */

enum drdns_xfr_verdict {
	DRDNS_XFR_OK_KEY,       /* signed with a verified secondary key */
	DRDNS_XFR_OK_SECONDARY, /* unsigned, from a keyless secondary's address */
	DRDNS_XFR_OK_SOURCE,    /* unsigned, from a keyless secondary's transfer_sources */
	DRDNS_XFR_OK_ACL,       /* unsigned, from controller.allow_transfer */
	DRDNS_XFR_NOT_ALLOWED,  /* unsigned, from none of those: REFUSED */
};

/* May peer transfer?  signed_ok: the request carried a TSIG the server
 * verified with a configured key.  conf NULL: nothing is allowed. */
enum drdns_xfr_verdict drdns_xfr_acl(const struct drdns_conf *conf, const struct sockaddr *peer,
                                     bool signed_ok);

/* ---- the refusal record ---- */

#define DRDNS_XFR_REFUSALS_MAX 32
#define DRDNS_XFR_NAME_LEN     256
#define DRDNS_XFR_ADDR_LEN     46

struct drdns_xfr_refusal {
	uint64_t seq;                    /* of its latest occurrence: higher is newer */
	time_t first, last;              /* wall clock, first and latest occurrence */
	unsigned long count;             /* identical refusals merged into this entry */
	char zone[DRDNS_XFR_NAME_LEN];   /* "example.edu." as asked */
	char source[DRDNS_XFR_ADDR_LEN]; /* "127.0.0.111", no port */
	bool is_signed;                  /* the request carried a TSIG record */
	char key[DRDNS_XFR_NAME_LEN];    /* its key name ("" when unsigned) */
	char reason[32]; /* "not-allowed", "tsig-badkey", "tsig-badsig", "tsig-badtime" */
};

/* Zero-initialised is empty.  Not thread-safe (the server's loop owns it). */
struct drdns_xfr_refusals {
	struct drdns_xfr_refusal e[DRDNS_XFR_REFUSALS_MAX]; /* oldest first */
	size_t n;
	uint64_t seq; /* the last sequence number given */
};

/* Note one refused transfer.  key: the TSIG key name when signed, else NULL.
 * Strings are truncated to their fields. */
void drdns_xfr_refusals_note(struct drdns_xfr_refusals *r, time_t now, const char *zone,
                             const struct sockaddr *peer, const char *key, const char *reason);

/* The sequence number of the latest note (0: none yet). */
uint64_t drdns_xfr_refusals_mark(const struct drdns_xfr_refusals *r);

/* Copy the entries noted (or repeated) after mark since, oldest first, at most
 * max (the newest max when there are more).  Returns how many were copied. */
size_t drdns_xfr_refusals_since(const struct drdns_xfr_refusals *r, uint64_t since,
                                struct drdns_xfr_refusal *out, size_t max);

/* ---- explaining a refusal to the operator ---- */

struct drdns_xfr_explained {
	struct drdns_xfr_refusal refusal; /* the one chosen */
	bool possibly;  /* from an address no secondary is known by: may be this one */
	char text[448]; /* "transfer of example.edu. from 127.0.0.111 refused (not an
	                 * allowed address): add it to secondaries[ns1].transfer_sources
	                 * or controller.allow_transfer, or give the secondary a TSIG key" */
};

/* Among list (n entries, any order), the newest refusal of one of zones that
 * concerns the secondary named peer_name: by its TSIG key name, its address or
 * its transfer_sources; failing that, the newest one from a source no
 * secondary is known by (possibly).  Returns false (out untouched) when none.
 * zones NULL: every zone. */
bool drdns_xfr_explain(const struct drdns_conf *conf, const struct drdns_xfr_refusal *list,
                       size_t n, const char *peer_name, const char *const *zones, size_t n_zones,
                       struct drdns_xfr_explained *out);

#endif
