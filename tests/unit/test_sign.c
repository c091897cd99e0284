/*
 * Unit tests for the signing part of include/drdns/dnssec.h (drdns_zone_sign).
 *
 * Keys are generated afresh with ldns for every test (no dependency on the
 * key loader); zones are written as master files and loaded with
 * drdns_zone_load, as the daemon does.  Every signed zone is checked three
 * ways: by ldns-verify-zone (with the KSKs as trust anchors) and BIND's
 * dnssec-verify, run on drdns_zone_to_text's output, and in-process with
 * ldns_verify_rrsig_keylist on a few RRsets; structural properties (what is
 * and is not signed, the NSEC/NSEC3 bitmaps, opt-out, jitter) are checked on
 * the records themselves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include <ldns/ldns.h>

#include "drdns/diag.h"
#include "drdns/dnssec.h"
#include "drdns/error.h"
#include "drdns/zone.h"

#define ZONE "example.test."

/* A zone with a bit of everything: apex data, an in-zone NS target spelled in
 * upper case (canonical form lowercases it), a wildcard below an empty
 * non-terminal, a deeper empty non-terminal, a secure delegation with glue,
 * occluded data and an out-of-zone NS, an insecure delegation with glue. */
static const char *zone_text =
    "$TTL 3600\n"
    "@ IN SOA ns1.example.test. hostmaster.example.test. 2024010101 7200 3600 1209600 300\n"
    "@ NS ns1.example.test.\n"
    "@ NS NS2.Example.Test.\n"
    "@ A 192.0.2.1\n"
    "@ MX 10 mail.example.test.\n"
    "ns1 A 192.0.2.53\n"
    "ns2 A 192.0.2.54\n"
    "ns2 AAAA 2001:db8::54\n"
    "www 600 A 192.0.2.80\n"
    "www 600 A 192.0.2.81\n"
    "mail A 192.0.2.25\n"
    "*.wild TXT \"wildcard\"\n"
    "host.b.ent A 192.0.2.90\n"
    "sub NS ns.sub.example.test.\n"
    "sub NS ns.other.net.\n"
    "sub DS 12345 13 2 "
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
    "ns.sub A 192.0.2.100\n"
    "deep.ns.sub A 192.0.2.101\n"
    "insecure NS ns.insecure.example.test.\n"
    "ns.insecure A 192.0.2.110\n"
    "txt TXT \"hello world\"\n"
    /* records the signer must drop (the DR file may be a signed copy) */
    "@ NSEC www.example.test. A NS SOA MX RRSIG NSEC DNSKEY\n"
    "@ NSEC3PARAM 1 0 0 -\n";

/* Authoritative names of zone_text (those that get an NSEC), and the empty
 * non-terminals (that also get an NSEC3). */
static const char *auth_names[] = {
    "example.test.",
    "ns1.example.test.",
    "ns2.example.test.",
    "www.example.test.",
    "mail.example.test.",
    "*.wild.example.test.",
    "host.b.ent.example.test.",
    "sub.example.test.",
    "insecure.example.test.",
    "txt.example.test.",
};
static const char *ent_names[] = {"wild.example.test.", "ent.example.test.", "b.ent.example.test."};
static const char *glue_names[] = {"ns.sub.example.test.", "deep.ns.sub.example.test.",
                                   "ns.insecure.example.test."};

/* ---- keys -------------------------------------------------------------- */

static void make_key(struct drdns_dnskey *dk, const char *zone, ldns_signing_algorithm alg,
                     bool ksk)
{
	uint16_t bits = alg == LDNS_SIGN_RSASHA256 ? 2048 : 256;
	ldns_key *k = ldns_key_new_frm_algorithm(alg, bits);
	assert_non_null(k);
	ldns_key_set_flags(k, ksk ? 257 : 256);
	ldns_key_set_pubkey_owner(k, ldns_dname_new_frm_str(zone));
	ldns_rr *rr = ldns_key2rr(k);
	assert_non_null(rr);
	ldns_key_set_keytag(k, ldns_calc_keytag(rr));
	memset(dk, 0, sizeof(*dk));
	dk->key = k;
	dk->dnskey = rr;
	dk->tag = ldns_calc_keytag(rr);
	dk->algorithm = (uint8_t)alg;
	dk->ksk = ksk;
	assert_true(asprintf(&dk->path, "K%s+%03u+%05u.key", zone, dk->algorithm, dk->tag) > 0);
}

struct keyspec {
	ldns_signing_algorithm alg;
	bool ksk;
};

static struct drdns_keyset *make_keyset(const char *zone, const struct keyspec *spec, size_t n)
{
	struct drdns_keyset *ks = calloc(1, sizeof(*ks));
	assert_non_null(ks);
	ks->zone = strdup(zone);
	ks->keys = calloc(n, sizeof(*ks->keys));
	ks->n = n;
	for (size_t i = 0; i < n; i++)
		make_key(&ks->keys[i], zone, spec[i].alg, spec[i].ksk);
	return ks;
}

static void free_keyset(struct drdns_keyset *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->n; i++) {
		ldns_key_deep_free(ks->keys[i].key);
		ldns_rr_free(ks->keys[i].dnskey);
		free(ks->keys[i].path);
	}
	free(ks->keys);
	free(ks->zone);
	free(ks);
}

static const struct keyspec ecdsa_pair[] = {{LDNS_SIGN_ECDSAP256SHA256, true},
                                            {LDNS_SIGN_ECDSAP256SHA256, false}};

/* ---- zones ------------------------------------------------------------- */

struct tmpdir {
	char path[64];
};

static void tmpdir_make(struct tmpdir *t)
{
	strcpy(t->path, "/tmp/drdns-test-sign-XXXXXX");
	assert_non_null(mkdtemp(t->path));
}

static void tmpdir_remove(struct tmpdir *t)
{
	char *cmd = NULL;
	assert_true(asprintf(&cmd, "rm -rf '%s'", t->path) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static struct drdns_zone *load_text(const struct tmpdir *t, const char *zone, const char *text)
{
	char *path = NULL;
	assert_true(asprintf(&path, "%s/%szone", t->path, zone) > 0);
	write_file(path, text);
	struct drdns_diag diag = {0};
	struct drdns_zone *z = NULL;
	int ret = drdns_zone_load(path, zone, &z, &diag);
	if (ret) {
		for (size_t i = 0; i < diag.n; i++)
			print_message("  diag: %s\n", diag.msgs[i]);
	}
	assert_int_equal(ret, 0);
	drdns_diag_clear(&diag);
	free(path);
	return z;
}

static struct drdns_sign_params default_params(void)
{
	struct drdns_sign_params p = {
	    .now = (uint64_t)time(NULL),
	    .validity = 30 * 86400,
	    .inception_offset = 3600,
	    .jitter = 3 * 86400,
	    .threads = 2,
	};
	return p;
}

static struct drdns_zone *sign_ok(const struct drdns_zone *in, const struct drdns_keyset *ks,
                                  const struct drdns_sign_params *p, struct drdns_sign_stats *stats)
{
	struct drdns_zone *out = NULL;
	char err[512] = "";
	int ret = drdns_zone_sign(in, ks, p, &out, stats, err, sizeof(err));
	if (ret)
		print_message("  sign: %s\n", err);
	assert_int_equal(ret, 0);
	assert_non_null(out);
	return out;
}

/* Run a command, show its output when it fails; returns its exit status. */
static int run(const char *cmd)
{
	char *full = NULL;
	assert_true(asprintf(&full, "%s 2>&1", cmd) > 0);
	FILE *p = popen(full, "r");
	assert_non_null(p);
	char *out = NULL;
	size_t len = 0, cap = 0;
	char buf[4096];
	size_t n;
	while ((n = fread(buf, 1, sizeof(buf), p)) > 0) {
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			out = realloc(out, cap);
			assert_non_null(out);
		}
		memcpy(out + len, buf, n);
		len += n;
	}
	int st = pclose(p);
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	if (code != 0)
		print_message("  `%s` exited %d:\n%.*s\n", cmd, code, (int)len, out ? out : "");
	free(out);
	free(full);
	return code;
}

/* Write z, and the KSKs as trust anchors, and run both verifiers on it. */
static void verify_with_tools(const struct tmpdir *t, const struct drdns_zone *z,
                              const struct drdns_keyset *ks)
{
	char *zpath = NULL, *kpath = NULL, *cmd = NULL;
	assert_true(asprintf(&zpath, "%s/%ssigned", t->path, z->name) > 0);
	assert_true(asprintf(&kpath, "%s/anchors.key", t->path) > 0);
	char *text = drdns_zone_to_text(z);
	assert_non_null(text);
	write_file(zpath, text);
	free(text);
	FILE *f = fopen(kpath, "w");
	assert_non_null(f);
	for (size_t i = 0; i < ks->n; i++)
		if (ks->keys[i].ksk)
			ldns_rr_print(f, ks->keys[i].dnskey);
	fclose(f);

	assert_true(asprintf(&cmd, "ldns-verify-zone -k '%s' '%s'", kpath, zpath) > 0);
	assert_int_equal(run(cmd), 0);
	free(cmd);
	/* a CSK (flags 257, no ZSK) needs -z: dnssec-verify otherwise wants a
	 * ZSK-flagged key for every algorithm */
	bool zsk = false;
	for (size_t i = 0; i < ks->n; i++)
		zsk |= !ks->keys[i].ksk;
	assert_true(
	    asprintf(&cmd, "dnssec-verify -q %s-o %s '%s'", zsk ? "" : "-z ", z->name, zpath) > 0);
	assert_int_equal(run(cmd), 0);
	free(cmd);
	free(zpath);
	free(kpath);
}

static bool owner_is(const ldns_rr *rr, const char *name)
{
	ldns_rdf *d = ldns_dname_new_frm_str(name);
	assert_non_null(d);
	bool eq = ldns_dname_compare(ldns_rr_owner(rr), d) == 0;
	ldns_rdf_deep_free(d);
	return eq;
}

static ldns_rr_type covered(const ldns_rr *sig)
{
	return ldns_rdf2rr_type(ldns_rr_rrsig_typecovered(sig));
}

/* Records of z (the SOA included) at name of type (0: any); RRSIG matches
 * use sig_of to select by covered type (0: any). */
static ldns_rr_list *select_rrs(const struct drdns_zone *z, const char *name, ldns_rr_type type,
                                ldns_rr_type sig_of)
{
	ldns_rr_list *l = ldns_rr_list_new();
	if ((type == 0 || type == LDNS_RR_TYPE_SOA) && owner_is(z->soa, name))
		ldns_rr_list_push_rr(l, z->soa);
	for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
		ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
		if (name && !owner_is(rr, name))
			continue;
		if (type && ldns_rr_get_type(rr) != type)
			continue;
		if (type == LDNS_RR_TYPE_RRSIG && sig_of && covered(rr) != sig_of)
			continue;
		ldns_rr_list_push_rr(l, rr);
	}
	return l;
}

static size_t count_rrs(const struct drdns_zone *z, const char *name, ldns_rr_type type,
                        ldns_rr_type sig_of)
{
	ldns_rr_list *l = select_rrs(z, name, type, sig_of);
	size_t n = ldns_rr_list_rr_count(l);
	ldns_rr_list_free(l);
	return n;
}

static size_t count_type(const struct drdns_zone *z, ldns_rr_type type)
{
	return count_rrs(z, NULL, type, 0);
}

/* The RRset (name, type) verifies in-process with every RRSIG over it. */
static void verify_rrset(const struct drdns_zone *z, const char *name, ldns_rr_type type)
{
	ldns_rr_list *set = select_rrs(z, name, type, 0);
	ldns_rr_list *sigs = select_rrs(z, name, LDNS_RR_TYPE_RRSIG, type);
	ldns_rr_list *keys = select_rrs(z, ZONE, LDNS_RR_TYPE_DNSKEY, 0);
	assert_true(ldns_rr_list_rr_count(set) > 0);
	assert_true(ldns_rr_list_rr_count(sigs) > 0);
	for (size_t i = 0; i < ldns_rr_list_rr_count(sigs); i++) {
		ldns_rr_list *good = ldns_rr_list_new();
		ldns_status st =
		    ldns_verify_rrsig_keylist(set, ldns_rr_list_rr(sigs, i), keys, good);
		if (st != LDNS_STATUS_OK)
			print_message("  %s %u: %s\n", name, type, ldns_get_errorstr_by_id(st));
		assert_int_equal(st, LDNS_STATUS_OK);
		ldns_rr_list_free(good);
	}
	ldns_rr_list_free(set);
	ldns_rr_list_free(sigs);
	ldns_rr_list_free(keys);
}

/* The output is in canonical order (the server's binary search relies on it). */
static void assert_canonical_order(const struct drdns_zone *z)
{
	for (size_t i = 1; i < ldns_rr_list_rr_count(z->rrs); i++)
		assert_true(ldns_dname_compare(ldns_rr_owner(ldns_rr_list_rr(z->rrs, i - 1)),
		                               ldns_rr_owner(ldns_rr_list_rr(z->rrs, i))) <= 0);
	assert_true(owner_is(ldns_rr_list_rr(z->rrs, 0), ZONE));
}

/* Tags of the keys that signed (name, covered type). */
static bool signed_by(const struct drdns_zone *z, const char *name, ldns_rr_type type, uint16_t tag)
{
	ldns_rr_list *sigs = select_rrs(z, name, LDNS_RR_TYPE_RRSIG, type);
	bool found = false;
	for (size_t i = 0; i < ldns_rr_list_rr_count(sigs); i++)
		if (ldns_rdf2native_int16(ldns_rr_rrsig_keytag(ldns_rr_list_rr(sigs, i))) == tag)
			found = true;
	ldns_rr_list_free(sigs);
	return found;
}

static char *nsec3_owner(const char *name, const struct drdns_sign_params *p)
{
	ldns_rdf *d = ldns_dname_new_frm_str(name);
	ldns_rdf *h = ldns_nsec3_hash_name(d, 1, p->nsec3_iterations,
	                                   p->nsec3_salt ? p->nsec3_salt_len : 0, p->nsec3_salt);
	assert_non_null(h);
	char *hs = ldns_rdf2str(h);
	char *full = NULL;
	assert_true(asprintf(&full, "%s%s", hs, ZONE) > 0);
	free(hs);
	ldns_rdf_deep_free(h);
	ldns_rdf_deep_free(d);
	return full;
}

static const ldns_rr *the_rr(const struct drdns_zone *z, const char *name, ldns_rr_type type)
{
	ldns_rr_list *l = select_rrs(z, name, type, 0);
	if (ldns_rr_list_rr_count(l) != 1)
		print_message("  %s type %u: %zu records\n", name, type, ldns_rr_list_rr_count(l));
	assert_int_equal(ldns_rr_list_rr_count(l), 1);
	const ldns_rr *rr = ldns_rr_list_rr(l, 0);
	ldns_rr_list_free(l);
	return rr;
}

/* ---- tests ------------------------------------------------------------- */

static void test_nsec_ecdsa(void **state)
{
	(void)state;
	struct tmpdir t;
	tmpdir_make(&t);
	struct drdns_zone *in = load_text(&t, ZONE, zone_text);
	struct drdns_keyset *ks = make_keyset(ZONE, ecdsa_pair, 2);
	struct drdns_sign_params p = default_params();
	struct drdns_sign_stats st = {0};
	struct drdns_zone *z = sign_ok(in, ks, &p, &st);
	verify_with_tools(&t, z, ks);
	assert_canonical_order(z);
	assert_string_equal(z->name, ZONE);
	assert_null(z->path);
	assert_int_equal(ldns_rr_get_type(z->soa), LDNS_RR_TYPE_SOA);

	/* the input's NSEC and NSEC3PARAM are gone; one NSEC per authoritative name */
	size_t nauth = sizeof(auth_names) / sizeof(auth_names[0]);
	assert_int_equal(count_type(z, LDNS_RR_TYPE_NSEC3PARAM), 0);
	assert_int_equal(count_type(z, LDNS_RR_TYPE_NSEC), nauth);
	for (size_t i = 0; i < nauth; i++)
		assert_int_equal(count_rrs(z, auth_names[i], LDNS_RR_TYPE_NSEC, 0), 1);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(count_rrs(z, ent_names[i], 0, 0), 0);
		assert_int_equal(count_rrs(z, glue_names[i], LDNS_RR_TYPE_NSEC, 0), 0);
		/* glue and occluded data: kept, never signed */
		assert_int_equal(count_rrs(z, glue_names[i], LDNS_RR_TYPE_A, 0), 1);
		assert_int_equal(count_rrs(z, glue_names[i], LDNS_RR_TYPE_RRSIG, 0), 0);
	}
	/* delegations: NS unsigned, DS signed, bitmap NS DS RRSIG NSEC only */
	assert_int_equal(count_rrs(z, "sub." ZONE, LDNS_RR_TYPE_NS, 0), 2);
	assert_int_equal(count_rrs(z, "sub." ZONE, LDNS_RR_TYPE_RRSIG, LDNS_RR_TYPE_NS), 0);
	assert_int_equal(count_rrs(z, "sub." ZONE, LDNS_RR_TYPE_RRSIG, LDNS_RR_TYPE_DS), 1);
	assert_int_equal(count_rrs(z, "insecure." ZONE, LDNS_RR_TYPE_RRSIG, LDNS_RR_TYPE_NS), 0);
	const ldns_rr *nsec = the_rr(z, "sub." ZONE, LDNS_RR_TYPE_NSEC);
	const ldns_rdf *bm = ldns_rr_rdf(nsec, 1);
	assert_true(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_NS));
	assert_true(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_DS));
	assert_true(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_RRSIG));
	assert_true(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_NSEC));
	assert_false(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_A));
	nsec = the_rr(z, "insecure." ZONE, LDNS_RR_TYPE_NSEC);
	assert_false(ldns_nsec_bitmap_covers_type(ldns_rr_rdf(nsec, 1), LDNS_RR_TYPE_DS));
	/* apex: NS signed; bitmap with SOA, DNSKEY, RRSIG, NSEC */
	assert_int_equal(count_rrs(z, ZONE, LDNS_RR_TYPE_RRSIG, LDNS_RR_TYPE_NS), 1);
	nsec = the_rr(z, ZONE, LDNS_RR_TYPE_NSEC);
	bm = ldns_rr_rdf(nsec, 1);
	assert_true(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_SOA));
	assert_true(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_DNSKEY));
	assert_true(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_MX));
	assert_false(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_NSEC3PARAM));
	/* NSEC TTL: min(SOA TTL, MINIMUM) (RFC 9077); DNSKEY TTL: the SOA's */
	assert_int_equal(ldns_rr_ttl(nsec), 300);
	assert_int_equal(count_type(z, LDNS_RR_TYPE_DNSKEY), 2);
	ldns_rr_list *wwwsig = select_rrs(z, "www." ZONE, LDNS_RR_TYPE_RRSIG, LDNS_RR_TYPE_A);
	assert_int_equal(ldns_rr_list_rr_count(wwwsig), 1);
	assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(wwwsig, 0)), 600);
	assert_int_equal(ldns_rdf2native_int32(ldns_rr_rrsig_origttl(ldns_rr_list_rr(wwwsig, 0))),
	                 600);
	ldns_rr_list_free(wwwsig);
	/* the chain: the apex's NSEC points at the next name in canonical order,
	 * the last one (www) back at the apex */
	char *next = ldns_rdf2str(ldns_rr_rdf(nsec, 0));
	assert_string_equal(next, "host.b.ent." ZONE);
	free(next);
	next = ldns_rdf2str(ldns_rr_rdf(the_rr(z, "www." ZONE, LDNS_RR_TYPE_NSEC), 0));
	assert_string_equal(next, ZONE);
	free(next);

	/* KSK signs only DNSKEY, the ZSK everything else */
	uint16_t ksk = ks->keys[0].tag, zsk = ks->keys[1].tag;
	assert_true(signed_by(z, ZONE, LDNS_RR_TYPE_DNSKEY, ksk));
	assert_false(signed_by(z, ZONE, LDNS_RR_TYPE_DNSKEY, zsk));
	assert_true(signed_by(z, ZONE, LDNS_RR_TYPE_SOA, zsk));
	assert_false(signed_by(z, ZONE, LDNS_RR_TYPE_SOA, ksk));
	ldns_rr_list *all = select_rrs(z, NULL, LDNS_RR_TYPE_RRSIG, 0);
	for (size_t i = 0; i < ldns_rr_list_rr_count(all); i++) {
		const ldns_rr *sig = ldns_rr_list_rr(all, i);
		uint16_t tag = ldns_rdf2native_int16(ldns_rr_rrsig_keytag(sig));
		assert_int_equal(tag == ksk, covered(sig) == LDNS_RR_TYPE_DNSKEY);
	}
	/* RRSIG fields: labels (wildcard not counted), original TTL, inception */
	ldns_rr_list *wsigs = select_rrs(z, "*.wild." ZONE, LDNS_RR_TYPE_RRSIG, LDNS_RR_TYPE_TXT);
	assert_int_equal(ldns_rr_list_rr_count(wsigs), 1);
	const ldns_rr *wsig = ldns_rr_list_rr(wsigs, 0);
	assert_int_equal(ldns_rdf2native_int8(ldns_rr_rrsig_labels(wsig)), 3);
	assert_int_equal(ldns_rdf2native_int32(ldns_rr_rrsig_origttl(wsig)), 3600);
	assert_int_equal(ldns_rdf2native_int32(ldns_rr_rrsig_inception(wsig)),
	                 (uint32_t)(p.now - 3600));
	char *signer = ldns_rdf2str(ldns_rr_rrsig_signame(wsig));
	assert_string_equal(signer, ZONE);
	free(signer);
	ldns_rr_list_free(wsigs);

	/* in-process verification of a few RRsets */
	verify_rrset(z, ZONE, LDNS_RR_TYPE_SOA);
	verify_rrset(z, ZONE, LDNS_RR_TYPE_NS); /* NS2.Example.Test. in canonical form */
	verify_rrset(z, ZONE, LDNS_RR_TYPE_DNSKEY);
	verify_rrset(z, "www." ZONE, LDNS_RR_TYPE_A);
	verify_rrset(z, "sub." ZONE, LDNS_RR_TYPE_DS);
	verify_rrset(z, "sub." ZONE, LDNS_RR_TYPE_NSEC);

	/* stats */
	size_t nsigs = count_type(z, LDNS_RR_TYPE_RRSIG);
	assert_int_equal(st.signatures, nsigs);
	assert_int_equal(st.rrsets_signed, nsigs); /* one key per RRset here */
	assert_int_equal(st.nsec_records, nauth);
	assert_true(st.seconds >= 0);
	uint32_t earliest = UINT32_MAX;
	for (size_t i = 0; i < ldns_rr_list_rr_count(all); i++) {
		uint32_t e =
		    ldns_rdf2native_int32(ldns_rr_rrsig_expiration(ldns_rr_list_rr(all, i)));
		if (e < earliest)
			earliest = e;
	}
	assert_int_equal(st.earliest_expiration, earliest);
	ldns_rr_list_free(all);

	/* re-signing the signed output (a DR copy of a signed zone) drops the
	 * old DNSSEC records and gives the same structure */
	struct drdns_zone *again = sign_ok(z, ks, &p, NULL);
	assert_int_equal(ldns_rr_list_rr_count(again->rrs), ldns_rr_list_rr_count(z->rrs));
	verify_with_tools(&t, again, ks);
	drdns_zone_free(again);

	drdns_zone_free(z);
	drdns_zone_free(in);
	free_keyset(ks);
	tmpdir_remove(&t);
}

static void check_nsec3(const struct drdns_sign_params *p, const struct keyspec *spec, size_t nk)
{
	struct tmpdir t;
	tmpdir_make(&t);
	struct drdns_zone *in = load_text(&t, ZONE, zone_text);
	struct drdns_keyset *ks = make_keyset(ZONE, spec, nk);
	struct drdns_sign_stats st = {0};
	struct drdns_zone *z = sign_ok(in, ks, p, &st);
	verify_with_tools(&t, z, ks);
	assert_canonical_order(z);

	assert_int_equal(count_type(z, LDNS_RR_TYPE_NSEC), 0);
	const ldns_rr *param = the_rr(z, ZONE, LDNS_RR_TYPE_NSEC3PARAM);
	assert_int_equal(ldns_rdf2native_int8(ldns_rr_rdf(param, 1)), 0); /* flags */
	assert_int_equal(ldns_rdf2native_int16(ldns_rr_rdf(param, 2)), p->nsec3_iterations);
	assert_int_equal(ldns_rdf_data(ldns_rr_rdf(param, 3))[0], p->nsec3_salt_len);
	verify_rrset(z, ZONE, LDNS_RR_TYPE_NSEC3PARAM);

	size_t expect = 0;
	for (size_t i = 0; i < sizeof(auth_names) / sizeof(auth_names[0]); i++) {
		char *h = nsec3_owner(auth_names[i], p);
		bool optout = p->nsec3_opt_out && strcmp(auth_names[i], "insecure." ZONE) == 0;
		assert_int_equal(count_rrs(z, h, LDNS_RR_TYPE_NSEC3, 0), optout ? 0 : 1);
		if (!optout) {
			const ldns_rr *n3 = the_rr(z, h, LDNS_RR_TYPE_NSEC3);
			assert_int_equal(ldns_nsec3_optout(n3), p->nsec3_opt_out);
			assert_int_equal(ldns_rr_ttl(n3), 300);
			const ldns_rdf *bm = ldns_nsec3_bitmap(n3);
			assert_non_null(bm);
			assert_false(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_NSEC3));
			bool insecure = strcmp(auth_names[i], "insecure." ZONE) == 0;
			assert_int_equal(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_RRSIG),
			                 !insecure);
			if (strcmp(auth_names[i], ZONE) == 0)
				assert_true(
				    ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_NSEC3PARAM));
			if (strcmp(auth_names[i], "sub." ZONE) == 0) {
				assert_true(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_DS));
				assert_false(ldns_nsec_bitmap_covers_type(bm, LDNS_RR_TYPE_A));
			}
			verify_rrset(z, h, LDNS_RR_TYPE_NSEC3);
			expect++;
		}
		free(h);
	}
	/* empty non-terminals get an NSEC3 with an empty bitmap */
	for (size_t i = 0; i < 3; i++) {
		char *h = nsec3_owner(ent_names[i], p);
		const ldns_rr *n3 = the_rr(z, h, LDNS_RR_TYPE_NSEC3);
		const ldns_rdf *bm = ldns_nsec3_bitmap(n3);
		assert_true(bm == NULL || ldns_rdf_size(bm) == 0);
		expect++;
		free(h);
		h = nsec3_owner(glue_names[i], p);
		assert_int_equal(count_rrs(z, h, 0, 0), 0);
		free(h);
	}
	assert_int_equal(count_type(z, LDNS_RR_TYPE_NSEC3), expect);
	assert_int_equal(st.nsec_records, expect);
	verify_rrset(z, "sub." ZONE, LDNS_RR_TYPE_DS);

	drdns_zone_free(z);
	drdns_zone_free(in);
	free_keyset(ks);
	tmpdir_remove(&t);
}

static void test_nsec3_plain(void **state)
{
	(void)state;
	struct drdns_sign_params p = default_params();
	p.nsec3 = true; /* iterations 0, empty salt (RFC 9276) */
	check_nsec3(&p, ecdsa_pair, 2);
}

static void test_nsec3_salt_optout(void **state)
{
	(void)state;
	static const uint8_t salt[] = {0xab, 0xcd, 0xef, 0x01};
	struct drdns_sign_params p = default_params();
	p.nsec3 = true;
	p.nsec3_iterations = 5;
	p.nsec3_salt = salt;
	p.nsec3_salt_len = sizeof(salt);
	p.nsec3_opt_out = true;
	check_nsec3(&p, ecdsa_pair, 2);
}

static void check_algorithm(const struct keyspec *spec, size_t nk, bool nsec3)
{
	struct tmpdir t;
	tmpdir_make(&t);
	struct drdns_zone *in = load_text(&t, ZONE, zone_text);
	struct drdns_keyset *ks = make_keyset(ZONE, spec, nk);
	struct drdns_sign_params p = default_params();
	p.nsec3 = nsec3;
	struct drdns_zone *z = sign_ok(in, ks, &p, NULL);
	verify_with_tools(&t, z, ks);
	verify_rrset(z, ZONE, LDNS_RR_TYPE_DNSKEY);
	verify_rrset(z, ZONE, LDNS_RR_TYPE_SOA);
	verify_rrset(z, "*.wild." ZONE, LDNS_RR_TYPE_TXT);
	for (size_t i = 0; i < nk; i++)
		assert_true(signed_by(z, ZONE, LDNS_RR_TYPE_DNSKEY, ks->keys[i].tag) ==
		            ks->keys[i].ksk);
	drdns_zone_free(z);
	drdns_zone_free(in);
	free_keyset(ks);
	tmpdir_remove(&t);
}

static void test_rsasha256(void **state)
{
	(void)state;
	static const struct keyspec rsa[] = {{LDNS_SIGN_RSASHA256, true},
	                                     {LDNS_SIGN_RSASHA256, false}};
	check_algorithm(rsa, 2, false);
	check_algorithm(rsa, 2, true);
}

static void test_ed25519(void **state)
{
	(void)state;
	static const struct keyspec ed[] = {{LDNS_SIGN_ED25519, true}, {LDNS_SIGN_ED25519, false}};
	check_algorithm(ed, 2, false);
	check_algorithm(ed, 2, true);
}

/* One key with flags 257 alone signs everything, DNSKEY included. */
static void test_csk(void **state)
{
	(void)state;
	struct tmpdir t;
	tmpdir_make(&t);
	struct drdns_zone *in = load_text(&t, ZONE, zone_text);
	static const struct keyspec csk[] = {{LDNS_SIGN_ECDSAP256SHA256, true}};
	struct drdns_keyset *ks = make_keyset(ZONE, csk, 1);
	struct drdns_sign_params p = default_params();
	struct drdns_zone *z = sign_ok(in, ks, &p, NULL);
	verify_with_tools(&t, z, ks);
	uint16_t tag = ks->keys[0].tag;
	assert_true(signed_by(z, ZONE, LDNS_RR_TYPE_DNSKEY, tag));
	assert_true(signed_by(z, ZONE, LDNS_RR_TYPE_SOA, tag));
	assert_true(signed_by(z, "www." ZONE, LDNS_RR_TYPE_A, tag));
	assert_true(signed_by(z, "www." ZONE, LDNS_RR_TYPE_NSEC, tag));
	assert_int_equal(count_type(z, LDNS_RR_TYPE_DNSKEY), 1);
	drdns_zone_free(z);
	drdns_zone_free(in);
	free_keyset(ks);
	tmpdir_remove(&t);
}

/* A generated zone of n names: host<i> A, every third also AAAA and TXT. */
static char *big_zone_text(size_t n)
{
	size_t cap = 256 + n * 120, len = 0;
	char *s = malloc(cap);
	if (!s)
		abort();
	len += (size_t)sprintf(s + len,
	                       "$TTL 3600\n@ SOA ns1.example.test. h.example.test. 1 7200 3600 "
	                       "1209600 300\n@ NS ns1.example.test.\nns1 A 192.0.2.53\n");
	for (size_t i = 0; i < n; i++) {
		len += (size_t)sprintf(s + len, "host%zu A 10.%zu.%zu.%zu\n", i, (i >> 16) & 255,
		                       (i >> 8) & 255, i & 255);
		if (i % 3 == 0)
			len += (size_t)sprintf(s + len,
			                       "host%zu AAAA 2001:db8::%zx\nhost%zu TXT \"t%zu\"\n",
			                       i, i, i, i);
	}
	return s;
}

/* Expirations lie in [now + validity - jitter, now + validity], are spread,
 * and are the same for the same (owner, type) on every run. */
static void test_jitter(void **state)
{
	(void)state;
	struct tmpdir t;
	tmpdir_make(&t);
	char *text = big_zone_text(300);
	struct drdns_zone *in = load_text(&t, ZONE, text);
	free(text);
	struct drdns_keyset *ks = make_keyset(ZONE, ecdsa_pair, 2);
	struct drdns_sign_params p = default_params();
	p.now = 1700000000;
	p.validity = 14 * 86400;
	p.jitter = 86400;
	struct drdns_sign_stats st = {0};
	struct drdns_zone *a = sign_ok(in, ks, &p, &st);
	p.threads = 1;
	struct drdns_zone *b = sign_ok(in, ks, &p, NULL);
	ldns_rr_list *sa = select_rrs(a, NULL, LDNS_RR_TYPE_RRSIG, 0);
	ldns_rr_list *sb = select_rrs(b, NULL, LDNS_RR_TYPE_RRSIG, 0);
	size_t n = ldns_rr_list_rr_count(sa);
	assert_true(n > 700);
	assert_int_equal(ldns_rr_list_rr_count(sb), n);
	uint32_t lo = UINT32_MAX, hi = 0;
	size_t differ_by_type = 0;
	for (size_t i = 0; i < n; i++) {
		const ldns_rr *x = ldns_rr_list_rr(sa, i), *y = ldns_rr_list_rr(sb, i);
		uint32_t e = ldns_rdf2native_int32(ldns_rr_rrsig_expiration(x));
		assert_true(e >= p.now + p.validity - p.jitter);
		assert_true(e <= p.now + p.validity);
		assert_int_equal(ldns_rdf2native_int32(ldns_rr_rrsig_expiration(y)), e);
		assert_int_equal(ldns_rdf2native_int32(ldns_rr_rrsig_inception(x)), p.now - 3600);
		lo = e < lo ? e : lo;
		hi = e > hi ? e : hi;
		if (i > 0 &&
		    ldns_dname_compare(ldns_rr_owner(x),
		                       ldns_rr_owner(ldns_rr_list_rr(sa, i - 1))) == 0 &&
		    ldns_rdf2native_int32(ldns_rr_rrsig_expiration(ldns_rr_list_rr(sa, i - 1))) !=
		        e)
			differ_by_type++;
	}
	assert_int_equal(st.earliest_expiration, lo);
	assert_true(hi - lo > 86400 / 2); /* spread over most of the window */
	assert_true(differ_by_type > 0);  /* the type counts, not only the owner */
	ldns_rr_list_free(sa);
	ldns_rr_list_free(sb);
	drdns_zone_free(b);

	/* jitter 0: every expiration is now + validity */
	p.jitter = 0;
	b = sign_ok(in, ks, &p, &st);
	sb = select_rrs(b, NULL, LDNS_RR_TYPE_RRSIG, 0);
	for (size_t i = 0; i < ldns_rr_list_rr_count(sb); i++)
		assert_int_equal(
		    ldns_rdf2native_int32(ldns_rr_rrsig_expiration(ldns_rr_list_rr(sb, i))),
		    p.now + p.validity);
	assert_int_equal(st.earliest_expiration, p.now + p.validity);
	ldns_rr_list_free(sb);
	drdns_zone_free(b);
	drdns_zone_free(a);
	drdns_zone_free(in);
	free_keyset(ks);
	tmpdir_remove(&t);
}

/* Everything but the ECDSA signature bytes is the same with 1 and 2 threads. */
static void check_threads(bool nsec3)
{
	struct tmpdir t;
	tmpdir_make(&t);
	char *text = big_zone_text(1000);
	struct drdns_zone *in = load_text(&t, ZONE, text);
	free(text);
	struct drdns_keyset *ks = make_keyset(ZONE, ecdsa_pair, 2);
	struct drdns_sign_params p = default_params();
	p.nsec3 = nsec3;
	p.threads = 1;
	struct drdns_sign_stats s1 = {0}, s2 = {0};
	struct drdns_zone *a = sign_ok(in, ks, &p, &s1);
	p.threads = 2;
	struct drdns_zone *b = sign_ok(in, ks, &p, &s2);
	p.threads = 0; /* every online CPU */
	struct drdns_zone *c = sign_ok(in, ks, &p, NULL);
	assert_int_equal(s1.signatures, s2.signatures);
	assert_int_equal(s1.rrsets_signed, s2.rrsets_signed);
	assert_int_equal(s1.nsec_records, s2.nsec_records);
	assert_int_equal(ldns_rr_compare(a->soa, b->soa), 0);
	size_t n = ldns_rr_list_rr_count(a->rrs);
	assert_int_equal(ldns_rr_list_rr_count(b->rrs), n);
	assert_int_equal(ldns_rr_list_rr_count(c->rrs), n);
	for (size_t i = 0; i < n; i++) {
		ldns_rr *x = ldns_rr_list_rr(a->rrs, i), *y = ldns_rr_list_rr(b->rrs, i);
		assert_int_equal(ldns_rr_get_type(x), ldns_rr_get_type(y));
		if (ldns_rr_get_type(x) != LDNS_RR_TYPE_RRSIG) {
			assert_int_equal(ldns_rr_compare(x, y), 0);
			continue;
		}
		assert_int_equal(ldns_dname_compare(ldns_rr_owner(x), ldns_rr_owner(y)), 0);
		assert_int_equal(ldns_rr_ttl(x), ldns_rr_ttl(y));
		assert_int_equal(ldns_rr_rd_count(x), 9);
		for (size_t f = 0; f < 8; f++)
			assert_int_equal(ldns_rdf_compare(ldns_rr_rdf(x, f), ldns_rr_rdf(y, f)), 0);
		assert_int_equal(ldns_rdf_size(ldns_rr_rdf(x, 8)), 64);
		assert_int_equal(ldns_rdf_size(ldns_rr_rdf(y, 8)), 64);
	}
	verify_with_tools(&t, b, ks);
	drdns_zone_free(a);
	drdns_zone_free(b);
	drdns_zone_free(c);
	drdns_zone_free(in);
	free_keyset(ks);
	tmpdir_remove(&t);
}

static void test_threads_nsec(void **state)
{
	(void)state;
	check_threads(false);
}

static void test_threads_nsec3(void **state)
{
	(void)state;
	check_threads(true);
}

static void expect_error(const struct drdns_zone *in, const struct drdns_keyset *ks,
                         const struct drdns_sign_params *p, const char *needle)
{
	struct drdns_zone *out = (struct drdns_zone *)1;
	struct drdns_sign_stats st = {0};
	char err[512] = "";
	assert_int_equal(drdns_zone_sign(in, ks, p, &out, &st, err, sizeof(err)), DRDNS_EDNSSEC);
	assert_null(out);
	if (!strstr(err, needle))
		print_message("  error \"%s\" lacks \"%s\"\n", err, needle);
	assert_non_null(strstr(err, needle));
}

static void test_errors(void **state)
{
	(void)state;
	struct tmpdir t;
	tmpdir_make(&t);
	struct drdns_zone *in = load_text(&t, ZONE, zone_text);
	struct drdns_sign_params p = default_params();

	/* no keys at all, or an empty set */
	expect_error(in, NULL, &p, "no DNSSEC key");
	struct drdns_keyset empty = {.zone = (char *)ZONE, .keys = NULL, .n = 0};
	expect_error(in, &empty, &p, "no DNSSEC key");

	/* a key set of another zone */
	struct drdns_keyset *other = make_keyset("example.org.", ecdsa_pair, 2);
	expect_error(in, other, &p, "example.org.");

	/* the set claims our zone, but one DNSKEY belongs to another */
	free(other->zone);
	other->zone = strdup(ZONE);
	expect_error(in, other, &p, "is for zone example.org.");
	free_keyset(other);

	/* a private key that does not match its DNSKEY: caught, not published */
	struct drdns_keyset *ks = make_keyset(ZONE, ecdsa_pair, 2);
	struct drdns_dnskey extra;
	make_key(&extra, ZONE, LDNS_SIGN_ECDSAP256SHA256, false);
	ldns_key *swap = ks->keys[1].key;
	ks->keys[1].key = extra.key;
	extra.key = swap;
	expect_error(in, ks, &p, "does not verify");
	swap = ks->keys[1].key;
	ks->keys[1].key = extra.key;
	extra.key = swap;

	/* a tag that does not match the DNSKEY */
	ks->keys[0].tag ^= 1;
	expect_error(in, ks, &p, "do not match its DNSKEY");
	ks->keys[0].tag ^= 1;

	/* parameters */
	p.jitter = p.validity;
	expect_error(in, ks, &p, "jitter");
	p = default_params();
	p.validity = 0;
	expect_error(in, ks, &p, "validity");

	ldns_key_deep_free(extra.key);
	ldns_rr_free(extra.dnskey);
	free(extra.path);
	free_keyset(ks);
	drdns_zone_free(in);
	tmpdir_remove(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_nsec_ecdsa),
	    cmocka_unit_test(test_nsec3_plain),
	    cmocka_unit_test(test_nsec3_salt_optout),
	    cmocka_unit_test(test_rsasha256),
	    cmocka_unit_test(test_ed25519),
	    cmocka_unit_test(test_csk),
	    cmocka_unit_test(test_jitter),
	    cmocka_unit_test(test_threads_nsec),
	    cmocka_unit_test(test_threads_nsec3),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
