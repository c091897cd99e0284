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
 */
#ifndef DRDNS_TSIG_H
#define DRDNS_TSIG_H

#include <ldns/ldns.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
