/*
 * Advisory checks on the DR zone set (see checks.h).  Read-only; ldns does
 * the name and address work.
 */
#include "drdns/checks.h"

#include "drdns/conf.h"

#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/rewrite.h"
#include "drdns/zone.h"

#include <ldns/ldns.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *where(const struct drdns_zone *z)
{
	return z->path ? z->path : z->name;
}

/* The set's zone whose origin is name or an ancestor of it (deepest), or NULL. */
static const struct drdns_zone *covering_zone(const struct drdns_zoneset *set, const ldns_rdf *name)
{
	const struct drdns_zone *best = NULL;
	for (size_t i = 0; i < set->n; i++) {
		const struct drdns_zone *z = set->zones[i];
		if (ldns_dname_compare(name, z->origin) != 0 &&
		    !ldns_dname_is_subdomain(name, z->origin))
			continue;
		if (!best ||
		    ldns_dname_label_count(z->origin) > ldns_dname_label_count(best->origin))
			best = z;
	}
	return best;
}

static bool has_ptr(const struct drdns_zone *rz, const ldns_rdf *rev, const ldns_rdf *host)
{
	for (size_t i = 0; i < ldns_rr_list_rr_count(rz->rrs); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(rz->rrs, i);
		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_PTR && ldns_rr_rd_count(rr) == 1 &&
		    ldns_dname_compare(ldns_rr_owner(rr), rev) == 0 &&
		    ldns_dname_compare(ldns_rr_rdf(rr, 0), host) == 0)
			return true;
	}
	return false;
}

static size_t check_reverse(const struct drdns_zoneset *set, const struct drdns_zone *z,
                            struct drdns_diag *diag)
{
	size_t n = 0;
	for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
		ldns_rr_type t = ldns_rr_get_type(rr);
		if ((t != LDNS_RR_TYPE_A && t != LDNS_RR_TYPE_AAAA) || ldns_rr_rd_count(rr) != 1)
			continue;
		ldns_rdf *rev = ldns_rdf_address_reverse(ldns_rr_rdf(rr, 0));
		const struct drdns_zone *rz = rev ? covering_zone(set, rev) : NULL;
		if (rz && !has_ptr(rz, rev, ldns_rr_owner(rr))) {
			char *host = ldns_rdf2str(ldns_rr_owner(rr));
			char *addr = ldns_rdf2str(ldns_rr_rdf(rr, 0));
			char *revs = ldns_rdf2str(rev);
			drdns_diag_warn(diag,
			                "%s: warning: zone %s: %s has address %s but the DR "
			                "reverse zone %s has "
			                "no PTR %s -> %s (mail and SSH check reverse DNS)",
			                where(z), z->name, host ? host : "?", addr ? addr : "?",
			                rz->name, revs ? revs : "?", host ? host : "?");
			free(host);
			free(addr);
			free(revs);
			n++;
		}
		ldns_rdf_deep_free(rev);
	}
	return n;
}

static size_t check_ttls(const struct drdns_zone *z, uint32_t dr_ttl, struct drdns_diag *diag)
{
	size_t above = 0;
	uint32_t max = ldns_rr_ttl(z->soa);
	above += ldns_rr_ttl(z->soa) > dr_ttl;
	for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
		uint32_t ttl = ldns_rr_ttl(ldns_rr_list_rr(z->rrs, i));
		above += ttl > dr_ttl;
		if (ttl > max)
			max = ttl;
	}
	if (!above)
		return 0;
	drdns_diag_warn(
	    diag,
	    "%s: warning: zone %s: %zu record(s) have a TTL above dr_ttl %u (up to %u); they "
	    "are served with TTL %u after promotion",
	    where(z), z->name, above, dr_ttl, max, dr_ttl);
	return 1;
}

static size_t check_soa(const struct drdns_zone *z, struct drdns_diag *diag)
{
	if (ldns_rr_rd_count(z->soa) < 7)
		return 0;
	uint32_t refresh = ldns_rdf2native_int32(ldns_rr_rdf(z->soa, 3));
	uint32_t retry = ldns_rdf2native_int32(ldns_rr_rdf(z->soa, 4));
	uint32_t expire = ldns_rdf2native_int32(ldns_rr_rdf(z->soa, 5));
	size_t n = 0;
	if ((uint64_t)expire < (uint64_t)refresh + retry) {
		drdns_diag_warn(
		    diag,
		    "%s: warning: zone %s: SOA EXPIRE %u is below REFRESH %u + RETRY %u: a "
		    "secondary can drop the zone before it has retried",
		    where(z), z->name, expire, refresh, retry);
		n++;
	}
	if (expire < DRDNS_EXPIRE_RECOMMENDED) {
		drdns_diag_warn(
		    diag,
		    "%s: warning: zone %s: SOA EXPIRE %u is below one week (%u): after a promotion "
		    "the secondaries keep this value, which leaves little time to fail "
		    "back",
		    where(z), z->name, expire, DRDNS_EXPIRE_RECOMMENDED);
		n++;
	}
	return n;
}

/* Is there an A or AAAA record for name anywhere in the set? */
static bool has_address(const struct drdns_zoneset *set, const ldns_rdf *name)
{
	const struct drdns_zone *z = covering_zone(set, name);
	for (size_t i = 0; z && i < ldns_rr_list_rr_count(z->rrs); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
		ldns_rr_type t = ldns_rr_get_type(rr);
		if ((t == LDNS_RR_TYPE_A || t == LDNS_RR_TYPE_AAAA) &&
		    ldns_dname_compare(ldns_rr_owner(rr), name) == 0)
			return true;
	}
	return false;
}

static bool name_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

static size_t check_ns(const struct drdns_zoneset *set, const struct drdns_zone *z,
                       const struct drdns_check_input *in, struct drdns_diag *diag)
{
	size_t n = 0;
	for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_NS || ldns_rr_rd_count(rr) != 1 ||
		    ldns_dname_compare(ldns_rr_owner(rr), z->origin) != 0)
			continue;
		char *target = ldns_rdf2str(ldns_rr_rdf(rr, 0));
		if (!target)
			continue;
		bool known = in->ns_name && name_eq(target, in->ns_name);
		for (size_t k = 0; !known && k < in->n_known; k++)
			known = name_eq(target, in->known_ns[k]);
		if (!known && !has_address(set, ldns_rr_rdf(rr, 0))) {
			drdns_diag_warn(
			    diag,
			    "%s: warning: zone %s: NS %s is not a configured secondary and has no "
			    "address in the DR set: drdns can neither probe nor notify it, so "
			    "a promotion drops it (unless min_ns keeps it)",
			    where(z), z->name, target);
			n++;
		}
		free(target);
	}
	return n;
}

size_t drdns_zoneset_check(const struct drdns_zoneset *set, const struct drdns_check_input *in,
                           struct drdns_diag *diag)
{
	size_t n = 0;
	for (size_t i = 0; set && i < set->n; i++) {
		const struct drdns_zone *z = set->zones[i];
		n += check_reverse(set, z, diag);
		n += check_ttls(z, in->dr_ttl, diag);
		n += check_soa(z, diag);
		n += check_ns(set, z, in, diag);
	}
	return n;
}

int drdns_zoneset_load_checked(const char *dir, const char *ns_name, struct drdns_zoneset **out,
                               struct drdns_diag *diag)
{
	struct drdns_zoneset *set = NULL;
	int ret = drdns_zoneset_load_dir(dir, &set, diag);
	for (size_t i = 0; set && i < set->n; i++) /* every zone's problems, not the first */
		if (drdns_rewrite_check(set->zones[i], ns_name, diag) < 0)
			ret = DRDNS_EZONE;
	if (ret < 0) {
		drdns_zoneset_free(set);
		return ret;
	}
	*out = set;
	return 0;
}

size_t drdns_zoneset_check_conf(const struct drdns_zoneset *set, const struct drdns_conf *conf,
                                struct drdns_diag *diag)
{
	const char **known = calloc(conf->n_secondaries + 1, sizeof(*known));
	for (size_t i = 0; known && i < conf->n_secondaries; i++)
		known[i] = conf->secondaries[i].name;
	struct drdns_check_input in = {
	    .dr_ttl = conf->zones.dr_ttl,
	    .ns_name = conf->controller.ns_name,
	    .known_ns = known,
	    .n_known = known ? conf->n_secondaries : 0,
	};
	size_t n = drdns_zoneset_check(set, &in, diag);
	free(known);
	return n;
}
