/*
 * Unit tests for the query index (src/server/zindex.c) and the answer engine
 * (drdns_answer, src/server/answer.c), without sockets, on the zones in
 * tests/unit/data/answer/ (unsigned, NSEC, NSEC3, NSEC3 with opt-out).  The
 * expected answers are NSD 4.6's (tests/integration/differential.sh compares
 * the two on a larger corpus).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"
#include <ldns/ldns.h>

#include "../../src/server/server_internal.h"
#include "../../src/server/zindex.h"
#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/zone.h"

struct variant {
	struct drdns_zoneset *set;
	struct zindex **ix;
};

static struct variant V[4]; /* unsigned, nsec, nsec3, optout */
enum {
	UNS,
	NSEC,
	NSEC3,
	OPTOUT
};

static int load_all(void **state)
{
	(void)state;
	const char *names[4] = {"unsigned", "nsec", "nsec3", "optout"};
	const char *data = getenv("DRDNS_TEST_DATA");
	assert_non_null(data);
	for (int i = 0; i < 4; i++) {
		char dir[1024];
		snprintf(dir, sizeof(dir), "%s/answer/%s", data, names[i]);
		struct drdns_diag diag = {0};
		int rc = drdns_zoneset_load_dir(dir, &V[i].set, &diag);
		if (rc != 0) {
			char *all = drdns_diag_join(&diag);
			fprintf(stderr, "%s: %s\n", dir, all ? all : "?");
			free(all);
		}
		drdns_diag_clear(&diag);
		assert_int_equal(rc, 0);
		V[i].ix = calloc(V[i].set->n, sizeof(*V[i].ix));
		assert_non_null(V[i].ix);
		for (size_t z = 0; z < V[i].set->n; z++)
			assert_int_equal(zindex_build(V[i].set->zones[z], &V[i].ix[z]), 0);
	}
	return 0;
}

static int free_all(void **state)
{
	(void)state;
	for (int i = 0; i < 4 && V[i].set; i++) {
		for (size_t z = 0; z < V[i].set->n; z++)
			zindex_free(V[i].ix[z]);
		free(V[i].ix);
		drdns_zoneset_free(V[i].set);
	}
	return 0;
}

/* Ask variant v; edns 0: no OPT. */
static ldns_pkt *ask_max(int v, const char *name, ldns_rr_type type, bool dnssec, size_t max)
{
	ldns_pkt *q = NULL;
	assert_int_equal(ldns_pkt_query_new_frm_str(&q, name, type, LDNS_RR_CLASS_IN, 0),
	                 LDNS_STATUS_OK);
	ldns_pkt_set_id(q, 4242);
	if (dnssec) {
		ldns_pkt_set_edns_udp_size(q, 1232);
		ldns_pkt_set_edns_do(q, true);
	}
	ldns_pkt *r = NULL;
	int rc = drdns_answer(V[v].set, V[v].ix, q, max, &r);
	assert_true(rc >= 0);
	assert_non_null(r);
	ldns_pkt_free(q);
	return r;
}

static ldns_pkt *ask(int v, const char *name, ldns_rr_type type, bool dnssec)
{
	return ask_max(v, name, type, dnssec, 65535);
}

static size_t count(const ldns_pkt *r, ldns_pkt_section s, ldns_rr_type type)
{
	const ldns_rr_list *l = s == LDNS_SECTION_ANSWER      ? ldns_pkt_answer(r)
	                        : s == LDNS_SECTION_AUTHORITY ? ldns_pkt_authority(r)
	                                                      : ldns_pkt_additional(r);
	size_t n = 0;
	for (size_t i = 0; i < ldns_rr_list_rr_count(l); i++)
		n += ldns_rr_get_type(ldns_rr_list_rr(l, i)) == type;
	return n;
}

static bool has(const ldns_pkt *r, ldns_pkt_section s, const char *owner, ldns_rr_type type)
{
	const ldns_rr_list *l = s == LDNS_SECTION_ANSWER      ? ldns_pkt_answer(r)
	                        : s == LDNS_SECTION_AUTHORITY ? ldns_pkt_authority(r)
	                                                      : ldns_pkt_additional(r);
	ldns_rdf *o = ldns_dname_new_frm_str(owner);
	bool found = false;
	for (size_t i = 0; i < ldns_rr_list_rr_count(l) && !found; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(l, i);
		found =
		    ldns_rr_get_type(rr) == type && ldns_dname_compare(ldns_rr_owner(rr), o) == 0;
	}
	ldns_rdf_deep_free(o);
	return found;
}

/* ------------------------------------------------------------ the index */

static void test_index(void **state)
{
	(void)state;
	const struct zindex *ix = V[UNS].ix[0];
	ldns_rdf *n = ldns_dname_new_frm_str("B.Ent.T.Test.");
	const struct zname *zn = zindex_find(ix, n);
	assert_non_null(zn);
	assert_true(zn->flags & ZN_ENT);
	assert_int_equal(zn->nsets, 0);
	ldns_rdf_deep_free(n);
	n = ldns_dname_new_frm_str("sub.t.test.");
	zn = zindex_find(ix, n);
	assert_non_null(zn);
	assert_true(zn->flags & ZN_CUT);
	assert_non_null(zname_rrset(zn, LDNS_RR_TYPE_DS));
	ldns_rdf_deep_free(n);
	n = ldns_dname_new_frm_str("t.test.");
	zn = zindex_find(ix, n);
	assert_ptr_equal(zn, &ix->names[ix->apex]);
	assert_false(zn->flags & ZN_CUT);
	ldns_rdf_deep_free(n);
	/* canonical order, no duplicates */
	for (size_t i = 1; i < ix->n; i++)
		assert_true(ldns_dname_compare(ix->names[i - 1].owner, ix->names[i].owner) < 0);
	assert_int_equal(ix->n_nsec, 0);
	assert_int_equal(ix->n_nsec3, 0);

	/* NSEC3: every signed name has one, RRSIGs sit with the type they cover */
	const struct zindex *i3 = V[NSEC3].ix[0];
	assert_true(i3->has_nsec3param);
	assert_int_equal(i3->n3_iter, 1);
	assert_int_equal(i3->n3_salt_len, 2);
	assert_true(i3->n_nsec3 > 10);
	for (size_t i = 1; i < i3->n_nsec3; i++)
		assert_true(memcmp(i3->nsec3[i - 1].hash, i3->nsec3[i].hash, 32) < 0);
	n = ldns_dname_new_frm_str("www.t.test.");
	const struct zrrset *a = zname_rrset(zindex_find(i3, n), LDNS_RR_TYPE_A);
	assert_non_null(a);
	assert_int_equal(a->n, 1);
	assert_int_equal(a->nsig, 1);
	assert_non_null(zindex_nsec3(i3, n, true));
	ldns_rdf_deep_free(n);
	/* an NSEC3 owner is not a name for lookups (RFC 5155 7.2.8) */
	assert_null(zindex_find(i3, ldns_rr_owner(i3->names[i3->nsec3[0].name].sets[0].rrs[0])));
	/* the NSEC chain */
	assert_true(V[NSEC].ix[0]->n_nsec > 10);
}

/* ------------------------------------------------------------ RFC 1034 */

static void test_referral(void **state)
{
	(void)state;
	ldns_pkt *r = ask(UNS, "host.sub.t.test.", LDNS_RR_TYPE_A, false);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_false(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_ancount(r), 0);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NS), 1);
	assert_true(has(r, LDNS_SECTION_ADDITIONAL, "ns.sub.t.test.", LDNS_RR_TYPE_A));
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_DS), 0);
	ldns_pkt_free(r);
	/* the cut itself, and the glue below it */
	r = ask(UNS, "ns.sub.t.test.", LDNS_RR_TYPE_A, false);
	assert_false(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_ancount(r), 0);
	ldns_pkt_free(r);
	/* an in-zone target: its A and AAAA as additional */
	r = ask(UNS, "insec.t.test.", LDNS_RR_TYPE_MX, false);
	assert_false(ldns_pkt_aa(r));
	assert_true(has(r, LDNS_SECTION_ADDITIONAL, "ns1.t.test.", LDNS_RR_TYPE_A));
	assert_true(has(r, LDNS_SECTION_ADDITIONAL, "ns1.t.test.", LDNS_RR_TYPE_AAAA));
	ldns_pkt_free(r);
}

static void test_ds_at_cut(void **state)
{
	(void)state;
	ldns_pkt *r = ask(UNS, "sub.t.test.", LDNS_RR_TYPE_DS, false);
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(count(r, LDNS_SECTION_ANSWER, LDNS_RR_TYPE_DS), 1);
	assert_int_equal(ldns_pkt_nscount(r), 0); /* NSD: no NS set with DS */
	ldns_pkt_free(r);
	/* no DS: NODATA from the parent */
	r = ask(UNS, "insec.t.test.", LDNS_RR_TYPE_DS, false);
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_ancount(r), 0);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_SOA), 1);
	ldns_pkt_free(r);
	/* DS below a cut: a referral */
	r = ask(UNS, "x.sub.t.test.", LDNS_RR_TYPE_DS, false);
	assert_false(ldns_pkt_aa(r));
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NS), 1);
	ldns_pkt_free(r);
}

/* DS at the apex of a served child comes from the served parent (RFC 4035
 * 3.1.4.1), not as NODATA from the child. */
static void test_ds_at_served_child(void **state)
{
	(void)state;
	const char *data = getenv("DRDNS_TEST_DATA");
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/answer/nested", data);
	struct drdns_diag diag = {0};
	struct drdns_zoneset *set = NULL;
	assert_int_equal(drdns_zoneset_load_dir(dir, &set, &diag), 0);
	drdns_diag_clear(&diag);
	struct zindex **ix = calloc(set->n, sizeof(*ix));
	assert_non_null(ix);
	for (size_t z = 0; z < set->n; z++)
		assert_int_equal(zindex_build(set->zones[z], &ix[z]), 0);
	const struct {
		const char *name;
		ldns_rr_type type;
		size_t ds;
		const char *soa; /* owner of the authority SOA, or NULL */
	} cases[] = {
	    {"c.p.test.", LDNS_RR_TYPE_DS, 1, NULL},            /* the parent's DS */
	    {"u.p.test.", LDNS_RR_TYPE_DS, 0, "p.test."},       /* NODATA from the parent */
	    {"c.p.test.", LDNS_RR_TYPE_SOA, 0, NULL},           /* the child's own data */
	    {"www.c.p.test.", LDNS_RR_TYPE_DS, 0, "c.p.test."}, /* in the child */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ldns_pkt *q = NULL;
		assert_int_equal(ldns_pkt_query_new_frm_str(&q, cases[i].name, cases[i].type,
		                                            LDNS_RR_CLASS_IN, 0),
		                 LDNS_STATUS_OK);
		ldns_pkt *r = NULL;
		assert_true(drdns_answer(set, ix, q, 65535, &r) >= 0);
		assert_non_null(r);
		assert_true(ldns_pkt_aa(r));
		assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
		assert_int_equal(count(r, LDNS_SECTION_ANSWER, LDNS_RR_TYPE_DS), cases[i].ds);
		if (cases[i].type == LDNS_RR_TYPE_SOA)
			assert_true(has(r, LDNS_SECTION_ANSWER, "c.p.test.", LDNS_RR_TYPE_SOA));
		if (cases[i].soa)
			assert_true(has(r, LDNS_SECTION_AUTHORITY, cases[i].soa, LDNS_RR_TYPE_SOA));
		ldns_pkt_free(q);
		ldns_pkt_free(r);
	}
	for (size_t z = 0; z < set->n; z++)
		zindex_free(ix[z]);
	free(ix);
	drdns_zoneset_free(set);
}

static void test_cname(void **state)
{
	(void)state;
	ldns_pkt *r = ask(UNS, "c1.t.test.", LDNS_RR_TYPE_A, false);
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(count(r, LDNS_SECTION_ANSWER, LDNS_RR_TYPE_CNAME), 2);
	assert_true(has(r, LDNS_SECTION_ANSWER, "www.t.test.", LDNS_RR_TYPE_A));
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NS), 2);
	ldns_pkt_free(r);
	/* the CNAME itself */
	r = ask(UNS, "c1.t.test.", LDNS_RR_TYPE_CNAME, false);
	assert_int_equal(ldns_pkt_ancount(r), 1);
	ldns_pkt_free(r);
	/* NODATA at the end of the chain */
	r = ask(UNS, "c1.t.test.", LDNS_RR_TYPE_MX, false);
	assert_int_equal(count(r, LDNS_SECTION_ANSWER, LDNS_RR_TYPE_CNAME), 2);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_SOA), 1);
	ldns_pkt_free(r);
	/* a loop ends, nothing in authority */
	r = ask(UNS, "loop.t.test.", LDNS_RR_TYPE_A, false);
	assert_int_equal(ldns_pkt_ancount(r), 1);
	assert_int_equal(ldns_pkt_nscount(r), 0);
	ldns_pkt_free(r);
	/* out of every served zone: the CNAME alone */
	r = ask(UNS, "cout.t.test.", LDNS_RR_TYPE_A, false);
	assert_int_equal(ldns_pkt_ancount(r), 1);
	assert_int_equal(ldns_pkt_nscount(r), 0);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	ldns_pkt_free(r);
	/* into a delegation: the CNAME (AA) and the referral */
	r = ask(UNS, "cdeleg.t.test.", LDNS_RR_TYPE_A, false);
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_ancount(r), 1);
	assert_true(has(r, LDNS_SECTION_AUTHORITY, "sub.t.test.", LDNS_RR_TYPE_NS));
	assert_true(has(r, LDNS_SECTION_ADDITIONAL, "ns.sub.t.test.", LDNS_RR_TYPE_A));
	ldns_pkt_free(r);
}

static void test_negative(void **state)
{
	(void)state;
	ldns_pkt *r = ask(UNS, "nope.t.test.", LDNS_RR_TYPE_A, false);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_nscount(r), 1);
	/* RFC 2308: min(SOA TTL 300, MINIMUM 120) */
	assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(ldns_pkt_authority(r), 0)), 120);
	ldns_pkt_free(r);
	r = ask(UNS, "www.t.test.", LDNS_RR_TYPE_AAAA, false);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_int_equal(ldns_pkt_ancount(r), 0);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_SOA), 1);
	ldns_pkt_free(r);
	/* an empty non-terminal: NODATA */
	r = ask(UNS, "b.ent.t.test.", LDNS_RR_TYPE_A, false);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_int_equal(ldns_pkt_ancount(r), 0);
	ldns_pkt_free(r);
	/* not served */
	ldns_pkt *q = NULL;
	ldns_pkt_query_new_frm_str(&q, "example.org.", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 0);
	r = NULL;
	assert_int_equal(drdns_answer(V[UNS].set, V[UNS].ix, q, 512, &r), 1);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_REFUSED);
	ldns_pkt_free(r);
	ldns_pkt_free(q);
}

static void test_wildcard(void **state)
{
	(void)state;
	ldns_pkt *r = ask(UNS, "Foo.W.t.test.", LDNS_RR_TYPE_A, false);
	assert_true(ldns_pkt_aa(r));
	assert_true(has(r, LDNS_SECTION_ANSWER, "foo.w.t.test.", LDNS_RR_TYPE_A));
	ldns_pkt_free(r);
	/* additional for an expanded MX */
	r = ask(UNS, "a.b.w.t.test.", LDNS_RR_TYPE_MX, false);
	assert_int_equal(ldns_pkt_ancount(r), 1);
	assert_true(has(r, LDNS_SECTION_ADDITIONAL, "mail.t.test.", LDNS_RR_TYPE_A));
	ldns_pkt_free(r);
	/* wildcard NODATA */
	r = ask(UNS, "foo.w.t.test.", LDNS_RR_TYPE_TXT, false);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_int_equal(ldns_pkt_ancount(r), 0);
	ldns_pkt_free(r);
	/* y.w exists (an ENT): the wildcard does not match it ... */
	r = ask(UNS, "y.w.t.test.", LDNS_RR_TYPE_A, false);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_int_equal(ldns_pkt_ancount(r), 0);
	ldns_pkt_free(r);
	/* ... nor names below it (closest encloser y.w, no *.y.w) */
	r = ask(UNS, "z.y.w.t.test.", LDNS_RR_TYPE_A, false);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
	ldns_pkt_free(r);
}

static void test_additional_any_case(void **state)
{
	(void)state;
	ldns_pkt *r = ask(UNS, "t.test.", LDNS_RR_TYPE_MX, false);
	assert_true(has(r, LDNS_SECTION_ADDITIONAL, "mail.t.test.", LDNS_RR_TYPE_A));
	assert_true(has(r, LDNS_SECTION_ADDITIONAL, "ns1.t.test.", LDNS_RR_TYPE_AAAA));
	ldns_pkt_free(r);
	r = ask(UNS, "_s._tcp.t.test.", LDNS_RR_TYPE_SRV, false);
	assert_true(has(r, LDNS_SECTION_ADDITIONAL, "www.t.test.", LDNS_RR_TYPE_A));
	ldns_pkt_free(r);
	/* the apex NS set: in the answer, not again in authority */
	r = ask(UNS, "t.test.", LDNS_RR_TYPE_NS, false);
	assert_int_equal(ldns_pkt_ancount(r), 2);
	assert_int_equal(ldns_pkt_nscount(r), 0);
	assert_true(has(r, LDNS_SECTION_ADDITIONAL, "ns1.t.test.", LDNS_RR_TYPE_A));
	ldns_pkt_free(r);
	/* an address already in the answer is not repeated */
	r = ask(UNS, "ns1.t.test.", LDNS_RR_TYPE_A, false);
	assert_false(has(r, LDNS_SECTION_ADDITIONAL, "ns1.t.test.", LDNS_RR_TYPE_A));
	assert_true(has(r, LDNS_SECTION_ADDITIONAL, "ns1.t.test.", LDNS_RR_TYPE_AAAA));
	ldns_pkt_free(r);
	/* ANY: one RRset (RFC 8482), no NS set */
	r = ask(UNS, "t.test.", LDNS_RR_TYPE_ANY, false);
	assert_int_equal(ldns_pkt_ancount(r), 1);
	assert_int_equal(count(r, LDNS_SECTION_ANSWER, LDNS_RR_TYPE_SOA), 1);
	assert_int_equal(ldns_pkt_nscount(r), 0);
	ldns_pkt_free(r);
	/* the question as the client spelled it */
	r = ask(UNS, "WwW.T.tEsT.", LDNS_RR_TYPE_A, false);
	char *qn = ldns_rdf2str(ldns_rr_owner(ldns_rr_list_rr(ldns_pkt_question(r), 0)));
	assert_string_equal(qn, "WwW.T.tEsT.");
	free(qn);
	assert_int_equal(ldns_pkt_ancount(r), 1);
	ldns_pkt_free(r);
}

/* ------------------------------------------------------------ DNSSEC */

static void test_dnssec_nsec(void **state)
{
	(void)state;
	ldns_pkt *r = ask(NSEC, "www.t.test.", LDNS_RR_TYPE_A, true);
	assert_true(ldns_pkt_edns_do(r));
	assert_int_equal(count(r, LDNS_SECTION_ANSWER, LDNS_RR_TYPE_RRSIG), 1);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_RRSIG), 1); /* NS */
	ldns_pkt_free(r);
	/* without DO: no RRSIG */
	r = ask(NSEC, "www.t.test.", LDNS_RR_TYPE_A, false);
	assert_int_equal(count(r, LDNS_SECTION_ANSWER, LDNS_RR_TYPE_RRSIG), 0);
	ldns_pkt_free(r);
	/* NXDOMAIN: the NSEC covering the name and the one covering *.t.test */
	r = ask(NSEC, "nope.t.test.", LDNS_RR_TYPE_A, true);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
	assert_true(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NSEC) >= 1);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_RRSIG),
	                 count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NSEC) + 1);
	ldns_pkt_free(r);
	/* NODATA: the name's own NSEC */
	r = ask(NSEC, "www.t.test.", LDNS_RR_TYPE_AAAA, true);
	assert_true(has(r, LDNS_SECTION_AUTHORITY, "www.t.test.", LDNS_RR_TYPE_NSEC));
	ldns_pkt_free(r);
	/* ENT NODATA: the NSEC covering it */
	r = ask(NSEC, "b.ent.t.test.", LDNS_RR_TYPE_A, true);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NSEC), 1);
	ldns_pkt_free(r);
	/* wildcard expansion: the RRSIG under the query name, the covering NSEC */
	r = ask(NSEC, "foo.w.t.test.", LDNS_RR_TYPE_A, true);
	assert_true(has(r, LDNS_SECTION_ANSWER, "foo.w.t.test.", LDNS_RR_TYPE_RRSIG));
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NSEC), 1);
	ldns_pkt_free(r);
	/* signed delegation: DS and its RRSIG; unsigned: the cut's NSEC */
	r = ask(NSEC, "host.sub.t.test.", LDNS_RR_TYPE_A, true);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_DS), 1);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_RRSIG), 1);
	ldns_pkt_free(r);
	r = ask(NSEC, "host.insec.t.test.", LDNS_RR_TYPE_A, true);
	assert_true(has(r, LDNS_SECTION_AUTHORITY, "insec.t.test.", LDNS_RR_TYPE_NSEC));
	ldns_pkt_free(r);
	/* RRSIG queries: every RRSIG at the name */
	r = ask(NSEC, "www.t.test.", LDNS_RR_TYPE_RRSIG, false);
	assert_int_equal(count(r, LDNS_SECTION_ANSWER, LDNS_RR_TYPE_RRSIG), 3); /* A TXT NSEC */
	ldns_pkt_free(r);
}

static void test_dnssec_nsec3(void **state)
{
	(void)state;
	/* NXDOMAIN: closest encloser, next closer, wildcard (RFC 5155 7.2.2) */
	ldns_pkt *r = ask(NSEC3, "nope.t.test.", LDNS_RR_TYPE_A, true);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
	size_t n3 = count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NSEC3);
	assert_true(n3 >= 2 && n3 <= 3);
	ldns_pkt_free(r);
	/* NODATA: the matching NSEC3 */
	r = ask(NSEC3, "www.t.test.", LDNS_RR_TYPE_AAAA, true);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NSEC3), 1);
	ldns_pkt_free(r);
	/* wildcard answer: the next closer name's cover */
	r = ask(NSEC3, "foo.w.t.test.", LDNS_RR_TYPE_A, true);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NSEC3), 1);
	ldns_pkt_free(r);
	/* wildcard NODATA: next closer, closest encloser, wildcard */
	r = ask(NSEC3, "foo.w.t.test.", LDNS_RR_TYPE_TXT, true);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NSEC3), 3);
	ldns_pkt_free(r);
	/* unsigned delegation: its NSEC3 ... */
	r = ask(NSEC3, "host.insec.t.test.", LDNS_RR_TYPE_A, true);
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NSEC3), 1);
	ldns_pkt_free(r);
	/* ... or with opt-out, closest provable encloser and next closer (7.2.7) */
	r = ask(OPTOUT, "host.insec.t.test.", LDNS_RR_TYPE_A, true);
	assert_false(ldns_pkt_aa(r));
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NSEC3), 2);
	ldns_pkt_free(r);
	r = ask(OPTOUT, "insec.t.test.", LDNS_RR_TYPE_DS, true);
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(count(r, LDNS_SECTION_AUTHORITY, LDNS_RR_TYPE_NSEC3), 2);
	ldns_pkt_free(r);
	/* an NSEC3 owner name answers as if it did not exist */
	const struct zindex *i3 = V[NSEC3].ix[0];
	char *h = ldns_rdf2str(i3->names[i3->nsec3[0].name].owner);
	r = ask(NSEC3, h, LDNS_RR_TYPE_NSEC3, false);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NXDOMAIN);
	ldns_pkt_free(r);
	free(h);
}

/* ------------------------------------------------------------ truncation */

static size_t wire_len(const ldns_pkt *p)
{
	uint8_t *w = NULL;
	size_t len = 0;
	assert_int_equal(ldns_pkt2wire(&w, p, &len), LDNS_STATUS_OK);
	free(w);
	return len;
}

static void test_truncation(void **state)
{
	(void)state;
	/* an answer RRset that does not fit: TC, nothing else */
	ldns_pkt *r = ask_max(UNS, "big.t.test.", LDNS_RR_TYPE_TXT, false, 512);
	assert_true(ldns_pkt_tc(r));
	assert_true(ldns_pkt_aa(r));
	assert_int_equal(ldns_pkt_ancount(r), 0);
	assert_int_equal(ldns_pkt_nscount(r), 0);
	ldns_pkt_free(r);
	r = ask_max(UNS, "big.t.test.", LDNS_RR_TYPE_TXT, false, 1232);
	assert_false(ldns_pkt_tc(r));
	assert_int_equal(ldns_pkt_ancount(r), 1);
	ldns_pkt_free(r);
	/* the apex NS set and additional are left out without TC */
	r = ask(NSEC, "www.t.test.", LDNS_RR_TYPE_A, true);
	ldns_pkt *only = ldns_pkt_clone(r);
	ldns_pkt_free(r);
	ldns_rr_list_deep_free(ldns_pkt_authority(only));
	ldns_rr_list_deep_free(ldns_pkt_additional(only));
	ldns_pkt_set_authority(only, ldns_rr_list_new());
	ldns_pkt_set_additional(only, ldns_rr_list_new());
	ldns_pkt_set_nscount(only, 0);
	ldns_pkt_set_arcount(only, 0);
	size_t max = wire_len(only) + 20;
	ldns_pkt_free(only);
	r = ask_max(NSEC, "www.t.test.", LDNS_RR_TYPE_A, true, max);
	assert_false(ldns_pkt_tc(r));
	assert_int_equal(ldns_pkt_ancount(r), 2);
	assert_int_equal(ldns_pkt_nscount(r), 0);
	ldns_pkt_free(r);
	/* a referral without any of its glue: TC */
	r = ask(UNS, "host.insec.t.test.", LDNS_RR_TYPE_A, false);
	only = ldns_pkt_clone(r);
	ldns_pkt_free(r);
	ldns_rr_list_deep_free(ldns_pkt_additional(only));
	ldns_pkt_set_additional(only, ldns_rr_list_new());
	ldns_pkt_set_arcount(only, 0);
	max = wire_len(only) + 5;
	ldns_pkt_free(only);
	r = ask_max(UNS, "host.insec.t.test.", LDNS_RR_TYPE_A, false, max);
	assert_true(ldns_pkt_tc(r));
	assert_int_equal(ldns_pkt_arcount(r), 0);
	assert_int_equal(ldns_pkt_nscount(r), 1);
	ldns_pkt_free(r);
	/* with part of it: no TC */
	r = ask_max(UNS, "host.insec.t.test.", LDNS_RR_TYPE_A, false, max + 16);
	assert_false(ldns_pkt_tc(r));
	assert_int_equal(ldns_pkt_arcount(r), 1);
	ldns_pkt_free(r);
	/* a negative answer's proof that does not fit: TC */
	r = ask_max(NSEC3, "nope.t.test.", LDNS_RR_TYPE_A, true, 300);
	assert_true(ldns_pkt_tc(r));
	ldns_pkt_free(r);
}

static void test_not_indexed(void **state)
{
	(void)state;
	struct zindex *none[1] = {NULL};
	ldns_pkt *q = NULL, *r = NULL;
	ldns_pkt_query_new_frm_str(&q, "www.t.test.", LDNS_RR_TYPE_A, LDNS_RR_CLASS_IN, 0);
	assert_int_equal(drdns_answer(V[UNS].set, none, q, 512, &r), 0);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_SERVFAIL);
	ldns_pkt_free(r);
	ldns_pkt_free(q);
	ldns_pkt_query_new_frm_str(&q, "t.test.", LDNS_RR_TYPE_SOA, LDNS_RR_CLASS_IN, 0);
	assert_int_equal(drdns_answer(V[UNS].set, none, q, 512, &r), 0);
	assert_int_equal(ldns_pkt_get_rcode(r), LDNS_RCODE_NOERROR);
	assert_int_equal(ldns_pkt_ancount(r), 1);
	ldns_pkt_free(r);
	ldns_pkt_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_index),       cmocka_unit_test(test_referral),
	    cmocka_unit_test(test_ds_at_cut),   cmocka_unit_test(test_ds_at_served_child),
	    cmocka_unit_test(test_cname),       cmocka_unit_test(test_negative),
	    cmocka_unit_test(test_wildcard),    cmocka_unit_test(test_additional_any_case),
	    cmocka_unit_test(test_dnssec_nsec), cmocka_unit_test(test_dnssec_nsec3),
	    cmocka_unit_test(test_truncation),  cmocka_unit_test(test_not_indexed),
	};
	return cmocka_run_group_tests(tests, load_all, free_all);
}
