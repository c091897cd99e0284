/*
 * What a DR zone leaves out of the campus zone (see compare.h).
 *
 * Both sides are turned into arrays of (record, canonical wire form), sorted
 * in ldns_rr_compare order (owner in RFC 4034 canonical order, class, type,
 * RDATA; TTL ignored) and walked together: by owner name, then by (class,
 * type) within a name, then record by record within an RRset.
 */
#include "drdns/compare.h"

#include "drdns/error.h"
#include "drdns/zone.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A record and its canonical wire form (owner, type, class, TTL, RDLENGTH,
 * RDATA; names lowercase), computed once for sorting and merging. */
struct item {
	const ldns_rr *rr; /* borrowed from the caller's list */
	ldns_buffer *wire; /* owned */
};

struct side {
	struct item *items; /* n entries, sorted, no duplicates (owned) */
	size_t n;
};

/* A run [from, to) of one side's items. */
struct run {
	const struct item *items;
	size_t from, to;
};

static void side_free(struct side *s)
{
	for (size_t i = 0; i < s->n; i++)
		ldns_buffer_free(s->items[i].wire);
	free(s->items);
	s->items = NULL;
	s->n = 0;
}

static int name_cmp(const struct item *a, const struct item *b)
{
	return ldns_dname_compare(ldns_rr_owner(a->rr), ldns_rr_owner(b->rr));
}

/* Owner, then class, then type: one RRset. */
static int rrset_cmp(const struct item *a, const struct item *b)
{
	int c = name_cmp(a, b);
	if (c)
		return c;
	if (ldns_rr_get_class(a->rr) != ldns_rr_get_class(b->rr))
		return ldns_rr_get_class(a->rr) < ldns_rr_get_class(b->rr) ? -1 : 1;
	if (ldns_rr_get_type(a->rr) != ldns_rr_get_type(b->rr))
		return ldns_rr_get_type(a->rr) < ldns_rr_get_type(b->rr) ? -1 : 1;
	return 0;
}

/* RDATA of two records of the same RRset, byte for byte in canonical form
 * (past owner, type, class, TTL and RDLENGTH), the shorter first on a tie. */
static int rdata_cmp(const struct item *a, const struct item *b)
{
	size_t off = ldns_rdf_size(ldns_rr_owner(a->rr)) + 10;
	size_t la = ldns_buffer_position(a->wire), lb = ldns_buffer_position(b->wire);
	size_t na = la > off ? la - off : 0, nb = lb > off ? lb - off : 0;
	int c =
	    memcmp(ldns_buffer_at(a->wire, off), ldns_buffer_at(b->wire, off), na < nb ? na : nb);
	if (c)
		return c < 0 ? -1 : 1;
	return na == nb ? 0 : na < nb ? -1 : 1;
}

static int item_cmp(const void *pa, const void *pb)
{
	const struct item *a = pa, *b = pb;
	int c = rrset_cmp(a, b);
	return c ? c : rdata_cmp(a, b);
}

/* Records a signer makes (the DR set is served unsigned today): comparing
 * them would only bury what an operator left out. */
static bool signer_made(ldns_rr_type t)
{
	return t == LDNS_RR_TYPE_RRSIG || t == LDNS_RR_TYPE_NSEC || t == LDNS_RR_TYPE_NSEC3 ||
	       t == LDNS_RR_TYPE_NSEC3PARAM;
}

/* The records of list but SOAs and signer-made ones, sorted, duplicates dropped. */
static int side_build(const ldns_rr_list *list, struct side *out)
{
	size_t n = list ? ldns_rr_list_rr_count(list) : 0;
	out->items = calloc(n ? n : 1, sizeof(*out->items));
	if (!out->items)
		return DRDNS_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(list, i);
		if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA || signer_made(ldns_rr_get_type(rr)))
			continue;
		ldns_buffer *wire = ldns_buffer_new(ldns_rr_uncompressed_size(rr));
		if (!wire ||
		    ldns_rr2buffer_wire_canonical(wire, rr, LDNS_SECTION_ANY) != LDNS_STATUS_OK) {
			ldns_buffer_free(wire);
			return DRDNS_ENOMEM;
		}
		out->items[out->n].rr = rr;
		out->items[out->n++].wire = wire;
	}
	qsort(out->items, out->n, sizeof(*out->items), item_cmp);
	size_t kept = 0;
	for (size_t i = 0; i < out->n; i++) {
		if (kept > 0 && item_cmp(&out->items[kept - 1], &out->items[i]) == 0)
			ldns_buffer_free(out->items[i].wire);
		else
			out->items[kept++] = out->items[i];
	}
	out->n = kept;
	return 0;
}

/* End of the run starting at from whose items are equal to it under cmp. */
static size_t run_end(const struct item *items, size_t from, size_t to,
                      int (*cmp)(const struct item *, const struct item *))
{
	size_t i = from + 1;
	while (i < to && cmp(&items[from], &items[i]) == 0)
		i++;
	return i;
}

/* Append "name TYPE" of rr to side's examples while there is room. */
static int add_example(struct drdns_compare_side *side, const ldns_rr *rr)
{
	if (side->n_examples >= DRDNS_COMPARE_EXAMPLES)
		return 0;
	ldns_rdf *owner = ldns_rdf_clone(ldns_rr_owner(rr));
	if (owner)
		ldns_dname2canonical(owner);
	char *name = owner ? ldns_rdf2str(owner) : NULL;
	char *type = ldns_rr_type2str(ldns_rr_get_type(rr));
	char *text = NULL;
	if (name && type && asprintf(&text, "%s %s", name, type) < 0)
		text = NULL;
	ldns_rdf_deep_free(owner);
	free(name);
	free(type);
	if (!text)
		return DRDNS_ENOMEM;
	side->examples[side->n_examples++] = text;
	return 0;
}

/* One RRset (a, b: its records on each side, either may be empty). */
static int compare_rrset(struct run a, struct run b, struct drdns_compare_result *res)
{
	size_t only_a = 0, only_b = 0, i = a.from, j = b.from;
	while (i < a.to || j < b.to) {
		int c = i == a.to ? 1 : j == b.to ? -1 : rdata_cmp(&a.items[i], &b.items[j]);
		only_a += c < 0;
		only_b += c > 0;
		i += c <= 0;
		j += c >= 0;
	}
	res->left_out.records += only_a;
	res->dr_only.records += only_b;
	res->left_out.rrsets += a.from < a.to && b.from == b.to;
	res->dr_only.rrsets += b.from < b.to && a.from == a.to;
	int ret = only_a ? add_example(&res->left_out, a.items[a.from].rr) : 0;
	if (ret == 0 && only_b)
		ret = add_example(&res->dr_only, b.items[b.from].rr);
	return ret;
}

/* One owner name (a, b: its records on each side, either may be empty). */
static int compare_name(struct run a, struct run b, struct drdns_compare_result *res)
{
	res->left_out.names += a.from < a.to && b.from == b.to;
	res->dr_only.names += b.from < b.to && a.from == a.to;
	size_t i = a.from, j = b.from;
	int ret = 0;
	while (ret == 0 && (i < a.to || j < b.to)) {
		int c = i == a.to ? 1 : j == b.to ? -1 : rrset_cmp(&a.items[i], &b.items[j]);
		size_t ie = c <= 0 ? run_end(a.items, i, a.to, rrset_cmp) : i;
		size_t je = c >= 0 ? run_end(b.items, j, b.to, rrset_cmp) : j;
		ret =
		    compare_rrset((struct run){a.items, i, ie}, (struct run){b.items, j, je}, res);
		i = ie;
		j = je;
	}
	return ret;
}

/* Walk both sides name by name (campus = a, DR = b). */
static int compare_sides(const struct side *a, const struct side *b,
                         struct drdns_compare_result *res)
{
	size_t i = 0, j = 0;
	int ret = 0;
	while (ret == 0 && (i < a->n || j < b->n)) {
		int c = i == a->n ? 1 : j == b->n ? -1 : name_cmp(&a->items[i], &b->items[j]);
		size_t ie = c <= 0 ? run_end(a->items, i, a->n, name_cmp) : i;
		size_t je = c >= 0 ? run_end(b->items, j, b->n, name_cmp) : j;
		ret =
		    compare_name((struct run){a->items, i, ie}, (struct run){b->items, j, je}, res);
		i = ie;
		j = je;
	}
	return ret;
}

int drdns_zone_compare(const struct drdns_zone *dr, const ldns_rr_list *campus,
                       struct drdns_compare_result *out)
{
	memset(out, 0, sizeof(*out));
	struct side a = {0}, b = {0};
	int ret = side_build(campus, &a);
	if (ret == 0)
		ret = side_build(dr->rrs, &b);
	if (ret == 0) {
		out->campus_records = a.n;
		out->dr_records = b.n;
		ret = compare_sides(&a, &b, out);
	}
	side_free(&a);
	side_free(&b);
	return ret;
}

static void side_clear(struct drdns_compare_side *s)
{
	for (size_t i = 0; i < s->n_examples; i++)
		free(s->examples[i]);
	memset(s, 0, sizeof(*s));
}

void drdns_compare_result_clear(struct drdns_compare_result *r)
{
	side_clear(&r->left_out);
	side_clear(&r->dr_only);
}

json_t *drdns_compare_side_json(const struct drdns_compare_side *side)
{
	json_t *examples = json_array();
	for (size_t i = 0; examples && i < side->n_examples; i++)
		if (json_array_append_new(examples, json_string(side->examples[i])) < 0) {
			json_decref(examples);
			return NULL;
		}
	return json_pack("{s:I, s:I, s:I, s:o}", "names", (json_int_t)side->names, "rrsets",
	                 (json_int_t)side->rrsets, "records", (json_int_t)side->records, "examples",
	                 examples);
}
