/*
 * Signature expiry, in every role: the earliest RRSIG expiration each
 * nameserver serves, each zone's "time to dark", the alerts to hold and when
 * to re-sign.
 *
 * Why: once a signed zone's RRSIGs expire, validating resolvers reject it,
 * usually long before the SOA EXPIRE would drop it.  The watchdog therefore
 * scans, every dnssec.watch_interval, the copy of every zone that the master
 * and every nameserver serve (AXFR), keeps the earliest expiration of each,
 * and evaluates them every round against the clock:
 *   - time to dark (per zone) = the earlier of the SOA EXPIRE deadline
 *     (detector.h; standby only) and the earliest RRSIG expiration served
 *     anywhere (or by drdns itself when promoted);
 *   - alerts at the configured thresholds (for example 7, 3 and 1 days),
 *     one id per zone and threshold: "rrsig:<zone without the final dot>:<label>"
 *     with <label> from drdns_duration_label ("7d", "36h");
 *   - promoted: re-sign when drdns's own earliest expiration is within
 *     dnssec.refresh.
 *
 * Layers:
 *   drdns_rrsig_summarize()  pure: what one copy of a zone holds;
 *   drdns_rrsig_scan_start() I/O: AXFR many (nameserver, zone) pairs in
 *                            libuv's thread pool and summarize each;
 *   drdns_expiry_evaluate()  pure, simulated-time friendly: from the last
 *                            summaries and the clock to time to dark, alert
 *                            conditions and re-sign decisions.
 */
#ifndef DRDNS_EXPIRY_H
#define DRDNS_EXPIRY_H

#include <ldns/ldns.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct drdns_zone;

/* ---- one copy of a zone ---- */

/* RRSIG times are 32-bit serial-number arithmetic (RFC 4034 3.1.5): the
 * absolute time (unix seconds) closest to now that has these low 32 bits. */
int64_t drdns_rrsig_time(uint32_t field, int64_t now);

struct drdns_rrsig_summary {
	size_t signatures;       /* RRSIG records */
	int64_t earliest;        /* soonest expiration, unix time; 0 when signatures == 0 */
	char earliest_what[300]; /* "www.example.edu. A (key 12345)", "" when none */
	uint32_t serial;         /* the SOA serial of the copy (0 when it has no SOA) */
	bool has_soa;
};

/* Summarize records in any order (an AXFR, a zone).  now: for drdns_rrsig_time. */
void drdns_rrsig_summarize(const ldns_rr_list *rrs, int64_t now, struct drdns_rrsig_summary *out);
void drdns_zone_rrsig_summarize(const struct drdns_zone *z, int64_t now,
                                struct drdns_rrsig_summary *out);

/* ---- the scan (I/O) ---- */

struct drdns_rrsig_target {
	const char *label;   /* the nameserver's name, for reports */
	const char *address; /* IPv4 or IPv6 literal */
	uint16_t port;
	const char *zone; /* "example.edu." */
};

struct drdns_rrsig_result {
	char *label, *address, *zone; /* owned copies of the target's */
	uint16_t port;
	bool fetched;                       /* the AXFR completed */
	struct drdns_rrsig_summary summary; /* valid when fetched */
	char detail[160]; /* "ok", or why not: "REFUSED", "timed out after 10 s" */
};

/* Called once, on the loop, never before drdns_rrsig_scan_start returns.
 * results (n, in target order) are the callee's: free with
 * drdns_rrsig_results_free. */
typedef void (*drdns_rrsig_scan_cb)(struct drdns_rrsig_result *results, size_t n, void *arg);

struct drdns_rrsig_scan;

/*
 * AXFR every target's zone (unsigned, over TCP, from source when not NULL;
 * see axfr.h) in libuv's thread pool and summarize it with `now` taken when
 * each transfer ends.  Targets with the same address run one after the other,
 * different addresses in parallel on at most `parallel` pool threads (>= 1),
 * so one dead nameserver costs at most its own timeouts.  timeout: seconds
 * per transfer.  Returns 0 and *handle (valid until cb has run; may be NULL),
 * or DRDNS_EINVAL / DRDNS_ENOMEM / a libuv error (then cb is never called).
 */
int drdns_rrsig_scan_start(uv_loop_t *loop, const char *source,
                           const struct drdns_rrsig_target *targets, size_t n, double timeout,
                           unsigned parallel, drdns_rrsig_scan_cb cb, void *arg,
                           struct drdns_rrsig_scan **handle);

/* Stop a scan early (shutdown): transfers stop within DRDNS_AXFR_CANCEL_MS, the
 * targets not done are reported "cancelled", and cb still runs once. */
void drdns_rrsig_scan_cancel(struct drdns_rrsig_scan *scan);

void drdns_rrsig_results_free(struct drdns_rrsig_result *r, size_t n);

/* ---- evaluation (pure) ---- */

/* "7d", "36h", "90m", "45s": seconds in the largest of d, h, m, s that divides
 * it exactly ("0s" for 0). */
void drdns_duration_label(uint32_t seconds, char *buf, size_t len);

struct drdns_expiry_conf {
	const uint32_t
	    *thresholds; /* alert levels in seconds (any order, distinct), may be empty */
	size_t n_thresholds;
	uint32_t refresh; /* re-sign when drdns's own earliest expiration is this close */
};

/* One nameserver's copy of a zone, from its last successful scan. */
struct drdns_expiry_copy {
	const char *server; /* label (borrowed) */
	bool known;         /* fetched at least once (the fields below are valid) */
	size_t signatures;
	int64_t earliest;
	const char *earliest_what; /* may be NULL */
};

/* What is known about one zone. */
struct drdns_expiry_zone {
	const char *zone;    /* "example.edu." (borrowed) */
	double soa_deadline; /* the detector's deadline (standby), 0: unknown or not
	                      * applicable (promoted) */
	/* drdns's own copy, when promoted and serving the zone */
	bool own;
	size_t own_signatures;
	int64_t own_earliest;
	/* the last successful scan of each nameserver that carries the zone
	 * (master included), or none yet */
	const struct drdns_expiry_copy *copies;
	size_t n_copies;
};

struct drdns_expiry_out {
	bool is_signed;         /* some copy (or drdns's own) carries signatures */
	int64_t rrsig_dark;     /* the earliest expiration over every known signed copy
	                         * and drdns's own; 0: none */
	const char *rrsig_at;   /* where: a server label, or "drdns" (borrowed); NULL
	                         * when rrsig_dark == 0 */
	double time_to_dark;    /* absolute time: min(soa_deadline, rrsig_dark) over the
	                         * known ones; 0: unknown */
	const char *dark_cause; /* "expire", "rrsig" or NULL (borrowed static string) */
	int64_t next_resign;    /* own && own_signatures: own_earliest - refresh; else 0 */
	bool resign_due;        /* next_resign != 0 && now >= next_resign */
	int level;              /* index into thresholds of the smallest threshold
	                         * >= rrsig_dark - now, or -1 (none reached, or
	                         * unsigned) */
	char alert_id[256];     /* when level >= 0: "rrsig:example.edu:3d" */
	char alert_msg[512];    /* when level >= 0: one line for on_alert and status,
	                         * naming the zone, the time left, the UTC time, the
	                         * server(s) and the record that expires first */
};

/* Evaluate every zone at `now` (unix time); out has n entries. */
void drdns_expiry_evaluate(const struct drdns_expiry_conf *conf,
                           const struct drdns_expiry_zone *zones, size_t n, double now,
                           struct drdns_expiry_out *out);

#endif
