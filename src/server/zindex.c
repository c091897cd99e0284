/*
 * The per-zone query index: see zindex.h.
 *
 * Building sorts pointers to the zone's records once (owner in canonical
 * order, then type, RRSIGs beside the type they cover), groups them into
 * names and RRsets, adds the empty non-terminals, then extracts the NSEC and
 * NSEC3 chains.  For a zone of n records that is O(n log n) and allocates a
 * few pointer arrays; see server.c for where it runs (the thread pool for
 * large zones).
 */
#include "zindex.h"

#include "drdns/error.h"
#include "drdns/zone.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

struct rec {
	ldns_rr *rr;
	uint32_t ord;
	uint16_t etype; /* type, or for an RRSIG the type it covers */
	uint8_t sig;
};

static uint16_t covered(const ldns_rr *rr)
{
	const ldns_rdf *c = ldns_rr_rd_count(rr) > 0 ? ldns_rr_rdf(rr, 0) : NULL;
	return c && ldns_rdf_size(c) == 2 ? ldns_rdf2native_int16(c) : 0;
}

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	int c = ldns_dname_compare(ldns_rr_owner(x->rr), ldns_rr_owner(y->rr));
	if (c)
		return c;
	if (x->etype != y->etype)
		return x->etype < y->etype ? -1 : 1;
	if (x->sig != y->sig)
		return x->sig < y->sig ? -1 : 1;
	return x->ord < y->ord ? -1 : x->ord > y->ord;
}

struct proto {
	const ldns_rdf *owner;
	size_t first, count; /* in the sorted records; count 0: ENT */
};

static int proto_cmp(const void *a, const void *b)
{
	const struct proto *x = a, *y = b;
	return ldns_dname_compare(x->owner, y->owner);
}

static int n3_cmp(const void *a, const void *b)
{
	const struct zn3 *x = a, *y = b;
	size_t l = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->hash, y->hash, l);
	return c ? c : (int)x->len - (int)y->len;
}

void zindex_free(struct zindex *ix)
{
	if (!ix)
		return;
	for (size_t i = 0; i < ix->n_ent; i++)
		ldns_rdf_deep_free(ix->ent_owners[i]);
	free(ix->ent_owners);
	free(ix->names);
	free(ix->sets_pool);
	free(ix->rr_pool);
	free(ix->nsec);
	free(ix->nsec3);
	free(ix);
}

static const struct zname *find_in(const struct zname *names, size_t n, const ldns_rdf *name,
                                   size_t *pos)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = ldns_dname_compare(names[mid].owner, name);
		if (c == 0) {
			if (pos)
				*pos = mid;
			return &names[mid];
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (pos)
		*pos = lo;
	return NULL;
}

const struct zname *zindex_find(const struct zindex *ix, const ldns_rdf *name)
{
	const struct zname *n = ix ? find_in(ix->names, ix->n, name, NULL) : NULL;
	return n && !(n->flags & ZN_N3) ? n : NULL;
}

const struct zrrset *zname_rrset(const struct zname *n, uint16_t type)
{
	if (!n)
		return NULL;
	for (uint32_t i = 0; i < n->nsets; i++)
		if (n->sets[i].type == type)
			return &n->sets[i];
	return NULL;
}

const struct zname *zindex_nsec_cover(const struct zindex *ix, const ldns_rdf *name)
{
	if (!ix || !ix->n_nsec)
		return NULL;
	size_t lo = 0, hi = ix->n_nsec; /* last NSEC owner <= name */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (ldns_dname_compare(ix->names[ix->nsec[mid]].owner, name) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return &ix->names[ix->nsec[lo ? lo - 1 : ix->n_nsec - 1]];
}

/* The first label of a dname, lowercased, into out (64 bytes); its length or 0. */
static size_t first_label(const ldns_rdf *d, uint8_t *out)
{
	const uint8_t *p = ldns_rdf_data(d);
	size_t l = ldns_rdf_size(d) ? p[0] : 0;
	if (l == 0 || l > 63 || l + 1 > ldns_rdf_size(d))
		return 0;
	for (size_t i = 0; i < l; i++)
		out[i] = (uint8_t)tolower(p[1 + i]);
	return l;
}

const struct zname *zindex_nsec3(const struct zindex *ix, const ldns_rdf *name, bool exact)
{
	if (!ix || !ix->n_nsec3 || !ix->has_nsec3param)
		return NULL;
	ldns_rdf *h =
	    ldns_nsec3_hash_name(name, ix->n3_alg, ix->n3_iter, ix->n3_salt_len, ix->n3_salt);
	if (!h)
		return NULL;
	struct zn3 key;
	key.len = (uint8_t)first_label(h, key.hash);
	ldns_rdf_deep_free(h);
	if (!key.len)
		return NULL;
	size_t lo = 0, hi = ix->n_nsec3; /* last hash <= key */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (n3_cmp(&ix->nsec3[mid], &key) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	const struct zn3 *e = &ix->nsec3[lo ? lo - 1 : ix->n_nsec3 - 1];
	bool match = lo && n3_cmp(e, &key) == 0;
	if (exact)
		return match ? &ix->names[e->name] : NULL;
	return match ? NULL : &ix->names[e->name];
}

int zindex_build(const struct drdns_zone *z, struct zindex **out)
{
	*out = NULL;
	struct zindex *ix = calloc(1, sizeof(*ix));
	if (!ix)
		return DRDNS_ENOMEM;
	ix->zone = z;
	size_t nrr = ldns_rr_list_rr_count(z->rrs) + 1;
	struct rec *recs = malloc(nrr * sizeof(*recs));
	struct proto *pr = NULL;
	int ret = DRDNS_ENOMEM;
	if (!recs)
		goto fail;
	for (size_t i = 0; i < nrr; i++) {
		ldns_rr *rr = i == 0 ? z->soa : ldns_rr_list_rr(z->rrs, i - 1);
		bool sig = ldns_rr_get_type(rr) == LDNS_RR_TYPE_RRSIG;
		recs[i] = (struct rec){.rr = rr,
		                       .ord = (uint32_t)i,
		                       .etype = sig ? covered(rr) : (uint16_t)ldns_rr_get_type(rr),
		                       .sig = sig};
	}
	qsort(recs, nrr, sizeof(*recs), rec_cmp);
	ix->records = nrr;

	/* distinct owners, then the empty non-terminals above them */
	size_t np = 0, capp = 1024, nsets = 0;
	pr = malloc(capp * sizeof(*pr));
	if (!pr)
		goto fail;
	for (size_t i = 0; i < nrr; i++) {
		const ldns_rdf *o = ldns_rr_owner(recs[i].rr);
		bool newname = i == 0 || ldns_dname_compare(ldns_rr_owner(recs[i - 1].rr), o) != 0;
		if (i == 0 || newname || recs[i - 1].etype != recs[i].etype)
			nsets++;
		if (!newname) {
			pr[np - 1].count++;
			continue;
		}
		if (np == capp) {
			struct proto *g = realloc(pr, 2 * capp * sizeof(*pr));
			if (!g)
				goto fail;
			pr = g;
			capp *= 2;
		}
		pr[np++] = (struct proto){.owner = o, .first = i, .count = 1};
	}
	size_t nowners = np;
	size_t cap_ent = 0;
	for (size_t i = 0; i < nowners; i++) {
		const ldns_rdf *o = pr[i].owner;
		if (!ldns_dname_is_subdomain(o, z->origin))
			continue;
		ldns_rdf *a = ldns_dname_left_chop(o);
		while (a && ldns_dname_is_subdomain(a, z->origin)) {
			/* present among the owners (sorted) or the ENTs so far? */
			size_t lo = 0, hi = nowners;
			bool found = false;
			while (lo < hi && !found) {
				size_t mid = lo + (hi - lo) / 2;
				int c = ldns_dname_compare(pr[mid].owner, a);
				if (c == 0)
					found = true;
				else if (c < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			/* ENTs are found again by their children: the previous ENT of the
			 * same parent is usually the last one added */
			if (!found && ix->n_ent &&
			    ldns_dname_compare(ix->ent_owners[ix->n_ent - 1], a) == 0)
				found = true;
			if (found)
				break;
			if (ix->n_ent == cap_ent) {
				size_t nc = cap_ent ? cap_ent * 2 : 64;
				ldns_rdf **g = realloc(ix->ent_owners, nc * sizeof(*g));
				if (!g) {
					ldns_rdf_deep_free(a);
					goto fail;
				}
				ix->ent_owners = g;
				cap_ent = nc;
			}
			ix->ent_owners[ix->n_ent++] = a;
			a = ldns_dname_left_chop(a);
		}
		ldns_rdf_deep_free(a);
	}
	if (np + ix->n_ent > capp) {
		struct proto *g = realloc(pr, (np + ix->n_ent) * sizeof(*pr));
		if (!g)
			goto fail;
		pr = g;
	}
	for (size_t i = 0; i < ix->n_ent; i++)
		pr[np++] = (struct proto){.owner = ix->ent_owners[i], .first = 0, .count = 0};
	qsort(pr, np, sizeof(*pr), proto_cmp);

	ix->names = calloc(np ? np : 1, sizeof(*ix->names));
	ix->sets_pool = calloc(nsets ? nsets : 1, sizeof(*ix->sets_pool));
	ix->rr_pool = malloc(nrr * sizeof(*ix->rr_pool));
	if (!ix->names || !ix->sets_pool || !ix->rr_pool)
		goto fail;
	size_t si = 0, ri = 0, n = 0;
	for (size_t p = 0; p < np; p++) {
		if (n && pr[p].count == 0 &&
		    ldns_dname_compare(ix->names[n - 1].owner, pr[p].owner) == 0)
			continue; /* a duplicate ENT */
		struct zname *nm = &ix->names[n++];
		nm->owner = pr[p].owner;
		nm->sets = &ix->sets_pool[si];
		if (pr[p].count == 0)
			nm->flags |= ZN_ENT;
		for (size_t i = pr[p].first; i < pr[p].first + pr[p].count;) {
			size_t j = i;
			struct zrrset *s = &ix->sets_pool[si++];
			s->type = recs[i].etype;
			s->ord = recs[i].ord;
			s->rrs = &ix->rr_pool[ri];
			while (j < pr[p].first + pr[p].count && recs[j].etype == s->type &&
			       !recs[j].sig) {
				ix->rr_pool[ri++] = recs[j].rr;
				if (recs[j].ord < s->ord)
					s->ord = recs[j].ord;
				s->n++;
				j++;
			}
			s->sigs = &ix->rr_pool[ri];
			while (j < pr[p].first + pr[p].count && recs[j].etype == s->type) {
				ix->rr_pool[ri++] = recs[j].rr;
				s->nsig++;
				j++;
			}
			if (s->n == 0) { /* RRSIGs without their RRset: keep them unreachable */
				si--;
				i = j;
				continue;
			}
			nm->nsets++;
			i = j;
		}
		bool apex = ldns_dname_compare(nm->owner, z->origin) == 0;
		if (apex)
			ix->apex = n - 1;
		if (!apex && zname_rrset(nm, LDNS_RR_TYPE_NS))
			nm->flags |= ZN_CUT;
		if (nm->nsets == 1 && nm->sets[0].type == LDNS_RR_TYPE_NSEC3)
			nm->flags |= ZN_N3;
	}
	ix->n = n;

	/* the NSEC and NSEC3 chains */
	size_t c3 = 0, c1 = 0;
	for (size_t i = 0; i < n; i++) {
		c1 += zname_rrset(&ix->names[i], LDNS_RR_TYPE_NSEC) != NULL;
		c3 += zname_rrset(&ix->names[i], LDNS_RR_TYPE_NSEC3) != NULL;
	}
	if (c1 && !(ix->nsec = malloc(c1 * sizeof(*ix->nsec))))
		goto fail;
	if (c3 && !(ix->nsec3 = malloc(c3 * sizeof(*ix->nsec3))))
		goto fail;
	for (size_t i = 0; i < n; i++) {
		if (zname_rrset(&ix->names[i], LDNS_RR_TYPE_NSEC))
			ix->nsec[ix->n_nsec++] = (uint32_t)i;
		if (zname_rrset(&ix->names[i], LDNS_RR_TYPE_NSEC3)) {
			struct zn3 *e = &ix->nsec3[ix->n_nsec3];
			e->len = (uint8_t)first_label(ix->names[i].owner, e->hash);
			e->name = (uint32_t)i;
			if (e->len)
				ix->n_nsec3++;
		}
	}
	if (ix->n_nsec3) /* qsort(NULL, 0) is undefined (UBSan) */
		qsort(ix->nsec3, ix->n_nsec3, sizeof(*ix->nsec3), n3_cmp);
	const struct zrrset *p3 = zname_rrset(&ix->names[ix->apex], LDNS_RR_TYPE_NSEC3PARAM);
	if (p3 && ldns_rr_rd_count(p3->rrs[0]) >= 4) {
		const ldns_rr *r = p3->rrs[0];
		const ldns_rdf *salt = ldns_rr_rdf(r, 3);
		if (ldns_rdf_size(ldns_rr_rdf(r, 0)) == 1 &&
		    ldns_rdf_size(ldns_rr_rdf(r, 2)) == 2 && ldns_rdf_size(salt) >= 1 &&
		    ldns_rdf_size(salt) == 1u + ldns_rdf_data(salt)[0]) {
			ix->has_nsec3param = true;
			ix->n3_alg = ldns_rdf2native_int8(ldns_rr_rdf(r, 0));
			ix->n3_iter = ldns_rdf2native_int16(ldns_rr_rdf(r, 2));
			ix->n3_salt_len = ldns_rdf_data(salt)[0];
			memcpy(ix->n3_salt, ldns_rdf_data(salt) + 1, ix->n3_salt_len);
		}
	}
	ix->bytes = sizeof(*ix) + n * sizeof(*ix->names) + si * sizeof(*ix->sets_pool) +
	            nrr * sizeof(*ix->rr_pool) + ix->n_nsec * 4 + ix->n_nsec3 * sizeof(struct zn3) +
	            ix->n_ent * (sizeof(ldns_rdf *) + sizeof(ldns_rdf) + 32);
	free(recs);
	free(pr);
	*out = ix;
	return 0;
fail:
	free(recs);
	free(pr);
	zindex_free(ix);
	return ret;
}
