/*
 * A blocking AXFR client for libuv's thread pool (drdnsctl check fetches the
 * campus zones with it).  It touches no loop and no global state, so it may
 * run on any thread; every wait (connect, send, each read) is bounded by one
 * deadline for the whole transfer.
 *
 * The request goes over TCP, from opts.source when given (so the master's
 * transfer ACL can allow the DR host), unsigned, or TSIG-signed with opts.key.
 * Every response message must carry the request's id, QR and rcode NOERROR;
 * with a key every one must also carry a TSIG of that key that verifies (the
 * first over the request's MAC, each next over the previous message's, RFC
 * 8945 5.3.1): a missing or bad signature fails the transfer.  (RFC 8945 lets
 * a server leave up to 99 messages in between unsigned but says to sign
 * every one; BIND, Knot, PowerDNS and current NSD do; older NSD releases
 * signed every 96th only, and a multi-message AXFR from one fails here.)  The first record must be
 * the zone's SOA, and the transfer ends at the next SOA of the zone (RFC 5936). Another thread may
 * stop a transfer early through opts.cancel.
 */
#ifndef DRDNS_AXFR_H
#define DRDNS_AXFR_H

#include <ldns/ldns.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct drdns_tsig_key;

#define DRDNS_AXFR_MAX_RECORDS 2000000 /* larger zones are refused (memory) */

struct drdns_axfr_opts {
	const char *zone;    /* "example.edu." */
	const char *address; /* the master: IPv4 or IPv6 literal */
	uint16_t port;
	const char *source; /* address to send from, or NULL */
	double timeout;     /* seconds for the whole transfer, > 0 */
	/* When it turns true (any thread), the transfer stops within
	 * DRDNS_AXFR_CANCEL_MS with -ECANCELED ("cancelled").  May be NULL. */
	const atomic_bool *cancel;
	const struct drdns_tsig_key *key; /* sign and verify with it, or NULL (borrowed) */
};

#define DRDNS_AXFR_CANCEL_MS 100

/* Transfer opts->zone.  Returns 0 and *out: the zone's records, the SOA first
 * and only once (the closing SOA is dropped); caller frees with
 * ldns_rr_list_deep_free.  Or an error (DRDNS_ETIMEOUT, DRDNS_EPROTO for a bad
 * or refused answer, DRDNS_ETSIG for a missing or bad signature or a TSIG
 * error from the master ("NOTAUTH (TSIG BADKEY)"), a negated errno for socket errors, DRDNS_EINVAL,
 * DRDNS_ENOMEM, -ECANCELED) with a short reason in err ("REFUSED", "timed out after 10 s",
 * "connect: Connection refused", ...); then *out is untouched. */
int drdns_axfr_fetch(const struct drdns_axfr_opts *opts, ldns_rr_list **out, char *err,
                     size_t errlen);

#endif
