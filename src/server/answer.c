/*
 * Queries (everything but transfers and NOTIFY) for the served zone set: the
 * answer engine, on the zones' indexes (zindex.h), with NSD 4.6 as the
 * reference for every choice:
 *   - RFC 1034 4.3.2: the deepest zone cut above (or at) the name gives a
 *     referral (AA clear unless a CNAME came first): the cut's NS in
 *     authority, addresses of its targets from the zone (glue) in
 *     additional; DS at a cut is answered from the parent side, also when
 *     the child is a served zone too (zone_for_query); CNAMEs are
 *     followed within every served zone (a loop or a target outside them ends
 *     the chain, with nothing in authority);
 *   - positive answers carry the final zone's apex NS set in authority (not
 *     for the apex NS set itself, nor for DS at a cut), and A/AAAA of NS, MX
 *     and SRV targets in the same zone in additional (RRsets already in the
 *     message are not repeated);
 *   - NXDOMAIN / NODATA: the SOA in authority with TTL min(SOA TTL, MINIMUM)
 *     (RFC 2308 3);
 *   - RFC 4592 wildcards: only when no name (not even an empty non-terminal)
 *     matches, from the closest encloser's "*" child, owner rewritten;
 *   - ANY: the name's first RRset only (RFC 8482 4.1, as NSD);
 *   - DO (RFC 4035 3.1): RRSIGs with every RRset, NSEC or NSEC3 (RFC 5155
 *     7.2) proofs for NXDOMAIN, NODATA, wildcard answers and NODATA, and
 *     unsigned delegations (opt-out: closest provable encloser);
 *   - truncation (answer_fit): RRsets are never split; an answer or
 *     authority RRset that does not fit sets TC and ends the message (but
 *     the apex NS set of a positive answer is left out without TC); an
 *     additional RRset that does not fit is left out, with TC only when
 *     a referral would go without any glue.
 */
#include "server_internal.h"
#include "zindex.h"

#include "drdns/error.h"
#include "drdns/log.h"
#include "drdns/zone.h"

#include <stdlib.h>
#include <string.h>

#include <ldns/ldns.h>

#define MAX_ITEMS 64
#define MAX_CHAIN 16

struct item {
	const struct zrrset *set;
	bool sigs_only;          /* a query for type RRSIG: the set's RRSIGs as the answer */
	bool optional;           /* left out without TC when it does not fit (NSD: the
	                          * apex NS set of a positive answer) */
	const struct zindex *ix; /* the zone it comes from (additional lookups) */
	ldns_rdf *owner;         /* wildcard expansion: the query name (owned), or NULL */
	uint32_t ttl_cap;        /* 0: none */
};

struct ans {
	struct item it[3][MAX_ITEMS];
	size_t n[3];
	bool dnssec;   /* DO */
	bool referral; /* its additional section is the referral's glue */
	bool aa;
	int rcode;
};

static bool ans_has(const struct ans *a, const struct zrrset *s)
{
	for (int sec = 0; sec < 3; sec++)
		for (size_t i = 0; i < a->n[sec]; i++)
			if (a->it[sec][i].set == s && !a->it[sec][i].sigs_only &&
			    !a->it[sec][i].owner)
				return true;
	return false;
}

static void ans_add(struct ans *a, int sec, const struct zindex *ix, const struct zrrset *s,
                    const ldns_rdf *owner, uint32_t ttl_cap)
{
	if (!s || a->n[sec] == MAX_ITEMS)
		return;
	if (!owner && ans_has(a, s))
		return;
	struct item *it = &a->it[sec][a->n[sec]];
	it->set = s;
	it->ix = ix;
	it->owner = owner ? ldns_rdf_clone(owner) : NULL;
	it->ttl_cap = ttl_cap;
	if (owner && !it->owner)
		return;
	a->n[sec]++;
}

/* qtype RRSIG: every RRSIG at n, as NSD (no DNSSEC semantics: RFC 4035 3.1.5
 * leaves it open) */
static bool add_all_sigs(struct ans *a, const struct zindex *ix, const struct zname *n,
                         const ldns_rdf *owner)
{
	bool any = false;
	for (uint32_t i = 0; i < n->nsets; i++) {
		if (!n->sets[i].nsig || a->n[0] == MAX_ITEMS)
			continue;
		ans_add(a, 0, ix, &n->sets[i], owner, 0);
		a->it[0][a->n[0] - 1].sigs_only = true;
		any = true;
	}
	return any;
}

static void ans_free(struct ans *a)
{
	for (int sec = 0; sec < 3; sec++)
		for (size_t i = 0; i < a->n[sec]; i++)
			ldns_rdf_deep_free(a->it[sec][i].owner);
}

/* name cut to its last k labels (newly allocated) */
static ldns_rdf *ancestor(const ldns_rdf *name, size_t k)
{
	size_t nl = ldns_dname_label_count(name);
	return ldns_dname_clone_from(name, (uint16_t)(nl - k));
}

static ldns_rdf *wildcard_of(const ldns_rdf *ce)
{
	ldns_rdf *w = ldns_dname_new_frm_str("*");
	if (w && ldns_dname_cat(w, ce) != LDNS_STATUS_OK) {
		ldns_rdf_deep_free(w);
		return NULL;
	}
	return w;
}

/* ------------------------------------------------------------ proofs */

static bool signed_nsec(const struct zindex *ix)
{
	return ix->n_nsec > 0;
}

static bool signed_nsec3(const struct zindex *ix)
{
	return ix->n_nsec3 > 0 && ix->has_nsec3param;
}

static void add_nsec_of(struct ans *a, const struct zindex *ix, const struct zname *n)
{
	if (n)
		ans_add(a, 1, ix, zname_rrset(n, LDNS_RR_TYPE_NSEC), NULL, 0);
}

static void add_nsec3_of(struct ans *a, const struct zindex *ix, const struct zname *n)
{
	if (n)
		ans_add(a, 1, ix, zname_rrset(n, LDNS_RR_TYPE_NSEC3), NULL, 0);
}

/* NSEC3 covering the next closer name of name below ce (labels(ce) + 1). */
static void add_next_closer(struct ans *a, const struct zindex *ix, const ldns_rdf *name,
                            const ldns_rdf *ce)
{
	size_t k = ldns_dname_label_count(ce) + 1;
	if (k > ldns_dname_label_count(name))
		return;
	ldns_rdf *nc = ancestor(name, k);
	if (nc)
		add_nsec3_of(a, ix, zindex_nsec3(ix, nc, false));
	ldns_rdf_deep_free(nc);
}

/* RFC 5155 7.2.1 without the wildcard: the closest provable encloser of name
 * (the deepest ancestor with a matching NSEC3) and the next closer name. */
static void add_cpe_proof(struct ans *a, const struct zindex *ix, const ldns_rdf *name)
{
	size_t al = ldns_dname_label_count(ix->zone->origin);
	for (size_t k = ldns_dname_label_count(name); k >= al && k > 0; k--) {
		ldns_rdf *anc = ancestor(name, k);
		const struct zname *m = anc ? zindex_nsec3(ix, anc, true) : NULL;
		if (m) {
			add_nsec3_of(a, ix, m);
			add_next_closer(a, ix, name, anc);
			ldns_rdf_deep_free(anc);
			return;
		}
		ldns_rdf_deep_free(anc);
	}
}

static void add_neg_soa(struct ans *a, const struct zindex *ix)
{
	const struct zrrset *soa = zname_rrset(&ix->names[ix->apex], LDNS_RR_TYPE_SOA);
	if (!soa)
		return;
	const ldns_rr *rr = soa->rrs[0];
	uint32_t cap = ldns_rr_ttl(rr);
	const ldns_rdf *min = ldns_rr_rdf(rr, 6);
	if (min && ldns_rdf_size(min) == 4 && ldns_rdf2native_int32(min) < cap)
		cap = ldns_rdf2native_int32(min);
	ans_add(a, 1, ix, soa, NULL, cap ? cap : 1);
	if (cap == 0) /* a zero cap: apply it exactly */
		a->it[1][a->n[1] - 1].ttl_cap = UINT32_MAX;
}

static void nxdomain(struct ans *a, const struct zindex *ix, const ldns_rdf *name,
                     const ldns_rdf *ce, const ldns_rdf *wild)
{
	a->rcode = LDNS_RCODE_NXDOMAIN;
	if (a->dnssec && signed_nsec(ix)) { /* the proofs first, then the SOA (NSD) */
		add_nsec_of(a, ix, zindex_nsec_cover(ix, name));
		if (wild)
			add_nsec_of(a, ix, zindex_nsec_cover(ix, wild));
	} else if (a->dnssec && signed_nsec3(ix)) {
		add_nsec3_of(a, ix, zindex_nsec3(ix, ce, true));
		add_next_closer(a, ix, name, ce);
		if (wild)
			add_nsec3_of(a, ix, zindex_nsec3(ix, wild, false));
	}
	add_neg_soa(a, ix);
}

/* NODATA at n (qname, or with wild the wildcard that matched qname below ce). */
static void nodata(struct ans *a, const struct zindex *ix, const struct zname *n,
                   const ldns_rdf *qname, const ldns_rdf *ce, bool wild)
{
	if (wild && a->dnssec && !signed_nsec(ix) && signed_nsec3(ix))
		add_next_closer(a, ix, qname, ce); /* before the SOA (NSD's order) */
	add_neg_soa(a, ix);
	if (!a->dnssec)
		return;
	if (signed_nsec(ix)) {
		if (wild) {
			add_nsec_of(a, ix, zindex_nsec_cover(ix, qname));
			add_nsec_of(a, ix, n);
		} else if (zname_rrset(n, LDNS_RR_TYPE_NSEC)) {
			add_nsec_of(a, ix, n);
		} else {
			add_nsec_of(a, ix, zindex_nsec_cover(ix, n->owner));
		}
	} else if (signed_nsec3(ix)) {
		if (wild) {
			add_nsec3_of(a, ix, zindex_nsec3(ix, ce, true));
			add_nsec3_of(a, ix, zindex_nsec3(ix, n->owner, true));
		} else {
			const struct zname *m = zindex_nsec3(ix, n->owner, true);
			if (m)
				add_nsec3_of(a, ix, m);
			else
				add_cpe_proof(a, ix, n->owner);
			if (m && ldns_dname_is_wildcard(n->owner)) {
				/* the wildcard asked by its own name: its closest encloser
				 * too, as for a wildcard NODATA (NSD) */
				ldns_rdf *p = ldns_dname_left_chop(n->owner);
				if (p)
					add_nsec3_of(a, ix, zindex_nsec3(ix, p, true));
				ldns_rdf_deep_free(p);
			}
		}
	}
}

static void referral(struct ans *a, const struct zindex *ix, const struct zname *cut)
{
	a->referral = true;
	ans_add(a, 1, ix, zname_rrset(cut, LDNS_RR_TYPE_NS), NULL, 0);
	if (!a->dnssec)
		return;
	const struct zrrset *ds = zname_rrset(cut, LDNS_RR_TYPE_DS);
	if (!signed_nsec(ix) && !signed_nsec3(ix))
		return; /* an unsigned zone: no DS either (as NSD) */
	if (ds) {
		ans_add(a, 1, ix, ds, NULL, 0);
	} else if (signed_nsec(ix)) {
		add_nsec_of(a, ix, cut);
	} else if (signed_nsec3(ix)) {
		const struct zname *m = zindex_nsec3(ix, cut->owner, true);
		if (m)
			add_nsec3_of(a, ix, m);
		else
			add_cpe_proof(a, ix, cut->owner);
	}
}

/* ------------------------------------------------------------ resolution */

/* The deepest cut above name or at it (at it, not for DS), or NULL. */
static const struct zname *find_cut(const struct zindex *ix, const ldns_rdf *name, uint16_t qtype)
{
	size_t nl = ldns_dname_label_count(name), al = ldns_dname_label_count(ix->zone->origin);
	for (size_t k = al + 1; k <= nl; k++) {
		ldns_rdf *anc = k == nl ? NULL : ancestor(name, k);
		const struct zname *n = zindex_find(ix, anc ? anc : name);
		ldns_rdf_deep_free(anc);
		if (!n)
			return NULL; /* nothing exists below a missing name */
		if (n->flags & ZN_CUT)
			return k == nl && qtype == LDNS_RR_TYPE_DS ? NULL : n;
	}
	return NULL;
}

/* A/AAAA of NS, MX and SRV targets in the same zone: every A first, then every
 * AAAA (NSD's order, which decides what a truncated additional keeps) */
static void add_additional(struct ans *a)
{
	for (int pass = 0; pass < 2; pass++)
		for (int sec = 0; sec < 2; sec++) {
			for (size_t i = 0; i < a->n[sec]; i++) {
				const struct item *it = &a->it[sec][i];
				size_t rdi;
				if (it->sigs_only)
					continue;
				switch (it->set->type) {
				case LDNS_RR_TYPE_NS: rdi = 0; break;
				case LDNS_RR_TYPE_MX: rdi = 1; break;
				case LDNS_RR_TYPE_SRV: rdi = 3; break;
				default: continue;
				}
				for (uint32_t r = 0; r < it->set->n; r++) {
					const ldns_rdf *t = ldns_rr_rdf(it->set->rrs[r], rdi);
					if (!t || ldns_rdf_get_type(t) != LDNS_RDF_TYPE_DNAME ||
					    !(ldns_dname_is_subdomain(t, it->ix->zone->origin) ||
					      ldns_dname_compare(t, it->ix->zone->origin) == 0))
						continue;
					const struct zname *n = zindex_find(it->ix, t);
					ans_add(a, 2, it->ix,
					        zname_rrset(n, pass ? LDNS_RR_TYPE_AAAA
					                            : LDNS_RR_TYPE_A),
					        NULL, 0);
				}
			}
		}
}

static ssize_t zone_for_query(const struct drdns_zoneset *set, const ldns_rdf *name,
                              uint16_t qtype);

static void resolve(struct ans *a, const struct drdns_zoneset *set, struct zindex *const *ixs,
                    const ldns_rdf *qname, uint16_t qtype)
{
	const ldns_rdf *name = qname;
	const ldns_rdf *seen[MAX_CHAIN];
	size_t nseen = 0;
	for (int step = 0; step < MAX_CHAIN; step++) {
		ssize_t zi = zone_for_query(set, name, qtype);
		if (zi < 0)
			return; /* the chain left the served zones */
		const struct zindex *ix = ixs[zi];
		if (!ix) {
			a->rcode = LDNS_RCODE_SERVFAIL;
			return;
		}
		const struct zname *cut = find_cut(ix, name, qtype);
		if (cut) {
			if (step == 0)
				a->aa = false;
			referral(a, ix, cut);
			return;
		}
		const struct zname *n = zindex_find(ix, name);
		ldns_rdf *ce = NULL;
		bool wild = false;
		if (!n) {
			size_t al = ldns_dname_label_count(ix->zone->origin);
			for (size_t k = ldns_dname_label_count(name) - 1; k >= al; k--) {
				ce = ancestor(name, k);
				if (!ce || zindex_find(ix, ce))
					break;
				ldns_rdf_deep_free(ce);
				ce = NULL;
				if (k == 0)
					break;
			}
			if (!ce) {
				a->rcode = LDNS_RCODE_SERVFAIL;
				return;
			}
			ldns_rdf *w = wildcard_of(ce);
			n = w ? zindex_find(ix, w) : NULL;
			if (!n) {
				nxdomain(a, ix, name, ce, w);
				ldns_rdf_deep_free(w);
				ldns_rdf_deep_free(ce);
				return;
			}
			ldns_rdf_deep_free(w);
			wild = true;
			if (qtype == LDNS_RR_TYPE_NSEC3) {
				/* NSEC3 records are never synthesised from a wildcard
				 * (RFC 5155 7.2.8 spirit; NSD answers NODATA) */
				ldns_rdf *wce = ldns_dname_left_chop(n->owner);
				nodata(a, ix, n, name, wce, true);
				ldns_rdf_deep_free(wce);
				ldns_rdf_deep_free(ce);
				return;
			}
		}
		const ldns_rdf *owner = wild ? name : NULL;
		const struct zrrset *s = NULL;
		if (qtype == LDNS_RR_TYPE_RRSIG && add_all_sigs(a, ix, n, owner)) {
			if (wild && a->dnssec && signed_nsec(ix))
				add_nsec_of(a, ix, zindex_nsec_cover(ix, name));
			else if (wild && a->dnssec && signed_nsec3(ix))
				add_next_closer(a, ix, name, ce);
			size_t before = a->n[1];
			ans_add(a, 1, ix, zname_rrset(&ix->names[ix->apex], LDNS_RR_TYPE_NS), NULL,
			        0);
			if (a->n[1] > before)
				a->it[1][before].optional = true;
			ldns_rdf_deep_free(ce);
			return;
		}
		/* no RRSIG there: like any other absent type (NSD) */
		if (qtype == LDNS_RR_TYPE_ANY) {
			for (uint32_t i = 0; i < n->nsets; i++)
				if (!s || n->sets[i].ord < s->ord)
					s = &n->sets[i];
		} else {
			s = zname_rrset(n, qtype);
		}
		const struct zrrset *cname =
		    s || qtype == LDNS_RR_TYPE_CNAME || qtype == LDNS_RR_TYPE_NSEC3
		        ? NULL
		        : zname_rrset(n, LDNS_RR_TYPE_CNAME);
		if (s || cname) {
			ans_add(a, 0, ix, s ? s : cname, owner, 0);
			if (wild && a->dnssec) {
				if (signed_nsec(ix))
					add_nsec_of(a, ix, zindex_nsec_cover(ix, name));
				else if (signed_nsec3(ix))
					add_next_closer(a, ix, name, ce);
			}
		}
		ldns_rdf_deep_free(ce);
		ce = NULL;
		if (s) {
			bool apex = n == &ix->names[ix->apex];
			/* NSD's answer_needs_ns: not for DNSKEY, DS or ANY */
			if (qtype != LDNS_RR_TYPE_ANY && qtype != LDNS_RR_TYPE_DNSKEY &&
			    qtype != LDNS_RR_TYPE_DS && !(apex && qtype == LDNS_RR_TYPE_NS)) {
				size_t before = a->n[1];
				ans_add(a, 1, ix,
				        zname_rrset(&ix->names[ix->apex], LDNS_RR_TYPE_NS), NULL,
				        0);
				if (a->n[1] > before)
					a->it[1][before].optional = true;
			}
			return;
		}
		if (cname) {
			const ldns_rdf *t = ldns_rr_rdf(cname->rrs[0], 0);
			if (!t)
				return;
			seen[nseen++] = name;
			for (size_t i = 0; i < nseen; i++)
				if (ldns_dname_compare(seen[i], t) == 0)
					return; /* a loop */
			name = t;
			continue;
		}
		if (wild) {
			/* ce again for the proof (cheap: only on wildcard NODATA) */
			ldns_rdf *wce = ldns_dname_left_chop(n->owner);
			nodata(a, ix, n, name, wce, true);
			ldns_rdf_deep_free(wce);
		} else {
			nodata(a, ix, n, name, NULL, false);
		}
		return;
	}
}

/* ------------------------------------------------------------ packing */

static int push_item(ldns_pkt *r, ldns_pkt_section sec, const struct item *it, bool dnssec)
{
	for (int pass = it->sigs_only ? 1 : 0; pass < 2; pass++) {
		uint32_t cnt = pass ? it->set->nsig : it->set->n;
		ldns_rr **rrs = pass ? it->set->sigs : it->set->rrs;
		if (pass && !dnssec && !it->sigs_only)
			break;
		for (uint32_t i = 0; i < cnt; i++) {
			ldns_rr *c = ldns_rr_clone(rrs[i]);
			if (!c)
				return DRDNS_ENOMEM;
			if (it->owner) {
				ldns_rdf *o = ldns_rdf_clone(it->owner);
				if (!o) {
					ldns_rr_free(c);
					return DRDNS_ENOMEM;
				}
				ldns_rdf_deep_free(ldns_rr_owner(c));
				ldns_rr_set_owner(c, o);
			}
			if (it->ttl_cap == UINT32_MAX)
				ldns_rr_set_ttl(c, 0);
			else if (it->ttl_cap && ldns_rr_ttl(c) > it->ttl_cap)
				ldns_rr_set_ttl(c, it->ttl_cap);
			if (!ldns_pkt_push_rr(r, sec, c)) {
				ldns_rr_free(c);
				return DRDNS_ENOMEM;
			}
		}
	}
	return 0;
}

static ldns_rr_list *section_list(ldns_pkt *r, ldns_pkt_section s)
{
	return s == LDNS_SECTION_ANSWER      ? ldns_pkt_answer(r)
	       : s == LDNS_SECTION_AUTHORITY ? ldns_pkt_authority(r)
	                                     : ldns_pkt_additional(r);
}

static void pop_to(ldns_pkt *r, ldns_pkt_section s, size_t count)
{
	ldns_rr_list *l = section_list(r, s);
	while (ldns_rr_list_rr_count(l) > count)
		ldns_rr_free(ldns_rr_list_pop_rr(l));
	ldns_pkt_set_section_count(r, s, (uint16_t)count);
}

static size_t wire_size(const ldns_pkt *r)
{
	uint8_t *w = NULL;
	size_t len = 0;
	if (ldns_pkt2wire(&w, r, &len) != LDNS_STATUS_OK)
		len = SIZE_MAX;
	free(w);
	return len;
}

static const ldns_pkt_section secs[3] = {LDNS_SECTION_ANSWER, LDNS_SECTION_AUTHORITY,
                                         LDNS_SECTION_ADDITIONAL};

/* Put a's RRsets into r, within max bytes (see the truncation rules above). */
static int answer_fit(ldns_pkt *r, const struct ans *a, size_t max)
{
	for (int sec = 0; sec < 3; sec++)
		for (size_t i = 0; i < a->n[sec]; i++)
			if (push_item(r, secs[sec], &a->it[sec][i], a->dnssec) < 0)
				return DRDNS_ENOMEM;
	if (wire_size(r) <= max)
		return 0;
	for (int sec = 0; sec < 3; sec++)
		pop_to(r, secs[sec], 0);
	for (int sec = 0; sec < 3; sec++) {
		for (size_t i = 0; i < a->n[sec]; i++) {
			size_t before = ldns_rr_list_rr_count(section_list(r, secs[sec]));
			if (push_item(r, secs[sec], &a->it[sec][i], a->dnssec) < 0)
				return DRDNS_ENOMEM;
			if (wire_size(r) > max) {
				/* all RRSIGs at a name are one RRset to NSD */
				pop_to(r, secs[sec], a->it[sec][i].sigs_only ? 0 : before);
				/* a referral without any of its glue sets TC (NSD) */
				if ((sec < 2 && !a->it[sec][i].optional) ||
				    (sec == 2 && a->referral && before == 0))
					ldns_pkt_set_tc(r, true);
				return 0;
			}
		}
	}
	return 0;
}

/* ------------------------------------------------------------ entry points */

ssize_t zone_for_name(const struct drdns_zoneset *set, const ldns_rdf *name, bool exact)
{
	ssize_t best = -1;
	size_t best_labels = 0;
	for (size_t i = 0; i < set->n; i++) {
		const ldns_rdf *o = set->zones[i]->origin;
		bool match = ldns_dname_compare(name, o) == 0 ||
		             (!exact && ldns_dname_is_subdomain(name, o));
		if (match && (best < 0 || ldns_dname_label_count(o) > best_labels)) {
			best = (ssize_t)i;
			best_labels = ldns_dname_label_count(o);
		}
	}
	return best;
}

/* The zone that answers qtype at name: the deepest served zone, except that DS
 * at a served zone's apex belongs to the parent side (RFC 4035 3.1.4.1), so a
 * served ancestor answers it when there is one (as NSD does). */
static ssize_t zone_for_query(const struct drdns_zoneset *set, const ldns_rdf *name, uint16_t qtype)
{
	ssize_t zi = zone_for_name(set, name, false);
	if (zi < 0 || qtype != LDNS_RR_TYPE_DS || ldns_dname_label_count(name) == 0 ||
	    ldns_dname_compare(name, set->zones[zi]->origin) != 0)
		return zi;
	ldns_rdf *parent = ldns_dname_left_chop(name);
	if (!parent)
		return zi;
	ssize_t pi = zone_for_name(set, parent, false);
	ldns_rdf_deep_free(parent);
	return pi >= 0 ? pi : zi;
}

int drdns_answer(const struct drdns_zoneset *set, struct zindex *const *ixs, const ldns_pkt *q,
                 size_t max, ldns_pkt **reply)
{
	*reply = NULL;
	const ldns_rr *question = ldns_rr_list_rr(ldns_pkt_question(q), 0);
	if (!question)
		return DRDNS_EINVAL;
	const ldns_rdf *name = ldns_rr_owner(question);
	uint16_t qtype = (uint16_t)ldns_rr_get_type(question);
	ssize_t zi = zone_for_query(set, name, qtype);
	ldns_pkt *r = resp_new(q, zi < 0 ? LDNS_RCODE_REFUSED : LDNS_RCODE_NOERROR);
	if (!r)
		return DRDNS_ENOMEM;
	if (zi < 0) {
		*reply = r;
		return 1; /* refused */
	}
	struct ans *a = calloc(1, sizeof(*a));
	if (!a) {
		ldns_pkt_free(r);
		return DRDNS_ENOMEM;
	}
	a->dnssec = ldns_pkt_edns(q) && ldns_pkt_edns_do(q);
	a->aa = true;
	a->rcode = LDNS_RCODE_NOERROR;
	const struct drdns_zone *z = set->zones[zi];
	if (!ixs[zi]) {
		/* index not built yet: the apex SOA only, SERVFAIL otherwise */
		if (qtype == LDNS_RR_TYPE_SOA && ldns_dname_compare(name, z->origin) == 0) {
			ldns_rr *c = ldns_rr_clone(z->soa);
			if (!c || !ldns_pkt_push_rr(r, LDNS_SECTION_ANSWER, c))
				ldns_rr_free(c);
		} else {
			a->rcode = LDNS_RCODE_SERVFAIL;
			a->aa = false;
		}
		ldns_pkt_set_aa(r, a->aa);
		ldns_pkt_set_rcode(r, (uint8_t)a->rcode);
		free(a);
		*reply = r;
		return 0;
	}
	resolve(a, set, ixs, name, qtype);
	if (a->rcode == LDNS_RCODE_SERVFAIL) {
		a->aa = false;
		ans_free(a);
		memset(a->n, 0, sizeof(a->n));
	}
	add_additional(a);
	ldns_pkt_set_aa(r, a->aa);
	ldns_pkt_set_rcode(r, (uint8_t)a->rcode);
	int ret = answer_fit(r, a, max);
	ans_free(a);
	free(a);
	if (ret < 0) {
		ldns_pkt_free(r);
		return ret;
	}
	*reply = r;
	return 0;
}

int answer_query(struct reqctx *rq, const ldns_rr *question, uint8_t **out, size_t *len)
{
	(void)question;
	struct zref *zr = serving(rq->srv);
	size_t max = rq->conn ? 65535 : rq->udp_max;
	if (rq->key && max > DRDNS_TSIG_RR_MAX + LDNS_HEADER_SIZE)
		max -= DRDNS_TSIG_RR_MAX;
	size_t nsid = srv_nsid_size(rq); /* srv_finish adds it after the fit */
	if (nsid && max > nsid + LDNS_HEADER_SIZE)
		max -= nsid;
	ldns_pkt *r = NULL;
	int ret = drdns_answer(zr->set, zr->ix, rq->q, max, &r);
	if (ret < 0)
		return ret;
	if (ret == 1)
		rq->srv->st.refused++;
	return srv_finish(rq, r, out, len);
}
