/*
 * DNSSEC for the DR set: the zone's keys, and signing.
 *
 * Keys live in one directory as BIND writes them (dnssec-keygen):
 * K<zone>+<alg>+<tag>.key (the DNSKEY record) and K<zone>+<alg>+<tag>.private
 * ("Private-key-format: v1.x").  <zone> is the absolute name, so BIND's files
 * read Kexample.edu.+013+12345.key; the form without the dot is accepted too.
 * A zone is signed when the directory holds at least one key for it.
 * Supported algorithms: RSASHA256 (8), ECDSAP256SHA256 (13), ED25519 (15).
 * Keys with the SEP bit (flags 257) are KSKs: they sign the DNSKEY RRset; the
 * others (256) are ZSKs: they sign everything else.  A zone with keys needs at
 * least one of each (a key that is both, flags 257 and alone, signs
 * everything: a CSK).
 *
 * Signing (drdns_zone_sign) is pure apart from the threads it starts: the
 * clock is an input.  It adds the DNSKEY RRset, an NSEC or NSEC3 chain, and
 * an RRSIG over every authoritative RRset (not over delegation NS records or
 * glue), with
 *   inception  = now - inception_offset;
 *   expiration = now + validity - jitter(owner, type), where jitter is a
 *                deterministic value in [0, jitter] from a hash of the owner
 *                name and type, so re-signing spreads expirations the same
 *                way every time and never all at once.
 * The output verifies with ldns-verify-zone and BIND's dnssec-verify.
 */
#ifndef DRDNS_DNSSEC_H
#define DRDNS_DNSSEC_H

#include <ldns/ldns.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct drdns_diag;
struct drdns_zone;

/* ---- keys ---- */

struct drdns_dnskey {
	ldns_key *key;     /* the private key (owned); read-only once loaded, so
	                    * several threads may sign with it at once.  Its flags,
	                    * pubkey owner and keytag are set from the DNSKEY.  Note
	                    * ldns_sign_public() takes inception/expiration from the
	                    * ldns_key itself: per-RRset times need a per-thread
	                    * copy, not ldns_key_set_expiration() on this one */
	ldns_rr *dnskey;   /* the DNSKEY record from the .key file (owned) */
	uint16_t tag;      /* key tag (RFC 4034 appendix B) */
	uint8_t algorithm; /* 8, 13 or 15 */
	bool ksk;          /* SEP bit set (flags 257) */
	char *path;        /* the .key file (owned), for messages */
};

struct drdns_keyset {
	char *zone;                /* lowercase, trailing dot (owned) */
	struct drdns_dnskey *keys; /* n entries, owned, sorted by (ksk first, tag) */
	size_t n;
};

/*
 * Load every key of zone (name with or without trailing dot, any case) from
 * dir.  Returns:
 *   0 and *out (caller frees with drdns_keyset_free);
 *   0 and *out = NULL when dir holds no key for the zone (the zone is
 *     unsigned);
 *   DRDNS_EDNSSEC with every problem appended to diag as "path: message"
 *     (then *out is NULL): a .key without its .private or the reverse; a file
 *     that does not parse; an unsupported algorithm; a private key that does
 *     not match its DNSKEY; a DNSKEY owner other than the zone; no KSK or no
 *     ZSK (unless one key serves as a CSK); unreadable files.
 */
int drdns_keyset_load(const char *dir, const char *zone, struct drdns_keyset **out,
                      struct drdns_diag *diag);
void drdns_keyset_free(struct drdns_keyset *ks);

/* The DNSKEY RRset the keys publish, TTL ttl, as a new list (caller frees with
 * ldns_rr_list_deep_free), or NULL when out of memory. */
ldns_rr_list *drdns_keyset_dnskeys(const struct drdns_keyset *ks, uint32_t ttl);

/* ---- signing ---- */

struct drdns_sign_params {
	uint64_t now;              /* seconds since the epoch */
	uint32_t validity;         /* seconds, default 30 days */
	uint32_t inception_offset; /* seconds into the past, default 3600 */
	uint32_t jitter;           /* seconds taken off expirations at most, default
	                            * validity / 10; 0: none */
	bool nsec3;                /* NSEC3 instead of NSEC */
	uint16_t nsec3_iterations; /* default 0 (RFC 9276) */
	const uint8_t *nsec3_salt; /* may be NULL (empty salt, RFC 9276) */
	uint8_t nsec3_salt_len;
	bool nsec3_opt_out;
	unsigned threads; /* 0: every online CPU */
};

struct drdns_sign_stats {
	size_t rrsets_signed, signatures, nsec_records;
	uint32_t earliest_expiration; /* the soonest RRSIG expiration */
	double seconds;               /* wall time spent signing */
};

/*
 * Sign in with ks: returns 0 and *out, a new zone (caller frees with
 * drdns_zone_free) holding in's records, the DNSKEY RRset (TTL: that of in's
 * SOA), the NSEC/NSEC3 chain (TTL: the lower of the SOA's TTL and MINIMUM,
 * RFC 9077) and every RRSIG; existing DNSKEY, RRSIG, NSEC,
 * NSEC3 and NSEC3PARAM records in `in` are dropped first (the DR file may be
 * a copy of a signed zone).  stats may be NULL.  Fails with DRDNS_EDNSSEC
 * (message in err: a key of another zone, no key, a signing error) or
 * DRDNS_ENOMEM; then nothing is returned.
 * Clarifications (sign.c): the params fields are used as given, no defaults
 * are filled in, and validity 0 or jitter >= validity is refused with
 * DRDNS_EDNSSEC; NSEC3PARAM gets the chain's TTL; an RRset whose records
 * have different TTLs gets the lowest one (RFC 2181 5.2), otherwise TTLs are
 * kept; the output lists the records in canonical order (each RRset followed
 * by its RRSIGs), which the server's lookups rely on; the KSK/ZSK split is
 * per algorithm (an algorithm with only KSKs or only ZSKs signs everything
 * with them); and one signature per key is verified before returning, so a
 * private key that does not match its DNSKEY fails instead of publishing a
 * bogus zone.
 */
int drdns_zone_sign(const struct drdns_zone *in, const struct drdns_keyset *ks,
                    const struct drdns_sign_params *params, struct drdns_zone **out,
                    struct drdns_sign_stats *stats, char *err, size_t errlen);

#endif
