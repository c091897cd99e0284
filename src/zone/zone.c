#include "drdns/zone.h"
#include "drdns/diag.h"
#include "drdns/error.h"
#include "drdns/fsutil.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A parsed record and the line it came from, kept only while validating. */
struct located_rr {
	ldns_rr *rr;
	int line;
};

static char *dname_text(const ldns_rdf *rdf)
{
	ldns_rdf *copy = ldns_rdf_clone(rdf);
	if (!copy)
		return NULL;
	ldns_dname2canonical(copy);
	char *s = ldns_rdf2str(copy);
	ldns_rdf_deep_free(copy);
	return s;
}

/* "example.edu" or "example.edu." -> "example.edu." lowercase, newly allocated. */
static char *normalize_name(const char *text)
{
	size_t len = strlen(text);
	char *out = malloc(len + 2);
	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)text[i]);
	if (len == 0 || out[len - 1] != '.')
		out[len++] = '.';
	out[len] = '\0';
	return out;
}

static bool in_zone(const ldns_rdf *name, const ldns_rdf *origin)
{
	return ldns_dname_compare(name, origin) == 0 || ldns_dname_is_subdomain(name, origin);
}

static bool is_address_type(ldns_rr_type t)
{
	return t == LDNS_RR_TYPE_A || t == LDNS_RR_TYPE_AAAA;
}

/* Does any record other than rr itself own name with an address type? */
static bool has_address(struct located_rr *rrs, size_t n, const ldns_rdf *name)
{
	for (size_t i = 0; i < n; i++)
		if (is_address_type(ldns_rr_get_type(rrs[i].rr)) &&
		    ldns_dname_compare(ldns_rr_owner(rrs[i].rr), name) == 0)
			return true;
	return false;
}

static void validate(const char *path, const ldns_rdf *origin, struct located_rr *rrs, size_t n,
                     struct drdns_diag *diag, int last_line)
{
	size_t soa_count = 0, apex_ns = 0;
	char *zname = dname_text(origin);

	for (size_t i = 0; i < n; i++) {
		const ldns_rr *rr = rrs[i].rr;
		const ldns_rdf *owner = ldns_rr_owner(rr);
		ldns_rr_type type = ldns_rr_get_type(rr);
		bool apex = ldns_dname_compare(owner, origin) == 0;
		char *oname = dname_text(owner);

		if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN)
			drdns_diag_error(diag, "%s:%d: %s: class is not IN", path, rrs[i].line,
			                 oname);
		if (!in_zone(owner, origin)) {
			drdns_diag_error(diag, "%s:%d: out-of-zone data: %s is not in zone %s",
			                 path, rrs[i].line, oname, zname);
		} else if (type == LDNS_RR_TYPE_SOA) {
			if (!apex)
				drdns_diag_error(diag,
				                 "%s:%d: SOA at %s: the SOA must be at the apex %s",
				                 path, rrs[i].line, oname, zname);
			else if (++soa_count > 1)
				drdns_diag_error(diag,
				                 "%s:%d: second SOA record: a zone has exactly one",
				                 path, rrs[i].line);
		} else if (type == LDNS_RR_TYPE_NS && apex) {
			apex_ns++;
			const ldns_rdf *target = ldns_rr_rdf(rr, 0);
			if (target && in_zone(target, origin) && !has_address(rrs, n, target)) {
				char *t = dname_text(target);
				drdns_diag_error(diag,
				                 "%s:%d: NS %s is inside the zone but has no glue "
				                 "(A or AAAA record)",
				                 path, rrs[i].line, t);
				free(t);
			}
		} else if (type == LDNS_RR_TYPE_CNAME) {
			for (size_t j = 0; j < n; j++) {
				ldns_rr_type other = ldns_rr_get_type(rrs[j].rr);
				if (j == i || other == LDNS_RR_TYPE_RRSIG ||
				    other == LDNS_RR_TYPE_NSEC ||
				    ldns_dname_compare(ldns_rr_owner(rrs[j].rr), owner) != 0)
					continue;
				if (other == LDNS_RR_TYPE_CNAME &&
				    j < i) /* report a CNAME pair once */
					continue;
				drdns_diag_error(
				    diag, "%s:%d: CNAME at %s alongside other data (line %d)", path,
				    rrs[i].line, oname, rrs[j].line);
				break;
			}
		}
		free(oname);
	}
	if (soa_count == 0)
		drdns_diag_error(diag, "%s:%d: no SOA record at the apex %s", path, last_line,
		                 zname);
	if (apex_ns == 0)
		drdns_diag_error(diag, "%s:%d: no NS records at the apex %s", path, last_line,
		                 zname);
	free(zname);
}

static void located_free(struct located_rr *rrs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ldns_rr_free(rrs[i].rr);
	free(rrs);
}

void drdns_zone_free(struct drdns_zone *z)
{
	if (!z)
		return;
	free(z->name);
	free(z->path);
	ldns_rdf_deep_free(z->origin);
	ldns_rr_free(z->soa);
	ldns_rr_list_deep_free(z->rrs);
	free(z);
}

struct indexed_rr {
	ldns_rr *rr;
	size_t index;
};

static int cmp_indexed(const void *a, const void *b)
{
	const struct indexed_rr *x = a, *y = b;
	int c = ldns_rr_compare(x->rr, y->rr);
	if (c)
		return c;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* Drop exact duplicates (as BIND does, silently), keeping file order. */
static int drop_duplicates(ldns_rr_list *list)
{
	size_t n = ldns_rr_list_rr_count(list);
	if (n < 2)
		return 0;
	struct indexed_rr *sorted = malloc(n * sizeof(*sorted));
	bool *dup = calloc(n, sizeof(*dup));
	if (!sorted || !dup) {
		free(sorted);
		free(dup);
		return DRDNS_ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		sorted[i] = (struct indexed_rr){ldns_rr_list_rr(list, i), i};
	qsort(sorted, n, sizeof(*sorted), cmp_indexed);
	for (size_t i = 1; i < n; i++)
		if (ldns_rr_compare(sorted[i - 1].rr, sorted[i].rr) == 0)
			dup[sorted[i].index] = true; /* a later copy of an earlier record */
	size_t out = 0;
	for (size_t i = 0; i < n; i++) {
		ldns_rr *rr = ldns_rr_list_rr(list, i);
		if (dup[i])
			ldns_rr_free(rr);
		else
			ldns_rr_list_set_rr(list, rr, out++);
	}
	ldns_rr_list_set_rr_count(list, out);
	free(sorted);
	free(dup);
	return 0;
}

int drdns_zone_load(const char *path, const char *origin_text, struct drdns_zone **out,
                    struct drdns_diag *diag)
{
	size_t errors_before = diag ? diag->n_errors : 0;
	bool failed = false;
	struct drdns_zone *z = calloc(1, sizeof(*z));
	struct located_rr *rrs = NULL;
	size_t n = 0, cap = 0;
	ldns_rdf *cur_origin = NULL, *prev = NULL;
	FILE *fp = NULL;
	int line = 1;
	uint32_t default_ttl = 3600;

	if (!z)
		return DRDNS_ENOMEM;
	z->name = normalize_name(origin_text);
	z->path = strdup(path);
	z->origin = z->name ? ldns_dname_new_frm_str(z->name) : NULL;
	if (!z->name || !z->path) {
		drdns_zone_free(z);
		return DRDNS_ENOMEM;
	}
	if (!z->origin) {
		drdns_diag_error(diag,
		                 "%s:1: the file name does not give a valid zone name (\"%s\")",
		                 path, origin_text);
		drdns_zone_free(z);
		return DRDNS_EZONE;
	}
	/* Parse from memory with a guaranteed final newline, so a last line without
	 * one is numbered like any other; directories and devices are refused. */
	struct stat st;
	char *text = NULL;
	size_t text_len = 0;
	int rret = stat(path, &st) < 0 ? -errno : !S_ISREG(st.st_mode) ? -EISDIR : 0;
	if (rret == 0)
		rret = drdns_read_file(path, &text, &text_len);
	if (rret < 0) {
		drdns_diag_error(diag, "%s:0: cannot read: %s", path,
		                 rret == -EISDIR ? "not a regular file" : drdns_strerror(rret));
		drdns_zone_free(z);
		return DRDNS_EZONE;
	}
	if (text_len == 0 || text[text_len - 1] != '\n') {
		char *grown = realloc(text, text_len + 2);
		if (!grown) {
			free(text);
			drdns_zone_free(z);
			return DRDNS_ENOMEM;
		}
		text = grown;
		text[text_len++] = '\n';
		text[text_len] = '\0';
	}
	fp = fmemopen(text, text_len, "r");
	if (!fp) {
		free(text);
		drdns_zone_free(z);
		return DRDNS_ENOMEM;
	}
	cur_origin = ldns_rdf_clone(z->origin);

	while (!feof(fp)) {
		ldns_rr *rr = NULL;
		ldns_status s =
		    ldns_rr_new_frm_fp_l(&rr, fp, &default_ttl, &cur_origin, &prev, &line);
		/* ldns counts the newline that ends the record: it sits on line - 1. */
		int at = line > 1 ? line - 1 : 1;
		switch (s) {
		case LDNS_STATUS_OK: break;
		case LDNS_STATUS_SYNTAX_EMPTY: continue;
		case LDNS_STATUS_SYNTAX_TTL: continue;
		case LDNS_STATUS_SYNTAX_ORIGIN:
			if (!cur_origin || !in_zone(cur_origin, z->origin)) {
				char *o = cur_origin ? dname_text(cur_origin) : strdup("?");
				drdns_diag_error(diag,
				                 "%s:%d: $ORIGIN %s is outside zone %s (the zone "
				                 "name comes from the file name)",
				                 path, at, o, z->name);
				free(o);
				failed = true;
			}
			continue;
		case LDNS_STATUS_SYNTAX_INCLUDE:
			drdns_diag_error(
			    diag,
			    "%s:%d: $INCLUDE is not allowed: a DR zone file must be self-contained",
			    path, at);
			failed = true;
			continue;
		default:
			drdns_diag_error(diag, "%s:%d: %s", path, at, ldns_get_errorstr_by_id(s));
			failed = true;
			continue;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			struct located_rr *grown = realloc(rrs, cap * sizeof(*grown));
			if (!grown) {
				ldns_rr_free(rr);
				failed = true;
				break;
			}
			rrs = grown;
		}
		rrs[n].rr = rr;
		rrs[n].line = at;
		n++;
	}
	fclose(fp);
	free(text);
	ldns_rdf_deep_free(cur_origin);
	ldns_rdf_deep_free(prev);

	/* Validate what did parse too, so one run reports every problem. */
	validate(path, z->origin, rrs, n, diag, line > 1 ? line - 1 : 1);
	if (failed || (diag && diag->n_errors > errors_before) || (!diag && n == 0)) {
		located_free(rrs, n);
		drdns_zone_free(z);
		return DRDNS_EZONE;
	}

	z->rrs = ldns_rr_list_new();
	for (size_t i = 0; i < n; i++) {
		ldns_dname2canonical(ldns_rr_owner(rrs[i].rr));
		if (ldns_rr_get_type(rrs[i].rr) == LDNS_RR_TYPE_SOA && !z->soa)
			z->soa = rrs[i].rr;
		else
			ldns_rr_list_push_rr(z->rrs, rrs[i].rr);
		rrs[i].rr = NULL;
	}
	free(rrs);
	if (!z->soa) { /* only reachable without a diag collector */
		drdns_zone_free(z);
		return DRDNS_EZONE;
	}
	if (drop_duplicates(z->rrs) < 0) {
		drdns_zone_free(z);
		return DRDNS_ENOMEM;
	}
	*out = z;
	return 0;
}

static int cmp_zone(const void *a, const void *b)
{
	const struct drdns_zone *const *za = a, *const *zb = b;
	return strcmp((*za)->name, (*zb)->name);
}

void drdns_zoneset_free(struct drdns_zoneset *set)
{
	if (!set)
		return;
	for (size_t i = 0; i < set->n; i++)
		drdns_zone_free(set->zones[i]);
	free(set->zones);
	free(set);
}

int drdns_zoneset_load_dir(const char *dir, struct drdns_zoneset **out, struct drdns_diag *diag)
{
	struct dirent **entries = NULL;
	int count = scandir(dir, &entries, NULL, alphasort);
	if (count < 0) {
		drdns_diag_error(diag, "%s:0: cannot read the DR zone directory: %s", dir,
		                 strerror(errno));
		return DRDNS_EZONE;
	}
	struct drdns_zoneset *set = calloc(1, sizeof(*set));
	int ret = set ? 0 : DRDNS_ENOMEM;
	for (int i = 0; i < count; i++) {
		const char *fname = entries[i]->d_name;
		size_t len = strlen(fname);
		if (ret != DRDNS_ENOMEM && fname[0] != '.' && len > 5 &&
		    !strcmp(fname + len - 5, ".zone")) {
			char *zname = strndup(fname, len - 5);
			char *path = NULL;
			struct drdns_zone *z = NULL;
			if (!zname || asprintf(&path, "%s/%s", dir, fname) < 0) {
				ret = DRDNS_ENOMEM;
			} else if (drdns_zone_load(path, zname, &z, diag) < 0) {
				ret = DRDNS_EZONE;
			} else {
				struct drdns_zone **grown =
				    realloc(set->zones, (set->n + 1) * sizeof(*grown));
				if (!grown) {
					drdns_zone_free(z);
					ret = DRDNS_ENOMEM;
				} else {
					set->zones = grown;
					set->zones[set->n++] = z;
				}
			}
			free(zname);
			free(path);
		}
		free(entries[i]);
	}
	free(entries);
	if (ret == 0 && set->n == 0) {
		drdns_diag_error(diag, "%s:0: no zone files (*.zone) in the DR zone directory",
		                 dir);
		ret = DRDNS_EZONE;
	}
	if (ret < 0) {
		drdns_zoneset_free(set);
		return ret;
	}
	qsort(set->zones, set->n, sizeof(*set->zones), cmp_zone);
	*out = set;
	return 0;
}

struct drdns_zone *drdns_zone_clone(const struct drdns_zone *z)
{
	struct drdns_zone *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->name = strdup(z->name);
	c->path = z->path ? strdup(z->path) : NULL;
	c->origin = ldns_rdf_clone(z->origin);
	c->soa = ldns_rr_clone(z->soa);
	c->rrs = ldns_rr_list_clone(z->rrs);
	if (!c->name || (z->path && !c->path) || !c->origin || !c->soa || !c->rrs) {
		drdns_zone_free(c);
		return NULL;
	}
	return c;
}

struct drdns_zone *drdns_zoneset_find(const struct drdns_zoneset *set, const char *name)
{
	if (!set || !name)
		return NULL;
	char *norm = normalize_name(name);
	struct drdns_zone *found = NULL;
	for (size_t i = 0; norm && i < set->n && !found; i++)
		if (!strcmp(set->zones[i]->name, norm))
			found = set->zones[i];
	free(norm);
	return found;
}

uint32_t drdns_zone_serial(const struct drdns_zone *z)
{
	return drdns_soa_rr_serial(z->soa);
}

uint32_t drdns_soa_rr_serial(const ldns_rr *soa)
{
	const ldns_rdf *rdf = soa && ldns_rr_rd_count(soa) > 2 ? ldns_rr_rdf(soa, 2) : NULL;
	return rdf && ldns_rdf_size(rdf) == 4 ? ldns_rdf2native_int32(rdf) : 0;
}

size_t drdns_zone_rr_count(const struct drdns_zone *z)
{
	return ldns_rr_list_rr_count(z->rrs) + 1;
}

/* One slice of the records in presentation form (a thread of
 * drdns_zone_to_text). */
struct text_part {
	const ldns_rr_list *rrs;
	size_t from, to;
	ldns_buffer *buf;
	bool ok, started;
	pthread_t tid;
};

static void *text_part_run(void *arg)
{
	struct text_part *p = arg;
	p->buf = ldns_buffer_new(65536);
	for (size_t i = p->from; p->buf && i < p->to; i++)
		ldns_rr2buffer_str(p->buf, ldns_rr_list_rr(p->rrs, i));
	p->ok = p->buf && ldns_buffer_status_ok(p->buf);
	return NULL;
}

#define TEXT_PARTS_MAX    16
#define TEXT_PART_RECORDS 50000 /* below this per thread, threads cost more than they save */

char *drdns_zone_to_text(const struct drdns_zone *z)
{
	/* Presentation form costs about as much per record as signing does:
	 * large zones are printed in slices on every CPU, then joined in order. */
	size_t n = ldns_rr_list_rr_count(z->rrs);
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t parts = n / TEXT_PART_RECORDS;
	if (parts > (size_t)(cpus > 0 ? cpus : 1))
		parts = (size_t)(cpus > 0 ? cpus : 1);
	if (parts > TEXT_PARTS_MAX)
		parts = TEXT_PARTS_MAX;
	if (parts < 1)
		parts = 1;
	struct text_part part[TEXT_PARTS_MAX] = {0};
	for (size_t k = 0; k < parts; k++) {
		part[k] = (struct text_part){
		    .rrs = z->rrs, .from = n * k / parts, .to = n * (k + 1) / parts};
		if (k > 0)
			part[k].started =
			    pthread_create(&part[k].tid, NULL, text_part_run, &part[k]) == 0;
	}
	text_part_run(&part[0]);
	for (size_t k = 1; k < parts; k++) {
		if (part[k].started)
			pthread_join(part[k].tid, NULL);
		else
			text_part_run(&part[k]); /* no thread: print it here */
	}
	char *text = NULL;
	ldns_buffer *head = ldns_buffer_new(4096);
	bool ok = head != NULL;
	if (ok) {
		ldns_buffer_printf(head, "$ORIGIN %s\n", z->name);
		ldns_rr2buffer_str(head, z->soa);
		ok = ldns_buffer_status_ok(head);
	}
	size_t len = ok ? ldns_buffer_position(head) : 0;
	for (size_t k = 0; k < parts; k++) {
		ok = ok && part[k].ok;
		len += ok ? ldns_buffer_position(part[k].buf) : 0;
	}
	if (ok && (text = malloc(len + 1))) {
		size_t at = ldns_buffer_position(head);
		memcpy(text, ldns_buffer_begin(head), at);
		for (size_t k = 0; k < parts; k++) {
			memcpy(text + at, ldns_buffer_begin(part[k].buf),
			       ldns_buffer_position(part[k].buf));
			at += ldns_buffer_position(part[k].buf);
		}
		text[at] = '\0';
	}
	ldns_buffer_free(head);
	for (size_t k = 0; k < parts; k++)
		ldns_buffer_free(part[k].buf);
	return text;
}

int drdns_zone_write(const struct drdns_zone *z, const char *path)
{
	char *text = drdns_zone_to_text(z);
	if (!text)
		return DRDNS_ENOMEM;
	int ret = drdns_write_atomic(path, text, strlen(text), 0644);
	free(text);
	return ret;
}

size_t drdns_zone_ns_names(const struct drdns_zone *z, char ***names)
{
	size_t n = 0;
	char **out = NULL;
	for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
		const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
		if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_NS ||
		    ldns_dname_compare(ldns_rr_owner(rr), z->origin) != 0 || !ldns_rr_rdf(rr, 0))
			continue;
		char *name = dname_text(ldns_rr_rdf(rr, 0));
		char **grown = name ? realloc(out, (n + 1) * sizeof(*grown)) : NULL;
		if (!grown) {
			free(name);
			break;
		}
		out = grown;
		out[n++] = name;
	}
	*names = out;
	return n;
}

char *drdns_zone_glue_address(const struct drdns_zone *z, const char *name)
{
	ldns_rdf *dname = ldns_dname_new_frm_str(name);
	if (!dname)
		return NULL;
	char *addr = NULL;
	for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs) && !addr; i++) {
		const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
		if (is_address_type(ldns_rr_get_type(rr)) &&
		    ldns_dname_compare(ldns_rr_owner(rr), dname) == 0)
			addr = ldns_rdf2str(ldns_rr_rdf(rr, 0));
	}
	ldns_rdf_deep_free(dname);
	return addr;
}
