/*
 * TSIG keys in BIND key-file format:
 *
 *   key "drdns-nsd" {
 *       algorithm hmac-sha256;
 *       secret "base64==";
 *   };
 *
 * Only hmac-sha256 is accepted (the requirement; it is what BIND's
 * tsig-keygen produces by default).  Signing and verifying use ldns.
 * drdns_tsig_sign_wire() (zone transfers) signs rendered wire with OpenSSL's
 * HMAC directly, byte-compatible with ldns' verification.
 */
#ifndef DRDNS_TSIG_H
#define DRDNS_TSIG_H

#include <ldns/ldns.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct drdns_conf;
struct drdns_diag;

struct drdns_tsig_key {
	char *name;      /* key name, lowercase, with trailing dot ("drdns-nsd.") */
	char *algorithm; /* "hmac-sha256." */
	char *secret;    /* base64 text as in the file */
};

/* Parse a BIND key file holding exactly one key.  On error returns DRDNS_ETSIG
 * and appends "file:line: message" to diag (may be NULL).  Caller frees *out
 * with drdns_tsig_key_free(). */
int drdns_tsig_key_load(const char *path, struct drdns_tsig_key **out, struct drdns_diag *diag);
void drdns_tsig_key_free(struct drdns_tsig_key *key);

/* Sign pkt (a request, or the first message of a response when query_mac is the
 * request's MAC).  Returns 0 or DRDNS_ETSIG. */
int drdns_tsig_sign(ldns_pkt *pkt, const struct drdns_tsig_key *key, const ldns_rdf *query_mac);

/* Sign a follow-on message of a multi-message response (RFC 8945 5.3.1):
 * prev_mac is the MAC of the previous message. */
int drdns_tsig_sign_next(ldns_pkt *pkt, const struct drdns_tsig_key *key, const ldns_rdf *prev_mac);

/* Verify the TSIG on a received packet (wire is its wire form).  request_mac is
 * the MAC of the request when verifying a response, NULL when verifying a request.
 * Returns 0, or DRDNS_ETSIG when the record is missing, the key name or algorithm
 * differ, the time is outside fudge, or the MAC is wrong. */
int drdns_tsig_verify(ldns_pkt *pkt, const uint8_t *wire, size_t wire_len,
                      const struct drdns_tsig_key *key, const ldns_rdf *request_mac);

/* Verify a follow-on message of a multi-message response (RFC 8945 5.3.1: the
 * MAC covers the previous message's MAC, this message and only the timers).
 * prev_mac is the MAC of the previous message (required).  Returns 0 or
 * DRDNS_ETSIG, as drdns_tsig_verify. */
int drdns_tsig_verify_next(ldns_pkt *pkt, const uint8_t *wire, size_t wire_len,
                           const struct drdns_tsig_key *key, const ldns_rdf *prev_mac);

/* ---- the server side (src/server) */

/* TSIG error codes (RFC 8945 5.2). */
#define DRDNS_TSIG_BADSIG  16
#define DRDNS_TSIG_BADKEY  17
#define DRDNS_TSIG_BADTIME 18

/* Whether the TSIG record's time signed is within its fudge of now (seconds
 * since the epoch).  The one time check: drdns_tsig_verify uses it too. */
bool drdns_tsig_time_ok(const ldns_rr *tsig, uint64_t now);

/* The key of a configured secondary whose name and algorithm match the TSIG
 * record, or NULL.  Points into conf. */
const struct drdns_tsig_key *drdns_tsig_find_key(const struct drdns_conf *conf,
                                                 const ldns_rr *tsig);

/* A deep copy of key (caller frees with drdns_tsig_key_free), or NULL. */
struct drdns_tsig_key *drdns_tsig_key_copy(const struct drdns_tsig_key *key);

/* "BADSIG", "BADKEY", "BADTIME" or "ERROR" (static text). */
const char *drdns_tsig_error_name(uint16_t error);

/* An unsigned TSIG record answering the request's record qtsig with error
 * (RFC 8945 5.3.2: BADTIME carries the server's time as other data), newly
 * allocated (caller frees), or NULL. */
ldns_rr *drdns_tsig_error_rr(const ldns_rr *qtsig, uint16_t orig_id, uint16_t error, uint64_t now);

/* Largest MAC drdns_tsig_sign_wire() produces (HMAC output). */
#define DRDNS_TSIG_MAC_MAX 64
/* Room a TSIG record can take at the end of a message: owner and algorithm
 * names (255 each at most), type/class/TTL/length, time, fudge, MAC, original
 * id, error, other length. */
#define DRDNS_TSIG_RR_MAX (255 + 10 + 255 + 6 + 2 + 2 + DRDNS_TSIG_MAC_MAX + 6)

/* Sign a message that is already in wire form (RFC 8945 4.3, 5.3), without
 * building an ldns_pkt: the MAC covers
 *   [prev_mac as 2-byte length + MAC] message [TSIG variables]
 * and a TSIG record (key name and algorithm uncompressed, original id = the
 * message's id, error 0, no other data) is appended, ARCOUNT incremented.
 *   msg, len, cap: the message (len bytes) in a buffer of cap bytes; cap >= len +
 *     DRDNS_TSIG_RR_MAX is always enough.
 *   prev_mac, prev_mac_len: the MAC alone (no length prefix).  NULL for a request;
 *     the request's MAC for a response (or the first message of a multi-message
 *     one); the previous message's MAC for follow-on messages, with timers_only
 *     (only time signed and fudge as variables, RFC 8945 5.3.1), as
 *     ldns_pkt_tsig_sign_next(..., 1) does.
 *   time_signed: seconds since the epoch.
 * On success returns 0, sets *out_len (<= 65535) and copies the new MAC into mac
 * (DRDNS_TSIG_MAC_MAX bytes) with its length in *mac_len.  Returns DRDNS_ETSIG
 * for an unusable key, DRDNS_EINVAL when the result would not fit cap or 65535
 * bytes (msg is then unchanged), DRDNS_ENOMEM. */
int drdns_tsig_sign_wire(uint8_t *msg, size_t len, size_t cap, size_t *out_len,
                         const struct drdns_tsig_key *key, const uint8_t *prev_mac,
                         size_t prev_mac_len, bool timers_only, uint64_t time_signed, uint8_t *mac,
                         size_t *mac_len);

#endif
