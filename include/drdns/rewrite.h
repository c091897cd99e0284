/*
 * The promotion rewrite of one DR zone (pure: no I/O, no clock).
 *
 *   NS    keep ns_name where the DR file lists it (it is never added: whether
 *         drdnsd answers the world as a public nameserver is the operator's
 *         choice, made in the DR file) and every NS whose address answered an
 *         SOA query for this zone; drop the rest.  If fewer than min_ns remain
 *         while more are known, dropped ones are put back in file order.
 *   A/AAAA  never removed: only the apex NS set changes, so no zone cut goes
 *         and no record turns into orphaned glue.  A dropped NS's in-zone
 *         addresses are authoritative data (the host may be a web server or an
 *         MX target) and stay; below a delegation they stay with it.
 *   SOA   MNAME := ns_name (always, listed or not: the secondaries and NOTIFY
 *         need the primary's name); serial := drdns_serial_next(observed, file serial);
 *         MINIMUM clamped to dr_ttl.
 *   TTL   every TTL clamped to dr_ttl.
 *
 * The plan records every decision so `promote --dry-run` can show it.
 */
#ifndef DRDNS_REWRITE_H
#define DRDNS_REWRITE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct drdns_zone;
struct drdns_diag;

/* What the probes found out about one NS name, for one zone. */
struct drdns_ns_probe {
	const char *name;    /* NS target, lowercase, trailing dot */
	const char *address; /* address probed, or NULL when none is known */
	bool answered;       /* answered authoritatively with the zone's SOA */
	const char *detail;  /* why not ("timeout", "REFUSED", ...), may be NULL */
};

struct drdns_rewrite_input {
	const char *ns_name; /* controller.ns_name */
	uint32_t dr_ttl;
	unsigned min_ns;
	const struct drdns_ns_probe *probes; /* one per NS name; a name without an entry
	                                      * counts as "no address known" */
	size_t n_probes;
	const uint32_t *observed; /* serials seen on the master and the secondaries */
	size_t n_observed;
};

enum drdns_ns_verdict {
	DRDNS_NS_KEEP_SELF,     /* this controller's ns_name, listed in the DR file */
	DRDNS_NS_KEEP_ANSWERED, /* answered an SOA query for the zone */
	DRDNS_NS_KEEP_MIN_NS,   /* did not answer, kept to honour min_ns */
	DRDNS_NS_DROP,          /* dropped (its address records stay: see kept_addresses) */
};

struct drdns_ns_decision {
	char *name;    /* owned */
	char *address; /* owned, may be NULL */
	enum drdns_ns_verdict verdict;
	char *reason; /* owned, human text */
};

struct drdns_rewrite_plan {
	char *zone;           /* owned */
	uint32_t file_serial; /* the floor from the DR file */
	uint32_t max_observed;
	bool have_observed;
	uint32_t new_serial;
	bool publishes_self;          /* the DR file lists ns_name in the NS set: drdnsd is a
	                               * public nameserver of the zone (JSON "publishes_self") */
	struct drdns_ns_decision *ns; /* n_ns entries, owned */
	size_t n_ns;
	/* True glue removed with a zone cut the rewrite removes, "owner TYPE address"
	 * ("ns.sub.example.edu. A 192.0.2.9"), owned.  The rewrite edits only the
	 * apex NS set and removes no cut, so this is empty today (JSON
	 * "dropped_glue": []). */
	char **dropped_glue;
	size_t n_dropped_glue;
	/* Address records of dropped NS names that stay, "owner TYPE address"
	 * ("ns0.example.edu. A 198.51.100.10"), owned: authoritative data at or
	 * below the apex (or glue of a kept delegation), never removed with the NS
	 * (JSON "kept_addresses"). */
	char **kept_addresses;
	size_t n_kept_addresses;
	size_t ttls_clamped; /* records whose TTL was lowered */
	bool soa_minimum_clamped;
	char *warning; /* owned, may be NULL (e.g. "kept 1 unanswering NS for min_ns") */
};

/* Rewrite in into a new zone.  On success *out and *plan are newly allocated
 * (caller frees with drdns_zone_free / drdns_rewrite_plan_free).  Fails with
 * DRDNS_ESERIAL (no safe serial; message in err) or DRDNS_ENOMEM; then nothing is
 * returned. */
int drdns_rewrite_zone(const struct drdns_zone *in, const struct drdns_rewrite_input *input,
                       struct drdns_zone **out, struct drdns_rewrite_plan **plan, char *err,
                       size_t errlen);

void drdns_rewrite_plan_free(struct drdns_rewrite_plan *plan);

/* Can zone be promoted with this ns_name?  When the zone lists ns_name in its NS
 * set and ns_name is inside the zone, the DR file must carry its address (glue):
 * drdns will not invent one.  Returns 0, or DRDNS_EZONE with "file:line: message"
 * appended to diag (may be NULL). */
int drdns_rewrite_check(const struct drdns_zone *zone, const char *ns_name,
                        struct drdns_diag *diag);

/* Does zone's apex NS set list ns_name (case-insensitive, trailing dot optional)?
 * That is: does a promotion publish drdnsd as a public nameserver of the zone? */
bool drdns_rewrite_publishes_self(const struct drdns_zone *zone, const char *ns_name);

/* The plan as a JSON object (new reference). */
json_t *drdns_rewrite_plan_json(const struct drdns_rewrite_plan *plan);

const char *drdns_ns_verdict_str(enum drdns_ns_verdict v);

#endif
