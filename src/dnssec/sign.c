/*
 * DNSSEC signing: see dnssec.h.
 *
 * Plan:
 *   1. check the keys and parameters;
 *   2. take every record of the input but DNSKEY/RRSIG/NSEC/NSEC3/NSEC3PARAM,
 *      add the DNSKEY RRset (and NSEC3PARAM), and compute for each record
 *      its canonical owner (RFC 4034 6.2), a sort key for the owner that
 *      memcmp()s in canonical name order (6.1) and its canonical RDATA;
 *   3. sort by (owner, type, rdata), group into names and RRsets, find the
 *      zone cuts: delegation NS and everything below a cut (glue, occluded
 *      data) is not signed, DS at a cut is;
 *   4. build the NSEC chain, or the NSEC3 chain (RFC 5155 7.1: hashed owner
 *      names, empty non-terminals, opt-out for unsigned delegations);
 *   5. sign: one job per (RRset, key); threads take chunks of jobs, build the
 *      RFC 4034 3.1.8.1 signed data themselves and sign with OpenSSL through
 *      per-thread contexts (no per-signature set-up beyond what OpenSSL
 *      needs);
 *   6. check one signature of each key with ldns (a key whose private half
 *      does not match its DNSKEY must not produce a bogus zone), and
 *      assemble the output in canonical order: every RRset followed by its
 *      RRSIGs, the NSEC/NSEC3 records merged in by owner name.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "drdns/dnssec.h"
#include "drdns/error.h"
#include "drdns/zone.h"

#define T_NS         2
#define T_SOA        6
#define T_DS         43
#define T_RRSIG      46
#define T_NSEC       47
#define T_DNSKEY     48
#define T_NSEC3      50
#define T_NSEC3PARAM 51
#define CLASS_IN     1

#define JOB_CHUNK   64
#define MAX_THREADS 256
#define NSEC3_HLEN  20 /* SHA-1 */
#define MAX_TYPES   (65536 + 4)
#define MAX_BITMAP  (256 * 34)
#define MAX_RUNS    (MAX_THREADS + 2)

/* ------------------------------------------------------------ arena */

/* Bump allocator for the many small per-record buffers, freed at once. */
struct arena_block {
	struct arena_block *next;
	size_t used, cap;
	max_align_t data[];
};

struct arena {
	struct arena_block *head;
};

static void *arena_alloc(struct arena *a, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	struct arena_block *b = a->head;
	if (!b || b->cap - b->used < n) {
		size_t cap = n > 65536 ? n : 65536;
		b = malloc(sizeof(*b) + cap);
		if (!b)
			return NULL;
		b->cap = cap;
		b->used = 0;
		b->next = a->head;
		a->head = b;
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	return p;
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct arena_block *b = a->head;
		a->head = b->next;
		free(b);
	}
}

/* ------------------------------------------------------------ data */

struct rec {
	ldns_rr *rr;          /* the output record (owned until handed over) */
	const uint8_t *owner; /* canonical owner, wire form */
	const uint8_t *skey;  /* owner sort key (memcmp = canonical order) */
	const uint8_t *rdata; /* canonical RDATA */
	uint16_t olen, sklen, rdlen, type;
	uint32_t ttl;
};

struct rrset {
	struct rec *recs; /* n, sorted by canonical RDATA, no duplicates */
	size_t n;
	size_t name;  /* index into names (main RRsets only) */
	uint32_t ttl; /* the RRset's TTL (lowest of its records) */
	uint16_t type;
	uint8_t labels; /* RRSIG labels field */
	bool sign;
	bool is_soa;
	size_t job0, njobs; /* its signatures: jobs[job0 .. job0 + njobs) */
};

enum {
	NAME_APEX = 1,
	NAME_CUT = 2,      /* delegation point (non-apex NS) */
	NAME_OCCLUDED = 4, /* below a zone cut: glue or occluded data */
	NAME_DS = 8,       /* delegation with DS */
};

struct name {
	const struct rec *r0; /* first record (owner, sort key) */
	size_t rrset0, nrrsets;
	unsigned flags;
};

/* A name of the NSEC3 chain: a name with data, or an empty non-terminal. */
struct hname {
	const uint8_t *owner, *skey;
	uint16_t olen, sklen;
	size_t name; /* index into names, or SIZE_MAX for an empty non-terminal */
	uint8_t hash[NSEC3_HLEN];
};

enum key_kind {
	KIND_RSA,
	KIND_EC,
	KIND_ED
};

struct skey {
	const struct drdns_dnskey *dk;
	EVP_PKEY *pkey; /* borrowed from the ldns_key */
	enum key_kind kind;
	size_t maxsig;
	uint16_t tag;
	uint8_t alg;
	bool sign_dnskey, sign_other;
};

struct job {
	const struct rrset *set;
	const struct skey *key;
	ldns_rr *sig; /* result */
	uint32_t expiration;
};

struct signer {
	/* inputs */
	const struct drdns_zone *in;
	const struct drdns_sign_params *p;
	struct skey *keys;
	size_t nkeys;
	const uint8_t *origin; /* canonical wire */
	const uint8_t *origin_skey;
	uint16_t origin_len, origin_sklen;
	uint32_t soa_ttl, neg_ttl, inception;
	struct arena arena;

	struct rec *recs; /* main records */
	size_t nrecs, caprecs;
	size_t runs[MAX_RUNS + 1]; /* recs[runs[i] .. runs[i + 1]) sorted, i < nruns */
	size_t nruns;
	struct rrset *sets;
	size_t nsets;
	struct name *names;
	size_t nnames;
	struct rec *crecs; /* NSEC or NSEC3 records, in canonical order */
	struct rrset *csets;
	size_t nc;

	struct job *jobs;
	size_t njobs;

	/* worker state */
	atomic_size_t next_job;
	atomic_int failed;
	pthread_mutex_t err_lock;
	char *err;
	size_t errlen;
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ names */

static bool is_lower_type(uint16_t t)
{
	/* RFC 4034 6.2 as amended by RFC 6840 5.1 (NSEC no longer) and RFC 3597 7:
	 * the types whose RDATA domain names are lowercased in canonical form. */
	switch (t) {
	case 2:  /* NS */
	case 3:  /* MD */
	case 4:  /* MF */
	case 5:  /* CNAME */
	case 6:  /* SOA */
	case 7:  /* MB */
	case 8:  /* MG */
	case 9:  /* MR */
	case 12: /* PTR */
	case 14: /* MINFO */
	case 15: /* MX */
	case 17: /* RP */
	case 18: /* AFSDB */
	case 21: /* RT */
	case 24: /* SIG */
	case 26: /* PX */
	case 30: /* NXT */
	case 33: /* SRV */
	case 35: /* NAPTR */
	case 36: /* KX */
	case 38: /* A6 */
	case 39: /* DNAME */
	case 46: /* RRSIG */ return true;
	default: return false;
	}
}

static void lower(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] >= 'A' && p[i] <= 'Z')
			p[i] = (uint8_t)(p[i] + 32);
}

/* Length of the wire-form name at p (max n bytes), or 0 when malformed. */
static size_t wire_name_len(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t l = p[i];
		if (l == 0)
			return i + 1;
		if (l > 63)
			return 0;
		i += 1u + l;
	}
	return 0;
}

/* Sort key of a wire name: labels from the root down, each label's bytes
 * (lowercased) followed by 0x00, with bytes 0x00 and 0x01 escaped as 0x01 0x01
 * and 0x01 0x02.  memcmp() with the shorter-is-smaller rule then gives the
 * canonical name order of RFC 4034 6.1, and a name's key is a prefix of its
 * descendants' keys. */
static uint8_t *make_skey(struct arena *a, const uint8_t *wire, size_t wlen, uint16_t *sklen)
{
	size_t offs[128], nl = 0;
	for (size_t i = 0; i < wlen && wire[i] && nl < 128; i += 1u + wire[i])
		offs[nl++] = i;
	uint8_t *k = arena_alloc(a, 2 * wlen + 1);
	if (!k)
		return NULL;
	size_t o = 0;
	for (size_t li = nl; li-- > 0;) {
		const uint8_t *l = wire + offs[li];
		for (size_t j = 1; j <= l[0]; j++) {
			uint8_t c = l[j];
			if (c >= 'A' && c <= 'Z')
				c = (uint8_t)(c + 32);
			if (c <= 1) {
				k[o++] = 1;
				k[o++] = (uint8_t)(c + 1);
			} else {
				k[o++] = c;
			}
		}
		k[o++] = 0;
	}
	*sklen = (uint16_t)o;
	return k;
}

static int keycmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);
	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

/* a strictly below b */
static bool key_below(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	return al > bl && memcmp(a, b, bl) == 0;
}

/* RRSIG labels: labels of the owner, root and a leading "*" not counted. */
static uint8_t rrsig_labels(const uint8_t *w)
{
	unsigned n = 0;
	bool wild = w[0] == 1 && w[1] == '*';
	for (size_t i = 0; w[i]; i += 1u + w[i])
		n++;
	return (uint8_t)(wild ? n - 1 : n);
}

/* ------------------------------------------------------------ records */

static struct rec *rec_push(struct signer *s)
{
	if (s->nrecs == s->caprecs) {
		size_t cap = s->caprecs ? s->caprecs * 2 : 1024;
		struct rec *g = realloc(s->recs, cap * sizeof(*g));
		if (!g)
			return NULL;
		s->recs = g;
		s->caprecs = cap;
	}
	struct rec *r = &s->recs[s->nrecs++];
	memset(r, 0, sizeof(*r));
	return r;
}

/* Fill r's canonical fields from r->rr.  Returns 0, DRDNS_ENOMEM, or
 * DRDNS_EDNSSEC for a record that cannot be put in canonical form. */
static int rec_canon(struct arena *a, struct rec *r)
{
	const ldns_rr *rr = r->rr;
	const ldns_rdf *own = ldns_rr_owner(rr);
	if (!own || ldns_rdf_get_type(own) != LDNS_RDF_TYPE_DNAME)
		return DRDNS_EDNSSEC;
	size_t olen = wire_name_len(ldns_rdf_data(own), ldns_rdf_size(own));
	if (olen == 0 || olen > 255)
		return DRDNS_EDNSSEC;
	uint8_t *o = arena_alloc(a, olen);
	if (!o)
		return DRDNS_ENOMEM;
	memcpy(o, ldns_rdf_data(own), olen);
	lower(o, olen);
	r->owner = o;
	r->olen = (uint16_t)olen;
	r->skey = make_skey(a, o, olen, &r->sklen);
	if (!r->skey)
		return DRDNS_ENOMEM;
	r->type = (uint16_t)ldns_rr_get_type(rr);
	r->ttl = ldns_rr_ttl(rr);
	size_t len = 0;
	for (size_t i = 0; i < ldns_rr_rd_count(rr); i++)
		len += ldns_rdf_size(ldns_rr_rdf(rr, i));
	if (len > 65535)
		return DRDNS_EDNSSEC;
	uint8_t *d = arena_alloc(a, len ? len : 1);
	if (!d)
		return DRDNS_ENOMEM;
	bool low = is_lower_type(r->type);
	size_t at = 0;
	for (size_t i = 0; i < ldns_rr_rd_count(rr); i++) {
		const ldns_rdf *f = ldns_rr_rdf(rr, i);
		if (ldns_rdf_size(f))
			memcpy(d + at, ldns_rdf_data(f), ldns_rdf_size(f));
		if (low && ldns_rdf_get_type(f) == LDNS_RDF_TYPE_DNAME)
			lower(d + at, ldns_rdf_size(f));
		at += ldns_rdf_size(f);
	}
	r->rdata = d;
	r->rdlen = (uint16_t)len;
	return 0;
}

/* A new ldns_rr from wire pieces (NULL when out of memory or malformed). */
static ldns_rr *rr_from_wire(const uint8_t *owner, size_t olen, uint16_t type, uint32_t ttl,
                             const uint8_t *rdata, size_t rdlen, uint8_t *scratch)
{
	size_t n = 0;
	memcpy(scratch, owner, olen);
	n += olen;
	scratch[n++] = (uint8_t)(type >> 8);
	scratch[n++] = (uint8_t)type;
	scratch[n++] = 0;
	scratch[n++] = CLASS_IN;
	scratch[n++] = (uint8_t)(ttl >> 24);
	scratch[n++] = (uint8_t)(ttl >> 16);
	scratch[n++] = (uint8_t)(ttl >> 8);
	scratch[n++] = (uint8_t)ttl;
	scratch[n++] = (uint8_t)(rdlen >> 8);
	scratch[n++] = (uint8_t)rdlen;
	memcpy(scratch + n, rdata, rdlen);
	n += rdlen;
	ldns_rr *rr = NULL;
	size_t pos = 0;
	if (ldns_wire2rr(&rr, scratch, n, &pos, LDNS_SECTION_ANSWER) != LDNS_STATUS_OK)
		return NULL;
	return rr;
}

static int cmp_rec(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	int c = keycmp(x->skey, x->sklen, y->skey, y->sklen);
	if (c)
		return c;
	if (x->type != y->type)
		return x->type < y->type ? -1 : 1;
	return keycmp(x->rdata, x->rdlen, y->rdata, y->rdlen);
}

/* ------------------------------------------------------------ input */

/* A share of a parallel phase: items [lo, hi), with its own arena. */
struct part {
	struct signer *s;
	void *ctx;
	size_t lo, hi;
	struct rec *out; /* take_input: where its records go, n of them */
	size_t n;
	struct arena arena;
	int ret;
	const char *msg; /* what went wrong when ret is DRDNS_EDNSSEC */
	pthread_t tid;
	bool started;
};

static unsigned thread_limit(const struct signer *s)
{
	long n = s->p->threads ? (long)s->p->threads : sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > MAX_THREADS)
		n = MAX_THREADS;
	return (unsigned)n;
}

/* Run fn on n items split into contiguous shares, one thread per share (at
 * least grain items each; a share whose thread cannot start runs here).
 * Returns the shares (*nt of them), or NULL when out of memory. */
static struct part *run_parts(struct signer *s, size_t n, size_t grain, void *(*fn)(void *),
                              void *ctx, unsigned *nt)
{
	unsigned t = thread_limit(s);
	if (t > n / grain + 1)
		t = (unsigned)(n / grain + 1);
	struct part *pp = calloc(t, sizeof(*pp));
	if (!pp)
		return NULL;
	for (unsigned i = 0; i < t; i++) {
		pp[i].s = s;
		pp[i].ctx = ctx;
		pp[i].lo = n * i / t;
		pp[i].hi = n * (i + 1) / t;
	}
	for (unsigned i = 1; i < t; i++)
		pp[i].started = pthread_create(&pp[i].tid, NULL, fn, &pp[i]) == 0;
	fn(&pp[0]);
	for (unsigned i = 1; i < t; i++) {
		if (pp[i].started)
			pthread_join(pp[i].tid, NULL);
		else
			fn(&pp[i]);
	}
	*nt = t;
	return pp;
}

/* The first error of the shares (in item order), their arenas handed to s. */
static int parts_done(struct signer *s, struct part *pp, unsigned nt, const char **msg)
{
	int ret = 0;
	for (unsigned i = 0; i < nt; i++) {
		if (!ret && pp[i].ret) {
			ret = pp[i].ret;
			*msg = pp[i].msg;
		}
		struct arena_block **tail = &pp[i].arena.head;
		while (*tail)
			tail = &(*tail)->next;
		*tail = s->arena.head;
		s->arena.head = pp[i].arena.head;
	}
	free(pp);
	return ret;
}

static bool skip_type(ldns_rr_type t)
{
	return t == LDNS_RR_TYPE_DNSKEY || t == LDNS_RR_TYPE_RRSIG || t == LDNS_RR_TYPE_NSEC ||
	       t == LDNS_RR_TYPE_NSEC3 || t == LDNS_RR_TYPE_NSEC3PARAM;
}

/* A share of the input: records [lo, hi) of in->rrs cloned and put in
 * canonical form into out[0 .. n), then sorted. */
static void *input_run(void *arg)
{
	struct part *pp = arg;
	const struct drdns_zone *in = pp->s->in;
	pp->out = (struct rec *)pp->ctx + pp->lo;
	for (size_t i = pp->lo; i < pp->hi; i++) {
		const ldns_rr *src = ldns_rr_list_rr(in->rrs, i);
		ldns_rr_type t = ldns_rr_get_type(src);
		if (skip_type(t))
			continue;
		if (t == LDNS_RR_TYPE_SOA &&
		    ldns_dname_compare(ldns_rr_owner(src), in->origin) == 0)
			continue; /* a second SOA at the apex: in->soa is the one */
		if (ldns_rr_get_class(src) != LDNS_RR_CLASS_IN) {
			pp->msg = "a record of class other than IN";
			pp->ret = DRDNS_EDNSSEC;
			return NULL;
		}
		struct rec *r = &pp->out[pp->n];
		memset(r, 0, sizeof(*r));
		if (!(r->rr = ldns_rr_clone(src))) {
			pp->ret = DRDNS_ENOMEM;
			return NULL;
		}
		pp->n++;
		pp->ret = rec_canon(&pp->arena, r);
		if (pp->ret) {
			pp->msg = "a record cannot be put in canonical form";
			return NULL;
		}
	}
	/* glibc's qsort is a merge sort (stable): of records equal in canonical
	 * form the first one in the input stays first */
	qsort(pp->out, pp->n, sizeof(*pp->out), cmp_rec);
	return NULL;
}

/* Move the input records into s->recs (behind what is there), cloned and in
 * canonical form, in parallel for a large zone; each share's records are
 * sorted, a run in s->runs. */
static int take_input(struct signer *s, char *err, size_t errlen)
{
	size_t nin = s->in->rrs ? ldns_rr_list_rr_count(s->in->rrs) : 0;
	if (nin == 0)
		return 0;
	if (s->caprecs - s->nrecs < nin)
		return DRDNS_ENOMEM; /* reserved by the caller */
	unsigned nt = 0;
	struct part *pp = run_parts(s, nin, 8192, input_run, s->recs + s->nrecs, &nt);
	if (!pp)
		return DRDNS_ENOMEM;
	/* close the gaps left by skipped records */
	for (unsigned t = 0; t < nt; t++) {
		memmove(s->recs + s->nrecs, pp[t].out, pp[t].n * sizeof(*pp[t].out));
		s->nrecs += pp[t].n;
		if (pp[t].n && s->nruns < MAX_RUNS - 1)
			s->runs[++s->nruns] = s->nrecs;
	}
	const char *msg = NULL;
	int ret = parts_done(s, pp, nt, &msg);
	if (ret == DRDNS_EDNSSEC)
		set_err(err, errlen, "zone %s: %s", s->in->name, msg);
	return ret;
}

static void merge2(const struct rec *a, size_t na, const struct rec *b, size_t nb, struct rec *out)
{
	while (na && nb) {
		if (cmp_rec(b, a) < 0) {
			*out++ = *b++;
			nb--;
		} else {
			*out++ = *a++;
			na--;
		}
	}
	memcpy(out, a, na * sizeof(*a));
	memcpy(out + na, b, nb * sizeof(*b));
}

/* Sort s->recs: a run for every share of the input and one for the records
 * added around it, merged pairwise (stable, like qsort). */
static int sort_recs(struct signer *s)
{
	size_t *b = s->runs;
	size_t nr = s->nruns;
	if (b[nr] != s->nrecs) { /* the records added last */
		qsort(s->recs + b[nr], s->nrecs - b[nr], sizeof(*s->recs), cmp_rec);
		b[++nr] = s->nrecs;
	}
	if (nr <= 1)
		return 0;
	struct rec *tmp = malloc(s->nrecs * sizeof(*tmp));
	if (!tmp)
		return DRDNS_ENOMEM;
	struct rec *src = s->recs, *dst = tmp;
	while (nr > 1) {
		size_t w = 0;
		for (size_t i = 0; i < nr; i += 2) {
			if (i + 1 < nr)
				merge2(src + b[i], b[i + 1] - b[i], src + b[i + 1],
				       b[i + 2] - b[i + 1], dst + b[i]);
			else
				memcpy(dst + b[i], src + b[i], (b[i + 1] - b[i]) * sizeof(*src));
			b[w++] = b[i];
		}
		b[w] = b[nr];
		nr = w;
		struct rec *t = src;
		src = dst;
		dst = t;
	}
	free(dst);
	s->recs = src;
	s->caprecs = s->nrecs;
	return 0;
}

/* ------------------------------------------------------------ type bitmaps */

static size_t put_bitmap(uint8_t *out, const uint16_t *types, size_t n)
{
	size_t o = 0;
	size_t i = 0;
	while (i < n) {
		unsigned win = types[i] >> 8;
		uint8_t bits[32] = {0};
		unsigned maxb = 0;
		for (; i < n && (types[i] >> 8) == win; i++) {
			unsigned b = types[i] & 0xff;
			bits[b / 8] |= (uint8_t)(0x80 >> (b % 8));
			if (b / 8 + 1 > maxb)
				maxb = b / 8 + 1;
		}
		out[o++] = (uint8_t)win;
		out[o++] = (uint8_t)maxb;
		memcpy(out + o, bits, maxb);
		o += maxb;
	}
	return o;
}

static void add_type(uint16_t *types, size_t *n, uint16_t t)
{
	size_t i = *n;
	while (i > 0 && types[i - 1] > t)
		i--;
	if (i > 0 && types[i - 1] == t)
		return;
	memmove(types + i + 1, types + i, (*n - i) * sizeof(*types));
	types[i] = t;
	(*n)++;
}

/* The types of name nm for its NSEC (nsec3 false) or NSEC3 bitmap. */
static size_t name_types(const struct signer *s, const struct name *nm, bool nsec3, uint16_t *types)
{
	size_t n = 0;
	bool any_signed = false;
	for (size_t i = 0; i < nm->nrrsets; i++) {
		const struct rrset *rs = &s->sets[nm->rrset0 + i];
		if ((nm->flags & NAME_CUT) && rs->type != T_NS && rs->type != T_DS)
			continue; /* not authoritative at a cut (RFC 4035 2.3) */
		add_type(types, &n, rs->type);
		any_signed |= rs->sign;
	}
	if (!nsec3) {
		add_type(types, &n, T_NSEC);
		add_type(types, &n, T_RRSIG);
	} else if (any_signed) {
		add_type(types, &n, T_RRSIG);
	}
	return n;
}

/* ------------------------------------------------------------ build */

static int add_dnskeys(struct signer *s)
{
	for (size_t i = 0; i < s->nkeys; i++) {
		struct rec *r = rec_push(s);
		if (!r)
			return DRDNS_ENOMEM;
		r->rr = ldns_rr_clone(s->keys[i].dk->dnskey);
		if (!r->rr)
			return DRDNS_ENOMEM;
		ldns_rr_set_ttl(r->rr, s->soa_ttl);
		int ret = rec_canon(&s->arena, r);
		if (ret)
			return ret;
	}
	return 0;
}

static int add_nsec3param(struct signer *s, uint8_t *scratch)
{
	const struct drdns_sign_params *p = s->p;
	uint8_t rd[5 + 255];
	rd[0] = 1; /* SHA-1 */
	rd[1] = 0; /* flags: always 0 in NSEC3PARAM (RFC 5155 4.1.2) */
	rd[2] = (uint8_t)(p->nsec3_iterations >> 8);
	rd[3] = (uint8_t)p->nsec3_iterations;
	rd[4] = p->nsec3_salt ? p->nsec3_salt_len : 0;
	if (rd[4])
		memcpy(rd + 5, p->nsec3_salt, rd[4]);
	struct rec *r = rec_push(s);
	if (!r)
		return DRDNS_ENOMEM;
	/* TTL: that of the chain (the contract names none; BIND uses 0, ldns the
	 * SOA minimum; it is not a negative-caching record either way). */
	r->rr = rr_from_wire(s->origin, s->origin_len, T_NSEC3PARAM, s->neg_ttl, rd, 5u + rd[4],
	                     scratch);
	if (!r->rr)
		return DRDNS_ENOMEM;
	return rec_canon(&s->arena, r);
}

/* Group sorted records into RRsets and names; find the zone cuts. */
static int group(struct signer *s, char *err, size_t errlen)
{
	/* drop duplicates in canonical form (RFC 4034 6.3) */
	size_t w = 0;
	for (size_t i = 0; i < s->nrecs; i++) {
		if (w > 0 && cmp_rec(&s->recs[w - 1], &s->recs[i]) == 0) {
			ldns_rr_free(s->recs[i].rr);
			continue;
		}
		s->recs[w++] = s->recs[i];
	}
	s->nrecs = w;
	s->sets = calloc(s->nrecs ? s->nrecs : 1, sizeof(*s->sets));
	s->names = calloc(s->nrecs ? s->nrecs : 1, sizeof(*s->names));
	if (!s->sets || !s->names)
		return DRDNS_ENOMEM;
	for (size_t i = 0; i < s->nrecs;) {
		struct rec *r = &s->recs[i];
		if (!(r->sklen >= s->origin_sklen &&
		      memcmp(r->skey, s->origin_skey, s->origin_sklen) == 0)) {
			char *o = ldns_rdf2str(ldns_rr_owner(r->rr));
			set_err(err, errlen, "record owner %s is outside zone %s", o ? o : "?",
			        s->in->name);
			free(o);
			return DRDNS_EDNSSEC;
		}
		struct name *nm = NULL;
		if (s->nnames == 0 ||
		    keycmp(s->names[s->nnames - 1].r0->skey, s->names[s->nnames - 1].r0->sklen,
		           r->skey, r->sklen)) {
			nm = &s->names[s->nnames++];
			nm->r0 = r;
			nm->rrset0 = s->nsets;
			if (r->sklen == s->origin_sklen)
				nm->flags |= NAME_APEX;
		} else {
			nm = &s->names[s->nnames - 1];
		}
		struct rrset *rs = &s->sets[s->nsets++];
		rs->recs = r;
		rs->type = r->type;
		rs->name = (size_t)(nm - s->names);
		rs->ttl = r->ttl;
		rs->labels = rrsig_labels(r->owner);
		rs->is_soa = r->type == T_SOA && (nm->flags & NAME_APEX);
		size_t j = i;
		while (j < s->nrecs && s->recs[j].type == r->type && s->recs[j].sklen == r->sklen &&
		       memcmp(s->recs[j].skey, r->skey, r->sklen) == 0) {
			if (s->recs[j].ttl < rs->ttl)
				rs->ttl = s->recs[j].ttl;
			j++;
		}
		rs->n = j - i;
		nm->nrrsets++;
		i = j;
	}
	/* RFC 2181 5.2: one TTL per RRset; the lowest when they differ. */
	for (size_t k = 0; k < s->nsets; k++)
		for (size_t j = 0; j < s->sets[k].n; j++)
			if (s->sets[k].recs[j].ttl != s->sets[k].ttl) {
				s->sets[k].recs[j].ttl = s->sets[k].ttl;
				ldns_rr_set_ttl(s->sets[k].recs[j].rr, s->sets[k].ttl);
			}
	/* zone cuts: in canonical order a name's descendants follow it */
	const struct name *cut = NULL;
	for (size_t k = 0; k < s->nnames; k++) {
		struct name *nm = &s->names[k];
		if (cut && key_below(nm->r0->skey, nm->r0->sklen, cut->r0->skey, cut->r0->sklen)) {
			nm->flags |= NAME_OCCLUDED;
			continue;
		}
		cut = NULL;
		if (nm->flags & NAME_APEX)
			continue;
		for (size_t i = 0; i < nm->nrrsets; i++) {
			if (s->sets[nm->rrset0 + i].type == T_NS)
				nm->flags |= NAME_CUT;
			if (s->sets[nm->rrset0 + i].type == T_DS)
				nm->flags |= NAME_DS;
		}
		if (nm->flags & NAME_CUT)
			cut = nm;
	}
	for (size_t k = 0; k < s->nnames; k++) {
		const struct name *nm = &s->names[k];
		for (size_t i = 0; i < nm->nrrsets; i++) {
			struct rrset *rs = &s->sets[nm->rrset0 + i];
			if (nm->flags & NAME_OCCLUDED)
				rs->sign = false;
			else if (nm->flags & NAME_CUT)
				rs->sign = rs->type == T_DS;
			else
				rs->sign = true;
		}
	}
	if (s->nnames == 0 || !(s->names[0].flags & NAME_APEX))
		return DRDNS_EDNSSEC;
	return 0;
}

static int alloc_chain(struct signer *s, size_t n)
{
	s->crecs = calloc(n ? n : 1, sizeof(*s->crecs));
	s->csets = calloc(n ? n : 1, sizeof(*s->csets));
	return s->crecs && s->csets ? 0 : DRDNS_ENOMEM;
}

/* Chain record i (crecs[i], csets[i]); its rdata copied into arena a. */
static int chain_set(struct signer *s, struct arena *a, size_t i, const uint8_t *owner, size_t olen,
                     const uint8_t *skey, uint16_t sklen, uint16_t type, const uint8_t *rd,
                     size_t rdlen)
{
	struct rec *r = &s->crecs[i];
	struct rrset *rs = &s->csets[i];
	uint8_t *d = arena_alloc(a, rdlen);
	if (!d)
		return DRDNS_ENOMEM;
	memcpy(d, rd, rdlen);
	r->owner = owner;
	r->olen = (uint16_t)olen;
	r->skey = skey;
	r->sklen = sklen;
	r->rdata = d;
	r->rdlen = (uint16_t)rdlen;
	r->type = type;
	r->ttl = s->neg_ttl;
	/* r->rr is made by the first job that signs it, in parallel */
	rs->recs = r;
	rs->n = 1;
	rs->name = SIZE_MAX;
	rs->ttl = s->neg_ttl;
	rs->type = type;
	rs->labels = rrsig_labels(owner);
	rs->sign = true;
	return 0;
}

static int chain_push(struct signer *s, const uint8_t *owner, size_t olen, const uint8_t *skey,
                      uint16_t sklen, uint16_t type, const uint8_t *rd, size_t rdlen)
{
	int ret = chain_set(s, &s->arena, s->nc, owner, olen, skey, sklen, type, rd, rdlen);
	if (!ret)
		s->nc++;
	return ret;
}

/* A share of the NSEC chain: the records of names idx[lo .. hi). */
static void *nsec_run(void *arg)
{
	struct part *pp = arg;
	struct signer *s = pp->s;
	const size_t *idx = pp->ctx;
	size_t n = s->nc;
	uint16_t *types = malloc(MAX_TYPES * sizeof(*types));
	uint8_t *rd = malloc(255 + MAX_BITMAP);
	if (!types || !rd)
		pp->ret = DRDNS_ENOMEM;
	for (size_t i = pp->lo; i < pp->hi && !pp->ret; i++) {
		const struct name *nm = &s->names[idx[i]];
		const struct rec *next = s->names[idx[(i + 1) % n]].r0;
		memcpy(rd, next->owner, next->olen);
		size_t nt = name_types(s, nm, false, types);
		size_t len = next->olen + put_bitmap(rd + next->olen, types, nt);
		pp->ret = chain_set(s, &pp->arena, i, nm->r0->owner, nm->r0->olen, nm->r0->skey,
		                    nm->r0->sklen, T_NSEC, rd, len);
	}
	free(types);
	free(rd);
	return NULL;
}

static int build_nsec(struct signer *s)
{
	size_t *idx = malloc((s->nnames ? s->nnames : 1) * sizeof(*idx));
	if (!idx)
		return DRDNS_ENOMEM;
	size_t n = 0;
	for (size_t k = 0; k < s->nnames; k++)
		if (!(s->names[k].flags & NAME_OCCLUDED))
			idx[n++] = k;
	int ret = alloc_chain(s, n);
	if (!ret) {
		s->nc = n;
		unsigned nt = 0;
		struct part *pp = run_parts(s, n, 8192, nsec_run, idx, &nt);
		const char *msg = NULL;
		ret = pp ? parts_done(s, pp, nt, &msg) : DRDNS_ENOMEM;
	}
	free(idx);
	return ret;
}

static int cmp_hname_key(const void *a, const void *b)
{
	const struct hname *x = a, *y = b;
	return keycmp(x->skey, x->sklen, y->skey, y->sklen);
}

static int cmp_hname_hash(const void *a, const void *b)
{
	const struct hname *x = a, *y = b;
	return memcmp(x->hash, y->hash, NSEC3_HLEN);
}

static int nsec3_hash(EVP_MD_CTX *ctx, const EVP_MD *sha1, const struct drdns_sign_params *p,
                      const uint8_t *owner, size_t olen, uint8_t *out)
{
	size_t slen = p->nsec3_salt ? p->nsec3_salt_len : 0;
	unsigned int hl = 0;
	for (unsigned it = 0; it <= p->nsec3_iterations; it++) {
		if (!EVP_DigestInit_ex(ctx, sha1, NULL) ||
		    !EVP_DigestUpdate(ctx, it ? out : owner, it ? NSEC3_HLEN : olen) ||
		    (slen && !EVP_DigestUpdate(ctx, p->nsec3_salt, slen)) ||
		    !EVP_DigestFinal_ex(ctx, out, &hl) || hl != NSEC3_HLEN)
			return DRDNS_EDNSSEC;
	}
	return 0;
}

static int build_nsec3(struct signer *s, char *err, size_t errlen)
{
	const struct drdns_sign_params *p = s->p;
	/* chain names: every authoritative name and every delegation (but
	 * unsigned ones with opt-out), then their empty non-terminal ancestors */
	size_t cap = s->nnames + 16, n = 0;
	struct hname *h = malloc(cap * sizeof(*h));
	if (!h)
		return DRDNS_ENOMEM;
	int ret = 0;
	for (size_t k = 0; k < s->nnames; k++) {
		const struct name *nm = &s->names[k];
		if (nm->flags & NAME_OCCLUDED)
			continue;
		/* ancestors strictly between nm and the apex, as candidates */
		const uint8_t *o = nm->r0->owner;
		size_t olen = nm->r0->olen;
		for (size_t off = o[0] + 1u; olen - off > s->origin_len; off += o[off] + 1u) {
			if (n == cap) {
				cap *= 2;
				struct hname *g = realloc(h, cap * sizeof(*h));
				if (!g) {
					free(h);
					return DRDNS_ENOMEM;
				}
				h = g;
			}
			struct hname *e = &h[n++];
			e->owner = o + off;
			e->olen = (uint16_t)(olen - off);
			e->skey = make_skey(&s->arena, e->owner, e->olen, &e->sklen);
			e->name = SIZE_MAX;
			if (!e->skey) {
				free(h);
				return DRDNS_ENOMEM;
			}
		}
		if ((nm->flags & NAME_CUT) && !(nm->flags & NAME_DS) && p->nsec3_opt_out)
			continue;
		if (n == cap) {
			cap *= 2;
			struct hname *g = realloc(h, cap * sizeof(*h));
			if (!g) {
				free(h);
				return DRDNS_ENOMEM;
			}
			h = g;
		}
		h[n++] = (struct hname){.owner = nm->r0->owner,
		                        .olen = nm->r0->olen,
		                        .skey = nm->r0->skey,
		                        .sklen = nm->r0->sklen,
		                        .name = k};
	}
	/* dedupe by name; a name with data wins over an ancestor candidate, and
	 * an ancestor that has data (or is an opt-out delegation) is no ENT */
	qsort(h, n, sizeof(*h), cmp_hname_key);
	size_t w = 0;
	for (size_t i = 0; i < n;) {
		size_t j = i, best = i;
		while (j < n && cmp_hname_key(&h[i], &h[j]) == 0) {
			if (h[j].name != SIZE_MAX)
				best = j;
			j++;
		}
		struct hname e = h[best];
		bool keep = true;
		if (e.name == SIZE_MAX) {
			/* an ancestor: an ENT only if no record owns the name */
			size_t lo = 0, hi = s->nnames;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				const struct rec *r = s->names[mid].r0;
				if (keycmp(r->skey, r->sklen, e.skey, e.sklen) < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < s->nnames && keycmp(s->names[lo].r0->skey, s->names[lo].r0->sklen,
			                             e.skey, e.sklen) == 0)
				keep = false; /* owns data: an opt-out delegation */
		}
		if (keep)
			h[w++] = e;
		i = j;
	}
	n = w;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_MD *sha1 = EVP_MD_fetch(NULL, "SHA1", NULL);
	if (!ctx || !sha1)
		ret = DRDNS_ENOMEM;
	for (size_t i = 0; i < n && !ret; i++)
		ret = nsec3_hash(ctx, sha1, p, h[i].owner, h[i].olen, h[i].hash);
	EVP_MD_CTX_free(ctx);
	EVP_MD_free(sha1);
	if (ret) {
		set_err(err, errlen, "NSEC3 hashing failed");
		free(h);
		return ret;
	}
	qsort(h, n, sizeof(*h), cmp_hname_hash);
	for (size_t i = 1; i < n; i++)
		if (memcmp(h[i - 1].hash, h[i].hash, NSEC3_HLEN) == 0) {
			set_err(err, errlen, "NSEC3 hash collision; choose another salt");
			free(h);
			return DRDNS_EDNSSEC;
		}
	ret = alloc_chain(s, n);
	static const char b32[] = "0123456789abcdefghijklmnopqrstuv";
	uint16_t *types = malloc(MAX_TYPES * sizeof(*types));
	uint8_t *rd = malloc(6 + 255 + 1 + NSEC3_HLEN + MAX_BITMAP);
	if (!types || !rd)
		ret = DRDNS_ENOMEM;
	size_t slen = p->nsec3_salt ? p->nsec3_salt_len : 0;
	for (size_t i = 0; i < n && !ret; i++) {
		size_t olen = 1u + 32 + s->origin_len;
		uint8_t *owner = arena_alloc(&s->arena, olen);
		if (!owner) {
			ret = DRDNS_ENOMEM;
			break;
		}
		owner[0] = 32;
		for (size_t b = 0; b < 32; b++) { /* base32hex, 5 bits at a time */
			size_t bit = b * 5, byte = bit / 8, sh = bit % 8;
			unsigned v = (unsigned)h[i].hash[byte] << 8;
			if (byte + 1 < NSEC3_HLEN)
				v |= h[i].hash[byte + 1];
			owner[1 + b] = (uint8_t)b32[(v >> (11 - sh)) & 31];
		}
		memcpy(owner + 33, s->origin, s->origin_len);
		uint16_t sklen = 0;
		uint8_t *skey = make_skey(&s->arena, owner, olen, &sklen);
		if (!skey) {
			ret = DRDNS_ENOMEM;
			break;
		}
		size_t o = 0;
		rd[o++] = 1;
		rd[o++] = p->nsec3_opt_out ? 1 : 0;
		rd[o++] = (uint8_t)(p->nsec3_iterations >> 8);
		rd[o++] = (uint8_t)p->nsec3_iterations;
		rd[o++] = (uint8_t)slen;
		if (slen)
			memcpy(rd + o, p->nsec3_salt, slen);
		o += slen;
		rd[o++] = NSEC3_HLEN;
		memcpy(rd + o, h[(i + 1) % n].hash, NSEC3_HLEN);
		o += NSEC3_HLEN;
		size_t nt = 0;
		if (h[i].name != SIZE_MAX)
			nt = name_types(s, &s->names[h[i].name], true, types);
		o += put_bitmap(rd + o, types, nt);
		ret = chain_push(s, owner, olen, skey, sklen, T_NSEC3, rd, o);
	}
	/* the hashed owners are all one label below the apex and base32hex
	 * keeps byte order, so hash order is canonical order: the chain is ready
	 * for the output merge */
	free(types);
	free(rd);
	free(h);
	return ret;
}

/* ------------------------------------------------------------ keys */

static int setup_keys(struct signer *s, const struct drdns_keyset *ks, char *err, size_t errlen)
{
	const struct drdns_zone *in = s->in;
	if (!ks || ks->n == 0 || !ks->keys) {
		set_err(err, errlen, "zone %s: no DNSSEC key to sign with", in->name);
		return DRDNS_EDNSSEC;
	}
	if (!ks->zone || strcasecmp(ks->zone, in->name) != 0) {
		set_err(err, errlen, "zone %s: the keys are for zone %s", in->name,
		        ks->zone ? ks->zone : "(none)");
		return DRDNS_EDNSSEC;
	}
	s->keys = calloc(ks->n, sizeof(*s->keys));
	if (!s->keys)
		return DRDNS_ENOMEM;
	s->nkeys = ks->n;
	for (size_t i = 0; i < ks->n; i++) {
		const struct drdns_dnskey *dk = &ks->keys[i];
		struct skey *k = &s->keys[i];
		const char *path = dk->path ? dk->path : "(key)";
		k->dk = dk;
		if (!dk->key || !dk->dnskey ||
		    ldns_rr_get_type(dk->dnskey) != LDNS_RR_TYPE_DNSKEY ||
		    ldns_rr_rd_count(dk->dnskey) < 4) {
			set_err(err, errlen, "%s: incomplete key", path);
			return DRDNS_EDNSSEC;
		}
		if (ldns_dname_compare(ldns_rr_owner(dk->dnskey), in->origin) != 0) {
			char *o = ldns_rdf2str(ldns_rr_owner(dk->dnskey));
			set_err(err, errlen, "%s: key %u is for zone %s, not %s", path, dk->tag,
			        o ? o : "?", in->name);
			free(o);
			return DRDNS_EDNSSEC;
		}
		uint16_t tag = ldns_calc_keytag(dk->dnskey);
		uint8_t alg = ldns_rdf2native_int8(ldns_rr_rdf(dk->dnskey, 2));
		if (tag != dk->tag || alg != dk->algorithm) {
			set_err(err, errlen,
			        "%s: key tag/algorithm %u/%u do not match its DNSKEY (%u/%u)", path,
			        dk->tag, dk->algorithm, tag, alg);
			return DRDNS_EDNSSEC;
		}
		k->tag = tag;
		k->alg = alg;
		k->pkey = ldns_key_evp_key(dk->key);
		int id = k->pkey ? EVP_PKEY_get_base_id(k->pkey) : EVP_PKEY_NONE;
		if (alg == LDNS_RSASHA256 && id == EVP_PKEY_RSA)
			k->kind = KIND_RSA;
		else if (alg == LDNS_ECDSAP256SHA256 && id == EVP_PKEY_EC &&
		         EVP_PKEY_get_bits(k->pkey) == 256)
			k->kind = KIND_EC;
		else if (alg == LDNS_ED25519 && id == EVP_PKEY_ED25519)
			k->kind = KIND_ED;
		else {
			set_err(err, errlen, "%s: unsupported algorithm %u or key type", path, alg);
			return DRDNS_EDNSSEC;
		}
		int sz = EVP_PKEY_get_size(k->pkey);
		k->maxsig = sz > 0 ? (size_t)sz : 0;
		if (k->maxsig == 0 || k->maxsig > 1024) {
			set_err(err, errlen, "%s: unusable key size", path);
			return DRDNS_EDNSSEC;
		}
	}
	/* Roles per algorithm (every RRset must be signed by every algorithm of
	 * the DNSKEY RRset, RFC 4035 2.2): KSKs sign the DNSKEY RRset, ZSKs the
	 * rest; an algorithm with only one kind signs everything with it (CSK). */
	for (size_t i = 0; i < s->nkeys; i++) {
		bool has_ksk = false, has_zsk = false;
		for (size_t j = 0; j < s->nkeys; j++) {
			if (s->keys[j].alg != s->keys[i].alg)
				continue;
			has_ksk |= s->keys[j].dk->ksk;
			has_zsk |= !s->keys[j].dk->ksk;
		}
		s->keys[i].sign_dnskey = s->keys[i].dk->ksk || !has_ksk;
		s->keys[i].sign_other = !s->keys[i].dk->ksk || !has_zsk;
	}
	return 0;
}

/* ------------------------------------------------------------ signing */

struct worker {
	struct signer *s;
	EVP_MD_CTX *md;      /* SHA-256 for RSA/ECDSA, reused */
	EVP_MD_CTX *ed;      /* EdDSA signing, reset per signature */
	EVP_PKEY_CTX **pctx; /* per key: sign-initialised (RSA, ECDSA) */
	EVP_MD *sha256;
	uint8_t *scratch; /* for NSEC/NSEC3 records' wire form */
	uint8_t *buf;
	size_t cap;
	pthread_t tid;
	bool started;
};

static void worker_fail(struct signer *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void worker_fail(struct signer *s, const char *fmt, ...)
{
	pthread_mutex_lock(&s->err_lock);
	if (!atomic_load(&s->failed) && s->err && s->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(s->err, s->errlen, fmt, ap);
		va_end(ap);
	}
	atomic_store(&s->failed, 1);
	pthread_mutex_unlock(&s->err_lock);
}

static int worker_init(struct worker *w, struct signer *s)
{
	memset(w, 0, sizeof(*w));
	w->s = s;
	w->md = EVP_MD_CTX_new();
	w->ed = EVP_MD_CTX_new();
	w->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	w->pctx = calloc(s->nkeys, sizeof(*w->pctx));
	w->scratch = malloc(65536 + 512);
	if (!w->md || !w->ed || !w->sha256 || !w->pctx || !w->scratch)
		return DRDNS_ENOMEM;
	for (size_t i = 0; i < s->nkeys; i++) {
		const struct skey *k = &s->keys[i];
		if (k->kind == KIND_ED)
			continue;
		w->pctx[i] = EVP_PKEY_CTX_new(k->pkey, NULL);
		if (!w->pctx[i] || EVP_PKEY_sign_init(w->pctx[i]) <= 0 ||
		    (k->kind == KIND_RSA &&
		     EVP_PKEY_CTX_set_rsa_padding(w->pctx[i], RSA_PKCS1_PADDING) <= 0) ||
		    EVP_PKEY_CTX_set_signature_md(w->pctx[i], w->sha256) <= 0)
			return DRDNS_EDNSSEC;
	}
	return 0;
}

static void worker_free(struct worker *w)
{
	EVP_MD_CTX_free(w->md);
	EVP_MD_CTX_free(w->ed);
	if (w->pctx)
		for (size_t i = 0; i < w->s->nkeys; i++)
			EVP_PKEY_CTX_free(w->pctx[i]);
	free(w->pctx);
	EVP_MD_free(w->sha256);
	free(w->scratch);
	free(w->buf);
}

static uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

/* One DER INTEGER at *p (end e) into out (32 bytes, left-padded). */
static bool der_int(const uint8_t **p, const uint8_t *e, uint8_t *out)
{
	const uint8_t *q = *p;
	if (e - q < 2 || q[0] != 0x02)
		return false;
	size_t len = q[1];
	q += 2;
	if (len == 0 || (size_t)(e - q) < len)
		return false;
	const uint8_t *v = q;
	size_t vl = len;
	while (vl > 0 && v[0] == 0) {
		v++;
		vl--;
	}
	if (vl > 32)
		return false;
	memset(out, 0, 32 - vl);
	memcpy(out + 32 - vl, v, vl);
	*p = q + len;
	return true;
}

/* ECDSA-Sig-Value DER -> r || s, 64 bytes (RFC 6605 4). */
static bool ecdsa_der_to_rs(const uint8_t *der, size_t len, uint8_t *out)
{
	const uint8_t *p = der, *e = der + len;
	if (len < 8 || p[0] != 0x30)
		return false;
	size_t sl;
	if (p[1] < 0x80) {
		sl = p[1];
		p += 2;
	} else if (p[1] == 0x81 && len > 3) {
		sl = p[2];
		p += 3;
	} else {
		return false;
	}
	if ((size_t)(e - p) != sl)
		return false;
	return der_int(&p, e, out) && der_int(&p, e, out + 32) && p == e;
}

/* Deterministic jitter in [0, max] for (owner, type). */
static uint32_t jitter_of(const uint8_t *owner, size_t olen, uint16_t type, uint32_t max)
{
	if (max == 0)
		return 0;
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a, then a splitmix64 finaliser */
	for (size_t i = 0; i < olen; i++)
		h = (h ^ owner[i]) * 0x100000001b3ULL;
	h = (h ^ (type >> 8)) * 0x100000001b3ULL;
	h = (h ^ (type & 0xff)) * 0x100000001b3ULL;
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return (uint32_t)(h % ((uint64_t)max + 1));
}

/* The RRSIG record, built field by field (cheaper than parsing its wire form:
 * the rdata array is allocated once). */
static ldns_rr *make_rrsig(const struct signer *s, const struct rrset *rs, const struct skey *k,
                           uint32_t expiration, const uint8_t *sig, size_t siglen)
{
	ldns_rr *rr = ldns_rr_new_frm_type(LDNS_RR_TYPE_RRSIG);
	if (!rr)
		return NULL;
	ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
	ldns_rr_set_ttl(rr, rs->ttl);
	ldns_rdf *f[10] = {
	    ldns_rdf_new_frm_data(LDNS_RDF_TYPE_DNAME, rs->recs->olen, rs->recs->owner),
	    ldns_native2rdf_int16(LDNS_RDF_TYPE_TYPE, rs->type),
	    ldns_native2rdf_int8(LDNS_RDF_TYPE_ALG, k->alg),
	    ldns_native2rdf_int8(LDNS_RDF_TYPE_INT8, rs->labels),
	    ldns_native2rdf_int32(LDNS_RDF_TYPE_INT32, rs->ttl),
	    ldns_native2rdf_int32(LDNS_RDF_TYPE_TIME, expiration),
	    ldns_native2rdf_int32(LDNS_RDF_TYPE_TIME, s->inception),
	    ldns_native2rdf_int16(LDNS_RDF_TYPE_INT16, k->tag),
	    ldns_rdf_new_frm_data(LDNS_RDF_TYPE_DNAME, s->origin_len, s->origin),
	    ldns_rdf_new_frm_data(LDNS_RDF_TYPE_B64, siglen, sig),
	};
	bool ok = ldns_rr_rd_count(rr) == 9;
	for (size_t i = 0; i < 10; i++)
		ok &= f[i] != NULL;
	if (!ok) {
		for (size_t i = 0; i < 10; i++)
			ldns_rdf_deep_free(f[i]);
		ldns_rr_free(rr);
		return NULL;
	}
	ldns_rr_set_owner(rr, f[0]);
	for (size_t i = 0; i < 9; i++)
		ldns_rr_set_rdf(rr, f[i + 1], i);
	return rr;
}

static bool sign_job(struct worker *w, struct job *j)
{
	struct signer *s = w->s;
	const struct rrset *rs = j->set;
	const struct skey *k = j->key;
	const struct rec *r0 = rs->recs;
	/* the signed data (RFC 4034 3.1.8.1): the RRSIG rdata without the
	 * signature, then every RR of the set in canonical form and order; the
	 * signature goes behind it */
	size_t need = 18 + s->origin_len + k->maxsig;
	for (size_t i = 0; i < rs->n; i++)
		need += r0->olen + 10u + rs->recs[i].rdlen;
	if (need > w->cap) {
		uint8_t *g = realloc(w->buf, need);
		if (!g) {
			worker_fail(s, "out of memory");
			return false;
		}
		w->buf = g;
		w->cap = need;
	}
	uint8_t *data = w->buf, *p = data;
	p = put16(p, rs->type);
	*p++ = k->alg;
	*p++ = rs->labels;
	p = put32(p, rs->ttl);
	p = put32(p, j->expiration);
	p = put32(p, s->inception);
	p = put16(p, k->tag);
	memcpy(p, s->origin, s->origin_len);
	p += s->origin_len;
	for (size_t i = 0; i < rs->n; i++) {
		const struct rec *r = &rs->recs[i];
		memcpy(p, r0->owner, r0->olen);
		p += r0->olen;
		p = put16(p, rs->type);
		p = put16(p, CLASS_IN);
		p = put32(p, rs->ttl);
		p = put16(p, r->rdlen);
		memcpy(p, r->rdata, r->rdlen);
		p += r->rdlen;
	}
	size_t dlen = (size_t)(p - data);
	uint8_t *sig = p;
	size_t siglen = 0;
	if (k->kind == KIND_ED) {
		siglen = k->maxsig;
		if (!EVP_MD_CTX_reset(w->ed) ||
		    EVP_DigestSignInit(w->ed, NULL, NULL, NULL, k->pkey) <= 0 ||
		    EVP_DigestSign(w->ed, sig, &siglen, data, dlen) <= 0) {
			worker_fail(s, "%s: EdDSA signing failed",
			            k->dk->path ? k->dk->path : "key");
			return false;
		}
	} else {
		uint8_t dig[32], der[1024];
		unsigned int dl = 0;
		size_t kidx = (size_t)(k - s->keys);
		size_t outl = k->kind == KIND_EC ? sizeof(der) : k->maxsig;
		if (!EVP_DigestInit_ex(w->md, w->sha256, NULL) ||
		    !EVP_DigestUpdate(w->md, data, dlen) || !EVP_DigestFinal_ex(w->md, dig, &dl) ||
		    EVP_PKEY_sign(w->pctx[kidx], k->kind == KIND_EC ? der : sig, &outl, dig, dl) <=
		        0) {
			worker_fail(s, "%s: signing failed", k->dk->path ? k->dk->path : "key");
			return false;
		}
		if (k->kind == KIND_EC) {
			if (!ecdsa_der_to_rs(der, outl, sig)) {
				worker_fail(s, "%s: malformed ECDSA signature",
				            k->dk->path ? k->dk->path : "key");
				return false;
			}
			siglen = 64;
		} else {
			siglen = outl;
		}
	}
	j->sig = make_rrsig(s, rs, k, j->expiration, sig, siglen);
	/* an NSEC/NSEC3 record is built by the first job of its RRset */
	struct rec *cr = rs->name == SIZE_MAX && (size_t)(j - s->jobs) == rs->job0
	                     ? &s->crecs[rs - s->csets]
	                     : NULL;
	if (cr && !cr->rr)
		cr->rr = rr_from_wire(cr->owner, cr->olen, cr->type, cr->ttl, cr->rdata, cr->rdlen,
		                      w->scratch);
	if (!j->sig || (cr && !cr->rr)) {
		worker_fail(s, "out of memory");
		return false;
	}
	return true;
}

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	struct signer *s = w->s;
	for (;;) {
		size_t i = atomic_fetch_add(&s->next_job, JOB_CHUNK);
		if (i >= s->njobs)
			break;
		size_t e = i + JOB_CHUNK < s->njobs ? i + JOB_CHUNK : s->njobs;
		for (; i < e; i++) {
			if (atomic_load_explicit(&s->failed, memory_order_relaxed))
				return NULL;
			if (!sign_job(w, &s->jobs[i]))
				return NULL;
		}
	}
	return NULL;
}

static int make_jobs(struct signer *s, uint32_t *earliest)
{
	size_t cap = (s->nsets + s->nc) * s->nkeys + 1;
	s->jobs = calloc(cap, sizeof(*s->jobs));
	if (!s->jobs)
		return DRDNS_ENOMEM;
	const struct drdns_sign_params *p = s->p;
	uint64_t min_exp = UINT64_MAX;
	for (int pass = 0; pass < 2; pass++) {
		struct rrset *sets = pass ? s->csets : s->sets;
		size_t n = pass ? s->nc : s->nsets;
		for (size_t i = 0; i < n; i++) {
			struct rrset *rs = &sets[i];
			rs->job0 = s->njobs;
			rs->njobs = 0;
			if (!rs->sign)
				continue;
			uint64_t exp =
			    p->now + p->validity -
			    jitter_of(rs->recs->owner, rs->recs->olen, rs->type, p->jitter);
			if (exp < min_exp)
				min_exp = exp;
			for (size_t k = 0; k < s->nkeys; k++) {
				const struct skey *key = &s->keys[k];
				if (!(rs->type == T_DNSKEY ? key->sign_dnskey : key->sign_other))
					continue;
				s->jobs[s->njobs++] = (struct job){
				    .set = rs, .key = key, .expiration = (uint32_t)exp};
				rs->njobs++;
			}
		}
	}
	*earliest = min_exp == UINT64_MAX ? 0 : (uint32_t)min_exp;
	return 0;
}

static unsigned thread_count(const struct signer *s)
{
	long n = s->p->threads ? (long)s->p->threads : sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > MAX_THREADS)
		n = MAX_THREADS;
	size_t chunks = (s->njobs + JOB_CHUNK - 1) / JOB_CHUNK;
	if ((size_t)n > chunks)
		n = chunks ? (long)chunks : 1;
	return (unsigned)n;
}

static int run_jobs(struct signer *s)
{
	unsigned nt = thread_count(s);
	struct worker *w = calloc(nt, sizeof(*w));
	if (!w)
		return DRDNS_ENOMEM;
	int ret = 0;
	/* contexts are set up here, serially: OpenSSL may export a legacy key to
	 * its provider on first use, which should not race */
	unsigned ready = 0;
	for (; ready < nt && !ret; ready++)
		ret = worker_init(&w[ready], s);
	if (!ret) {
		atomic_store(&s->next_job, 0);
		for (unsigned i = 1; i < nt; i++)
			w[i].started = pthread_create(&w[i].tid, NULL, worker_run, &w[i]) == 0;
		worker_run(&w[0]);
		for (unsigned i = 1; i < nt; i++)
			if (w[i].started)
				pthread_join(w[i].tid, NULL);
		/* a worker that could not start: its share was taken by the others */
		if (atomic_load(&s->failed))
			ret = DRDNS_EDNSSEC;
	} else if (ret == DRDNS_EDNSSEC) {
		set_err(s->err, s->errlen, "cannot set up signing contexts");
	}
	for (unsigned i = 0; i < ready; i++)
		worker_free(&w[i]);
	free(w);
	return ret;
}

/* Check one signature of each key with ldns: a private key that does not match
 * its DNSKEY must not go out as a bogus zone. */
static int self_check(struct signer *s)
{
	ldns_rr_list *keys = ldns_rr_list_new();
	ldns_rr_list *set = ldns_rr_list_new();
	int ret = keys && set ? 0 : DRDNS_ENOMEM;
	for (size_t k = 0; k < s->nkeys && !ret; k++) {
		const struct job *j = NULL;
		for (size_t i = 0; i < s->njobs && !j; i++)
			if (s->jobs[i].key == &s->keys[k])
				j = &s->jobs[i];
		if (!j)
			continue;
		ldns_rr_list_set_rr_count(keys, 0);
		ldns_rr_list_set_rr_count(set, 0);
		ldns_rr_list_push_rr(keys, s->keys[k].dk->dnskey);
		for (size_t i = 0; i < j->set->n; i++)
			ldns_rr_list_push_rr(set, j->set->recs[i].rr);
		ldns_status st = ldns_verify_rrsig_keylist_notime(set, j->sig, keys, NULL);
		if (st != LDNS_STATUS_OK) {
			set_err(s->err, s->errlen,
			        "%s: a signature made with key %u does not verify (%s): does the "
			        "private key match the DNSKEY?",
			        s->keys[k].dk->path ? s->keys[k].dk->path : "key", s->keys[k].tag,
			        ldns_get_errorstr_by_id(st));
			ret = DRDNS_EDNSSEC;
		}
	}
	if (keys)
		ldns_rr_list_set_rr_count(keys, 0);
	if (set)
		ldns_rr_list_set_rr_count(set, 0);
	ldns_rr_list_free(keys);
	ldns_rr_list_free(set);
	return ret;
}

/* Move records and signatures into the output zone, in canonical order. */
static int assemble(struct signer *s, struct drdns_zone *z)
{
	z->rrs = ldns_rr_list_new();
	if (!z->rrs)
		return DRDNS_ENOMEM;
	size_t ci = 0;
	for (size_t si = 0; si <= s->nsets; si++) {
		const struct rec *r = si < s->nsets ? s->sets[si].recs : NULL;
		/* chain records that sort before (or at) this RRset's owner go after
		 * the records of their own name */
		while (ci < s->nc && (!r || keycmp(s->crecs[ci].skey, s->crecs[ci].sklen, r->skey,
		                                   r->sklen) < 0)) {
			const struct rrset *cs = &s->csets[ci];
			if (!ldns_rr_list_push_rr(z->rrs, s->crecs[ci].rr))
				return DRDNS_ENOMEM;
			s->crecs[ci].rr = NULL;
			for (size_t j = 0; j < cs->njobs; j++) {
				if (!ldns_rr_list_push_rr(z->rrs, s->jobs[cs->job0 + j].sig))
					return DRDNS_ENOMEM;
				s->jobs[cs->job0 + j].sig = NULL;
			}
			ci++;
		}
		if (!r)
			break;
		struct rrset *rs = &s->sets[si];
		for (size_t i = 0; i < rs->n; i++) {
			if (rs->is_soa && i == 0 && !z->soa) {
				z->soa = rs->recs[i].rr;
			} else if (!ldns_rr_list_push_rr(z->rrs, rs->recs[i].rr)) {
				return DRDNS_ENOMEM;
			}
			rs->recs[i].rr = NULL;
		}
		for (size_t j = 0; j < rs->njobs; j++) {
			if (!ldns_rr_list_push_rr(z->rrs, s->jobs[rs->job0 + j].sig))
				return DRDNS_ENOMEM;
			s->jobs[rs->job0 + j].sig = NULL;
		}
	}
	return 0;
}

static void signer_free(struct signer *s)
{
	for (size_t i = 0; i < s->nrecs; i++)
		ldns_rr_free(s->recs[i].rr);
	for (size_t i = 0; i < s->nc; i++)
		ldns_rr_free(s->crecs[i].rr);
	for (size_t i = 0; i < s->njobs; i++)
		ldns_rr_free(s->jobs[i].sig);
	free(s->recs);
	free(s->sets);
	free(s->names);
	free(s->crecs);
	free(s->csets);
	free(s->jobs);
	free(s->keys);
	arena_free(&s->arena);
	pthread_mutex_destroy(&s->err_lock);
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int drdns_zone_sign(const struct drdns_zone *in, const struct drdns_keyset *ks,
                    const struct drdns_sign_params *params, struct drdns_zone **out,
                    struct drdns_sign_stats *stats, char *err, size_t errlen)
{
	double t0 = mono_now();
	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!in || !in->soa || !in->origin || !in->name || !params) {
		set_err(err, errlen, "nothing to sign: no zone, SOA or parameters");
		return DRDNS_EDNSSEC;
	}
	if (params->validity == 0 || params->jitter >= params->validity) {
		set_err(err, errlen,
		        "zone %s: invalid signature validity %u s with jitter %u s (the jitter "
		        "must be below the validity)",
		        in->name, params->validity, params->jitter);
		return DRDNS_EDNSSEC;
	}
	if (params->nsec3 && params->nsec3_salt_len && !params->nsec3_salt) {
		set_err(err, errlen, "zone %s: NSEC3 salt length without salt", in->name);
		return DRDNS_EDNSSEC;
	}
	struct signer s = {.in = in, .p = params, .err = err, .errlen = errlen};
	pthread_mutex_init(&s.err_lock, NULL);
	uint8_t *scratch = malloc(65536 + 512);
	int ret = scratch ? setup_keys(&s, ks, err, errlen) : DRDNS_ENOMEM;
	uint32_t earliest = 0;
	struct drdns_zone *z = NULL;

	if (!ret) {
		/* room for the SOA, the input, the DNSKEYs and NSEC3PARAM */
		size_t cap = (in->rrs ? ldns_rr_list_rr_count(in->rrs) : 0) + s.nkeys + 2;
		s.recs = malloc(cap * sizeof(*s.recs));
		s.caprecs = s.recs ? cap : 0;
		ret = s.recs ? 0 : DRDNS_ENOMEM;
	}
	if (!ret) {
		/* the SOA first: origin and TTLs come from it */
		const ldns_rdf *min = ldns_rr_rdf(in->soa, 6);
		s.soa_ttl = ldns_rr_ttl(in->soa);
		s.neg_ttl = s.soa_ttl;
		if (min && ldns_rdf_size(min) == 4 && ldns_rdf2native_int32(min) < s.neg_ttl)
			s.neg_ttl = ldns_rdf2native_int32(min);
		s.inception = (uint32_t)(params->now - params->inception_offset);
		struct rec *r = rec_push(&s);
		ret = !r ? DRDNS_ENOMEM : !(r->rr = ldns_rr_clone(in->soa)) ? DRDNS_ENOMEM : 0;
		if (!ret)
			ret = rec_canon(&s.arena, r);
		if (!ret && (ldns_rr_get_type(r->rr) != LDNS_RR_TYPE_SOA ||
		             ldns_dname_compare(ldns_rr_owner(r->rr), in->origin) != 0)) {
			set_err(err, errlen, "zone %s: the SOA is not at the apex", in->name);
			ret = DRDNS_EDNSSEC;
		}
		if (!ret) {
			s.runs[0] = 0;
			s.runs[1] = 1;
			s.nruns = 1;
			s.origin = r->owner;
			s.origin_len = r->olen;
			s.origin_skey = r->skey;
			s.origin_sklen = r->sklen;
		}
	}
	if (!ret)
		ret = take_input(&s, err, errlen);
	if (!ret)
		ret = add_dnskeys(&s);
	if (!ret && params->nsec3)
		ret = add_nsec3param(&s, scratch);
	if (!ret)
		ret = sort_recs(&s);
	if (!ret)
		ret = group(&s, err, errlen);
	if (!ret)
		ret = params->nsec3 ? build_nsec3(&s, err, errlen) : build_nsec(&s);
	if (!ret)
		ret = make_jobs(&s, &earliest);
	if (!ret)
		ret = run_jobs(&s);
	for (size_t i = 0; i < s.nc && !ret; i++) /* unsigned ones (none expected) */
		if (!s.crecs[i].rr &&
		    !(s.crecs[i].rr = rr_from_wire(s.crecs[i].owner, s.crecs[i].olen,
		                                   s.crecs[i].type, s.crecs[i].ttl,
		                                   s.crecs[i].rdata, s.crecs[i].rdlen, scratch)))
			ret = DRDNS_ENOMEM;
	if (!ret)
		ret = self_check(&s);
	if (!ret) {
		z = calloc(1, sizeof(*z));
		if (!z || !(z->name = strdup(in->name)) ||
		    !(z->origin = ldns_rdf_clone(in->origin)))
			ret = DRDNS_ENOMEM;
	}
	if (!ret)
		ret = assemble(&s, z);
	if (!ret && !z->soa)
		ret = DRDNS_EDNSSEC;
	if (ret == DRDNS_ENOMEM)
		set_err(err, errlen, "out of memory");
	else if (ret && err && errlen && !err[0])
		set_err(err, errlen, "zone %s: signing failed", in->name);

	if (!ret && stats) {
		size_t signed_sets = 0;
		for (size_t i = 0; i < s.nsets; i++)
			signed_sets += s.sets[i].njobs > 0;
		for (size_t i = 0; i < s.nc; i++)
			signed_sets += s.csets[i].njobs > 0;
		stats->rrsets_signed = signed_sets;
		stats->signatures = s.njobs;
		stats->nsec_records = s.nc;
		stats->earliest_expiration = earliest;
	}
	signer_free(&s);
	free(scratch);
	if (ret) {
		drdns_zone_free(z);
		return ret;
	}
	if (stats)
		stats->seconds = mono_now() - t0;
	*out = z;
	return 0;
}
