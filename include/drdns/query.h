/*
 * Asynchronous DNS request engine (libuv).  The one place that sends DNS
 * requests: probes, NOTIFY and convergence polling are built on it.
 *
 * A request is sent over UDP (or TCP when opts.tcp), from opts.source when set
 * (secondaries accept NOTIFY only from a configured primary's address, so the
 * socket is bound to it), retried on timeout with exponential backoff, and
 * retried over TCP when a UDP answer is truncated.  When a TSIG key is given the
 * request is signed and the answer's TSIG verified.
 *
 * The callback is called exactly once, unless drdns_query_start() returned an
 * error, in which case it is never called.
 */
#ifndef DRDNS_QUERY_H
#define DRDNS_QUERY_H

#include <ldns/ldns.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct drdns_tsig_key;

struct drdns_query_opts {
	const char *source;  /* source address to bind, or NULL (copied) */
	const char *address; /* destination (copied) */
	uint16_t port;
	double timeout; /* seconds for the first attempt */
	int attempts;   /* total attempts, >= 1 */
	double backoff; /* timeout multiplier per retry (1.0 = constant) */
	bool tcp;       /* use TCP from the start */
	const struct drdns_tsig_key
	    *key; /* sign with this key, or NULL (must outlive the request) */
};

/*
 * status: 0 when an answer arrived (any rcode); DRDNS_ETIMEOUT after the last
 * attempt; DRDNS_ETSIG when answers arrived but none had a valid TSIG; a negative errno
 * or DRDNS_ENET on socket errors.  answer is owned by the engine and valid only
 * during the call (NULL unless status == 0).  rtt is seconds from the first send.
 * attempts is the number of sends made.
 */
typedef void (*drdns_query_cb)(int status, const ldns_pkt *answer, double rtt, int attempts,
                               void *arg);

/* Start a request.  query is taken over by the engine (freed by it), also on error.
 * The query id is randomised by the engine. */
int drdns_query_start(uv_loop_t *loop, ldns_pkt *query, const struct drdns_query_opts *opts,
                      drdns_query_cb cb, void *arg);

/* Convenience: a new query packet for (zone, type) with RD clear. Caller owns it. */
ldns_pkt *drdns_query_new_pkt(const char *zone, ldns_rr_type type, uint16_t opcode);

/* Number of requests still in flight on this process (for clean shutdown and tests). */
int drdns_query_in_flight(void);

#endif
