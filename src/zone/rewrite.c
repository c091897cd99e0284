#include "drdns/rewrite.h"
#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/serial.h"
#include "drdns/zone.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *drdns_ns_verdict_str(enum drdns_ns_verdict v)
{
	switch (v) {
	case DRDNS_NS_KEEP_SELF: return "keep-self";
	case DRDNS_NS_KEEP_ANSWERED: return "keep-answered";
	case DRDNS_NS_KEEP_MIN_NS: return "keep-min-ns";
	case DRDNS_NS_DROP: return "drop";
	}
	return "?";
}

void drdns_rewrite_plan_free(struct drdns_rewrite_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; i < plan->n_ns; i++) {
		free(plan->ns[i].name);
		free(plan->ns[i].address);
		free(plan->ns[i].reason);
	}
	free(plan->ns);
	for (size_t i = 0; i < plan->n_dropped_glue; i++)
		free(plan->dropped_glue[i]);
	free(plan->dropped_glue);
	for (size_t i = 0; i < plan->n_kept_addresses; i++)
		free(plan->kept_addresses[i]);
	free(plan->kept_addresses);
	free(plan->zone);
	free(plan->warning);
	free(plan);
}

static const struct drdns_ns_probe *find_probe(const struct drdns_rewrite_input *in,
                                               const char *name)
{
	for (size_t i = 0; i < in->n_probes; i++)
		if (in->probes[i].name && !strcasecmp(in->probes[i].name, name))
			return &in->probes[i];
	return NULL;
}

static bool is_kept(enum drdns_ns_verdict v)
{
	return v != DRDNS_NS_DROP;
}

static bool names_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la && a[la - 1] == '.')
		la--;
	if (lb && b[lb - 1] == '.')
		lb--;
	return la == lb && !strncasecmp(a, b, la);
}

/* Decide every NS name.  The controller's own name is kept where the DR file
 * lists it, and never added: publishing drdnsd is the operator's choice. */
static int decide_ns(const struct drdns_zone *in, const struct drdns_rewrite_input *input,
                     struct drdns_rewrite_plan *plan)
{
	char **names = NULL;
	size_t n = drdns_zone_ns_names(in, &names);

	plan->ns = calloc(n + 1, sizeof(*plan->ns));
	if (!plan->ns)
		goto nomem;
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		struct drdns_ns_decision *d = &plan->ns[plan->n_ns++];
		d->name = names[i];
		names[i] = NULL;
		if (names_equal(d->name, input->ns_name)) {
			d->verdict = DRDNS_NS_KEEP_SELF;
			d->reason =
			    strdup("this controller (controller.ns_name), listed in the DR file");
			plan->publishes_self = true;
			kept++;
			if (!d->reason)
				goto nomem;
			continue;
		}
		const struct drdns_ns_probe *p = find_probe(input, d->name);
		if (p && p->address)
			d->address = strdup(p->address);
		if (p && p->answered) {
			d->verdict = DRDNS_NS_KEEP_ANSWERED;
			d->reason = strdup("answered an SOA query for the zone");
			kept++;
		} else {
			d->verdict = DRDNS_NS_DROP;
			if (!p || !p->address)
				d->reason = strdup(
				    "no address known (not a configured secondary, no glue)");
			else if (asprintf(&d->reason,
			                  "did not answer an SOA query for the zone (%s)",
			                  p->detail ? p->detail : "no answer") < 0)
				d->reason = NULL;
		}
		if (!d->reason)
			goto nomem;
	}
	/* Never go below min_ns while more nameservers are known. */
	size_t restored = 0;
	for (size_t i = 0; i < plan->n_ns && kept < input->min_ns; i++) {
		struct drdns_ns_decision *d = &plan->ns[i];
		if (d->verdict != DRDNS_NS_DROP)
			continue;
		char *why = NULL;
		if (asprintf(&why, "%s; kept so the zone keeps min_ns=%u nameservers", d->reason,
		             input->min_ns) < 0)
			goto nomem;
		free(d->reason);
		d->reason = why;
		d->verdict = DRDNS_NS_KEEP_MIN_NS;
		kept++;
		restored++;
	}
	int w = 0;
	if (kept < input->min_ns)
		w = asprintf(&plan->warning, "only %zu nameserver(s) known, fewer than min_ns=%u",
		             kept, input->min_ns);
	else if (restored)
		w = asprintf(
		    &plan->warning,
		    "%zu nameserver(s) kept although they did not answer, to honour min_ns=%u",
		    restored, input->min_ns);
	if (w < 0)
		plan->warning = NULL;
	free(names);
	return 0;
nomem:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return DRDNS_ENOMEM;
}

static const struct drdns_ns_decision *decision_for(const struct drdns_rewrite_plan *plan,
                                                    const ldns_rdf *name)
{
	char *text = ldns_rdf2str(name);
	const struct drdns_ns_decision *found = NULL;
	for (size_t i = 0; text && i < plan->n_ns && !found; i++)
		if (names_equal(plan->ns[i].name, text))
			found = &plan->ns[i];
	free(text);
	return found;
}

static bool clamp_ttl(ldns_rr *rr, uint32_t max)
{
	if (ldns_rr_ttl(rr) <= max)
		return false;
	ldns_rr_set_ttl(rr, max);
	return true;
}

/* "ns0.example.edu. A 198.51.100.10": an address of a dropped NS, kept. */
static int push_address_note(struct drdns_rewrite_plan *plan, const ldns_rr *rr)
{
	char *owner = ldns_rdf2str(ldns_rr_owner(rr));
	char *type = ldns_rr_type2str(ldns_rr_get_type(rr));
	char *addr = ldns_rdf2str(ldns_rr_rdf(rr, 0));
	char *text = NULL;
	if (!owner || !type || !addr || asprintf(&text, "%s %s %s", owner, type, addr) < 0)
		text = NULL;
	free(owner);
	free(type);
	free(addr);
	char **grown =
	    text ? realloc(plan->kept_addresses, (plan->n_kept_addresses + 1) * sizeof(*grown))
	         : NULL;
	if (!grown) {
		free(text);
		return DRDNS_ENOMEM;
	}
	plan->kept_addresses = grown;
	plan->kept_addresses[plan->n_kept_addresses++] = text;
	return 0;
}

/* DNSSEC data that the rewrite would invalidate (new SOA, NS set and glue). */
static bool is_dnssec_type(ldns_rr_type t)
{
	return t == LDNS_RR_TYPE_RRSIG || t == LDNS_RR_TYPE_DNSKEY || t == LDNS_RR_TYPE_NSEC ||
	       t == LDNS_RR_TYPE_NSEC3 || t == LDNS_RR_TYPE_NSEC3PARAM;
}

int drdns_rewrite_check(const struct drdns_zone *zone, const char *ns_name, struct drdns_diag *diag)
{
	/* drdns cannot re-sign yet: a signed zone with a new SOA and NS set but the old
	 * signatures is bogus to every validating resolver, the very outage a failover
	 * must avoid.  Refuse instead of publishing it. */
	for (size_t i = 0; i < ldns_rr_list_rr_count(zone->rrs); i++) {
		ldns_rr_type t = ldns_rr_get_type(ldns_rr_list_rr(zone->rrs, i));
		if (!is_dnssec_type(t))
			continue;
		char *type = ldns_rr_type2str(t);
		drdns_diag_error(
		    diag,
		    "%s:1: zone %s carries DNSSEC records (%s): drdns cannot re-sign a "
		    "rewritten zone yet, and the old signatures would make it bogus; "
		    "an unsigned DR file is safe only while the parent has no DS for the zone",
		    zone->path ? zone->path : zone->name, zone->name, type ? type : "?");
		free(type);
		return DRDNS_EZONE;
	}
	/* ns_name only needs an address where the zone publishes it (NS record): the
	 * SOA MNAME alone needs none. */
	if (!drdns_rewrite_publishes_self(zone, ns_name))
		return 0;
	ldns_rdf *self = ldns_dname_new_frm_str(ns_name);
	if (!self)
		return DRDNS_ENOMEM;
	bool inside = ldns_dname_compare(self, zone->origin) == 0 ||
	              ldns_dname_is_subdomain(self, zone->origin);
	ldns_rdf_deep_free(self);
	char *addr = inside ? drdns_zone_glue_address(zone, ns_name) : NULL;
	bool ok = !inside || addr;
	free(addr);
	if (ok)
		return 0;
	drdns_diag_error(diag,
	                 "%s:1: zone %s lists controller.ns_name %s in its NS set, inside the "
	                 "zone, but the DR file has no address (A/AAAA) for it: add its public "
	                 "address to the file",
	                 zone->path ? zone->path : zone->name, zone->name, ns_name);
	return DRDNS_EZONE;
}

bool drdns_rewrite_publishes_self(const struct drdns_zone *zone, const char *ns_name)
{
	char **names = NULL;
	size_t n = drdns_zone_ns_names(zone, &names);
	bool listed = false;
	for (size_t i = 0; i < n; i++) {
		if (ns_name && names_equal(names[i], ns_name))
			listed = true;
		free(names[i]);
	}
	free(names);
	return listed;
}

int drdns_rewrite_zone(const struct drdns_zone *in, const struct drdns_rewrite_input *input,
                       struct drdns_zone **out, struct drdns_rewrite_plan **plan_out, char *err,
                       size_t errlen)
{
	struct drdns_rewrite_plan *plan = calloc(1, sizeof(*plan));
	struct drdns_zone *z = calloc(1, sizeof(*z));
	int ret = DRDNS_ENOMEM;
	const char *why = NULL;

	if (!plan || !z)
		goto fail;
	struct drdns_diag diag = {0};
	if ((ret = drdns_rewrite_check(in, input->ns_name, &diag)) < 0) {
		snprintf(err, errlen, "%s", diag.n ? diag.msgs[0] : "invalid zone");
		drdns_diag_clear(&diag);
		goto fail;
	}
	ret = DRDNS_ENOMEM;
	plan->zone = strdup(in->name);
	plan->file_serial = drdns_zone_serial(in);
	if (!plan->zone)
		goto fail;

	ret = drdns_serial_next(input->observed, input->n_observed, plan->file_serial,
	                        &plan->new_serial, &why);
	if (ret < 0) {
		snprintf(err, errlen, "zone %s: %s", in->name, why);
		goto fail;
	}
	plan->have_observed = input->n_observed > 0;
	for (size_t i = 0; i < input->n_observed; i++) /* ordered: serial_next checked it */
		if (i == 0 || drdns_serial_gt(input->observed[i], plan->max_observed))
			plan->max_observed = input->observed[i];

	ret = DRDNS_ENOMEM;
	if (decide_ns(in, input, plan) < 0)
		goto fail;

	z->name = strdup(in->name);
	z->origin = ldns_rdf_clone(in->origin);
	z->soa = ldns_rr_clone(in->soa);
	z->rrs = ldns_rr_list_new();
	if (!z->name || !z->origin || !z->soa || !z->rrs)
		goto fail;

	for (size_t i = 0; i < ldns_rr_list_rr_count(in->rrs); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(in->rrs, i);
		ldns_rr_type type = ldns_rr_get_type(rr);
		const ldns_rdf *owner = ldns_rr_owner(rr);
		bool apex = ldns_dname_compare(owner, in->origin) == 0;
		if (type == LDNS_RR_TYPE_NS && apex) {
			const struct drdns_ns_decision *d = decision_for(plan, ldns_rr_rdf(rr, 0));
			if (d && !is_kept(d->verdict))
				continue;
		}
		/* Address records stay, a dropped NS's too: at or below the apex and
		 * above every cut they are authoritative data (the host may also be a
		 * web server or an MX target), and below a cut they are the glue of a
		 * delegation the rewrite keeps (it edits the apex NS set only, so it
		 * removes no cut).  Only true glue goes, with its cut: none here. */
		if ((type == LDNS_RR_TYPE_A || type == LDNS_RR_TYPE_AAAA) && !apex) {
			const struct drdns_ns_decision *d = decision_for(plan, owner);
			if (d && !is_kept(d->verdict) && push_address_note(plan, rr) < 0)
				goto fail;
		}
		ldns_rr *copy = ldns_rr_clone(rr);
		if (!copy)
			goto fail;
		if (clamp_ttl(copy, input->dr_ttl))
			plan->ttls_clamped++;
		ldns_rr_list_push_rr(z->rrs, copy);
	}
	/* SOA: MNAME, serial, TTL and negative-caching TTL. */
	ldns_rdf *mname = ldns_dname_new_frm_str(input->ns_name);
	ldns_rdf *serial = ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, plan->new_serial);
	if (!mname || !serial) {
		ldns_rdf_deep_free(mname);
		ldns_rdf_deep_free(serial);
		goto fail;
	}
	ldns_rdf_deep_free(ldns_rr_set_rdf(z->soa, mname, 0));
	ldns_rdf_deep_free(ldns_rr_set_rdf(z->soa, serial, 2));
	if (clamp_ttl(z->soa, input->dr_ttl))
		plan->ttls_clamped++;
	if (ldns_rdf2native_int32(ldns_rr_rdf(z->soa, 6)) > input->dr_ttl) {
		ldns_rdf *minimum = ldns_native2rdf_int32(LDNS_RDF_TYPE_PERIOD, input->dr_ttl);
		if (!minimum)
			goto fail;
		ldns_rdf_deep_free(ldns_rr_set_rdf(z->soa, minimum, 6));
		plan->soa_minimum_clamped = true;
	}

	*out = z;
	*plan_out = plan;
	return 0;
fail:
	if (ret == DRDNS_ENOMEM)
		snprintf(err, errlen, "zone %s: out of memory", in->name);
	drdns_zone_free(z);
	drdns_rewrite_plan_free(plan);
	return ret;
}

json_t *drdns_rewrite_plan_json(const struct drdns_rewrite_plan *plan)
{
	json_t *ns = json_array();
	for (size_t i = 0; i < plan->n_ns; i++) {
		const struct drdns_ns_decision *d = &plan->ns[i];
		json_array_append_new(ns, json_pack("{s:s, s:s?, s:s, s:s}", "name", d->name,
		                                    "address", d->address, "verdict",
		                                    drdns_ns_verdict_str(d->verdict), "reason",
		                                    d->reason));
	}
	json_t *glue = json_array();
	for (size_t i = 0; i < plan->n_dropped_glue; i++)
		json_array_append_new(glue, json_string(plan->dropped_glue[i]));
	json_t *kept = json_array();
	for (size_t i = 0; i < plan->n_kept_addresses; i++)
		json_array_append_new(kept, json_string(plan->kept_addresses[i]));
	json_t *obj =
	    json_pack("{s:s, s:I, s:I, s:I, s:b, s:o, s:o, s:o, s:I, s:b, s:s?}", "zone",
	              plan->zone, "file_serial", (json_int_t)plan->file_serial, "max_observed",
	              (json_int_t)plan->max_observed, "new_serial", (json_int_t)plan->new_serial,
	              "publishes_self", plan->publishes_self, "ns", ns, "dropped_glue", glue,
	              "kept_addresses", kept, "ttls_clamped", (json_int_t)plan->ttls_clamped,
	              "soa_minimum_clamped", plan->soa_minimum_clamped, "warning", plan->warning);
	if (obj && !plan->have_observed)
		json_object_set_new(obj, "max_observed", json_null());
	return obj;
}
