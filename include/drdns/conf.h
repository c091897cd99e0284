/*
 * Configuration (libconfig syntax).  See etc/drdns.conf.example and drdns.conf(5).
 *
 * drdns_conf_load() validates every value (type, range, address syntax, that
 * files and directories exist) and reports every problem as "file:line: message"
 * in the diagnostics collector, sorted by file and line (warnings, prefixed
 * "warning: ", do not make the load fail).  Every path (zones.directory,
 * controller.state_dir, audit_log, control_socket, pid_file, master.tsig_key,
 * secondaries[].tsig_key) is made absolute relative to the directory of the
 * configuration file.  Unknown settings are errors.  See etc/drdns.conf.example
 * for the ranges.
 */
#ifndef DRDNS_CONF_H
#define DRDNS_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct drdns_diag;
struct drdns_tsig_key;

#define DRDNS_CONF_MAX_THRESHOLDS 16

struct drdns_secondary {
	char *name;                 /* NS name, lowercase, trailing dot: "ns1.example.edu." */
	char *address;              /* IPv4 or IPv6 literal */
	uint16_t port;              /* default 53 */
	char *tsig_key_file;        /* absolute path, or NULL */
	struct drdns_tsig_key *key; /* loaded from tsig_key_file, or NULL; owned */
	bool on_campus;          /* goes dark with the master: left out of the watchdog's isolation
	                          * quorum (default false) */
	char **transfer_sources; /* other addresses or prefixes ("192.0.2.0/24") its
	                          * transfers come from; allowed unsigned when it has no
	                          * key; n_transfer_sources entries, owned */
	size_t n_transfer_sources;
};

struct drdns_conf {
	char *path; /* the file this came from, absolute */

	struct {
		char *id;              /* free text naming this controller; default: host name */
		char *address;         /* DR primary address: serves and sends from here */
		uint16_t port;         /* default 53 */
		char *ns_name;         /* the DR primary's own NS name, trailing dot */
		char *control_socket;  /* default DRDNS_DEFAULT_SOCKET (/run/drdns/control.sock) */
		char *state_dir;       /* default /var/lib/drdns; created if missing */
		char *audit_log;       /* default <state_dir>/audit.log */
		char *pid_file;        /* optional */
		char **allow_transfer; /* extra addresses or prefixes ("192.0.2.0/24",
		                        * "2001:db8::/48") allowed unsigned AXFR/IXFR
		                        * (operators' tools); n_allow_transfer entries, owned */
		size_t n_allow_transfer;
		/* What drdnsd says about itself (all optional, NULL: REFUSED / not sent):
		 * CHAOS TXT id.server and hostname.bind, CHAOS TXT version.bind and
		 * version.server, the EDNS NSID option (RFC 5001). */
		char *identity, *version, *nsid;
	} controller;

	struct {
		char *address;
		uint16_t port;     /* default 53 */
		double interval;   /* seconds between probe rounds, default 1.0 */
		double timeout;    /* seconds per probe, default 0.5 */
		int fail_after;    /* consecutive silent rounds before it is down, default 3 */
		int recover_after; /* consecutive answering rounds before it counts as back,
		                    * default 3 */
		/* TSIG for the hand-back relay's AXFR from the master (demote, step-down):
		 * a BIND key file (absolute path), or NULL (unsigned); key loaded from it,
		 * owned. */
		char *tsig_key_file;
		struct drdns_tsig_key *key;
		double axfr_timeout; /* seconds per hand-back AXFR, default 60 */
	} master;

	struct drdns_secondary *secondaries; /* n_secondaries entries, owned */
	size_t n_secondaries;

	struct {
		char *directory; /* DR zone set, absolute path */
		uint32_t dr_ttl; /* TTL ceiling for the DR set, default 600 */
		unsigned min_ns; /* never publish fewer NS while more are known, default 2 */
	} zones;

	struct {
		bool auto_promote;     /* watchdog may promote (issue 3), default false */
		double probe_timeout;  /* seconds per SOA probe at promote/status, default 1.0 */
		int probe_attempts;    /* UDP attempts per probe, default 2 */
		double notify_timeout; /* first NOTIFY retry after this many seconds, default 1.0 */
		int notify_attempts;   /* NOTIFY attempts per secondary, default 5 (backoff x2) */
		double poll_interval;  /* convergence poll interval, default 0.2 */
		double default_wait;   /* convergence wait when --wait is not given, default 120 */
		/* the watchdog (see detector.h) */
		double promote_after;        /* seconds of continuous outage first, default 60 */
		double expire_margin;        /* promote this long before a zone could expire,
		                              * default 3600 */
		double block_after_failover; /* no second automatic failover this long after
		                              * one, default 3600 */
		bool auto_demote;            /* step down as soon as the master is ahead, without
		                              * waiting for the secondaries to follow it; default
		                              * false */
	} policy;

	/* Programs run at events (absolute paths, or NULL); see hooks.h. */
	struct {
		char *pre_promote; /* non-zero exit vetoes an automatic promotion */
		char *post_promote;
		char *post_demote;
		char *on_alert;
		char *on_escalate; /* an alert nobody acknowledged (alerts.h) */
		double timeout;    /* seconds before a hook is killed, default 30 */
	} hooks;

	/* Prometheus text endpoint (http://address:port/metrics); off when address is
	 * NULL. */
	struct {
		char *address;
		uint16_t port; /* default 9353 */
	} metrics;
	/* DNSSEC (dnssec.h): absent (keys NULL), nothing is signed.  A zone is
	 * signed at promotion when keys holds a key for it. */
	struct {
		char *keys;                /* directory of K<zone>+<alg>+<tag>.key/.private */
		uint32_t validity;         /* seconds, default 30 days (1 day .. 1 year) */
		uint32_t inception_offset; /* seconds into the past, default 3600 */
		uint32_t jitter;           /* seconds, default validity / 10 */
		bool nsec3;                /* default false: NSEC */
		uint16_t nsec3_iterations; /* default 0 */
		uint8_t nsec3_salt[255];   /* default empty */
		uint8_t nsec3_salt_len;
		bool nsec3_opt_out; /* default false */
		unsigned threads;   /* signing threads, 0 (default): every CPU */
		uint32_t refresh;   /* promoted: re-sign when the earliest signature drdns
		                     * serves expires within this many seconds; default
		                     * validity / 4, at most (validity - jitter) / 2 */
	} dnssec;
	/* Acknowledgeable alerts (alerts.h) and the RRSIG expiry watch (expiry.h). */
	struct {
		double repeat; /* seconds between on_alert runs until acked, default 3600 */
		unsigned escalate_after; /* repeats before on_escalate, default 3; 0: never */
		uint32_t rrsig_thresholds[DRDNS_CONF_MAX_THRESHOLDS]; /* seconds, descending;
		                                                       * default 7d, 3d, 1d */
		size_t n_rrsig_thresholds;
		double rrsig_scan_interval; /* seconds between AXFR scans of every copy,
		                             * default 3600 */
	} alerts;
	/* DR drills (drdnsctl drill). */
	struct {
		char *zone; /* the drill zone, lowercase with trailing dot, or NULL */
	} drill;
};

/* Load and validate path.  Returns 0 and *out on success; DRDNS_ECONF with every
 * problem appended to diag otherwise (diag may be NULL).  Caller frees *out with
 * drdns_conf_free(). */
int drdns_conf_load(const char *path, struct drdns_conf **out, struct drdns_diag *diag);
void drdns_conf_free(struct drdns_conf *conf);

/* The secondary whose NS name equals name (case-insensitive, trailing dot
 * optional), or NULL. */
const struct drdns_secondary *drdns_conf_find_secondary(const struct drdns_conf *conf,
                                                        const char *name);

#endif
