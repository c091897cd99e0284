/*
 * Unit tests for the keys part of include/drdns/dnssec.h: loading BIND
 * K<zone>.+<alg>+<tag>.key/.private pairs, the checks, and that the loaded
 * keys sign.
 *
 * Fixtures: $DRDNS_TEST_DATA/keys/<case>/, made once with dnssec-keygen
 * (BIND 9.18) for example.edu; the broken cases are copies edited by hand:
 *   ecdsa/     KSK 16588 + ZSK 10680 (alg 13), plus keys of example.com and
 *              sub.example.edu and a README (all to be ignored)
 *   ed25519/   KSK 25959 + ZSK 29750 (alg 15)
 *   rsa/       KSK 25460 + ZSK 43251 (alg 8, 2048 bits)
 *   csk/       one key 29843, flags 257 (alg 13)
 *   missing-private/  KSK .key without its .private, ZSK pair
 *   orphan-private/   KSK pair, ZSK .private without its .key
 *   truncated/        KSK, .private cut in the PrivateKey line
 *   corrupt/          RSA KSK, .private with bad base64 in Prime1
 *   mismatch/         KSK .key with the ZSK's .private under its name
 *   unsupported/      one ECDSAP384SHA384 (alg 14) KSK
 *   zsk-only/, ksk-only/ (an alg 13 and an alg 15 KSK)
 *   owner/            KSK whose DNSKEY owner is example.org.
 *   tagname/          the KSK pair renamed to tag 11111
 *   multi/            five problems at once
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"
#include <ldns/ldns.h>

#include "drdns/diag.h"
#include "drdns/dnssec.h"
#include "drdns/error.h"

/* ---- helpers ----------------------------------------------------------- */

static void dump_diag(const struct drdns_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		print_message("  diag[%zu]: %s\n", i, d->msgs[i]);
}

/* Index of the diagnostic that starts with "<data>/keys/<rel>: " and contains
 * needle, or -1. */
static int diag_find(const struct drdns_diag *d, const char *rel, const char *needle)
{
	char *rel2 = NULL;
	assert_true(asprintf(&rel2, "keys/%s", rel) > 0);
	char *path = data_path(rel2);
	free(rel2);
	size_t pl = strlen(path);
	int found = -1;
	for (size_t i = 0; i < d->n && found < 0; i++)
		if (strncmp(d->msgs[i], path, pl) == 0 && strncmp(d->msgs[i] + pl, ": ", 2) == 0 &&
		    strstr(d->msgs[i] + pl + 2, needle))
			found = (int)i;
	free(path);
	return found;
}

static void expect_diag(const struct drdns_diag *d, const char *rel, const char *needle)
{
	if (diag_find(d, rel, needle) < 0) {
		dump_diag(d);
		fail_msg("no diagnostic \"keys/%s: ...%s...\"", rel, needle);
	}
}

static char *keys_dir(const char *name)
{
	char *rel = NULL;
	assert_true(asprintf(&rel, "keys/%s", name) > 0);
	char *p = data_path(rel);
	free(rel);
	return p;
}

/* Load $DATA/keys/<name> for zone; asserts the return code and the shape. */
static struct drdns_keyset *load(const char *name, const char *zone, int want,
                                 struct drdns_diag *diag)
{
	char *dir = keys_dir(name);
	struct drdns_keyset *ks = (struct drdns_keyset *)0x1;
	int r = drdns_keyset_load(dir, zone, &ks, diag);
	free(dir);
	if (r != want) {
		dump_diag(diag);
		fail_msg("drdns_keyset_load(%s, %s) = %d (%s), want %d", name, zone, r,
		         drdns_strerror(r), want);
	}
	if (r != 0) {
		assert_null(ks);
		assert_true(diag->n_errors > 0);
		assert_int_equal(diag->n_errors, diag->n);
	}
	return ks;
}

/* The DNSKEY from a .key file, parsed independently of keys.c. */
static ldns_rr *read_dnskey(const char *dir, const char *base)
{
	char *rel = NULL;
	assert_true(asprintf(&rel, "keys/%s/%s.key", dir, base) > 0);
	char *path = data_path(rel);
	free(rel);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	ldns_rr *rr = NULL;
	ldns_status s;
	int line = 1;
	do {
		s = ldns_rr_new_frm_fp_l(&rr, f, NULL, NULL, NULL, &line);
	} while (s == LDNS_STATUS_SYNTAX_EMPTY && !feof(f));
	fclose(f);
	free(path);
	assert_int_equal(s, LDNS_STATUS_OK);
	assert_int_equal(ldns_rr_get_type(rr), LDNS_RR_TYPE_DNSKEY);
	return rr;
}

/* Sign a small RRset with k and verify the RRSIG against the DNSKEY read
 * straight from the .key file. */
static void assert_signs(const struct drdns_dnskey *k, const char *dir, const char *zone)
{
	ldns_rr_list *rrset = ldns_rr_list_new();
	const char *txt[] = {"www.example.edu. 300 IN A 192.0.2.1",
	                     "www.example.edu. 300 IN A 192.0.2.2"};
	for (size_t i = 0; i < 2; i++) {
		ldns_rr *rr = NULL;
		assert_int_equal(ldns_rr_new_frm_str(&rr, txt[i], 0, NULL, NULL), LDNS_STATUS_OK);
		ldns_rr_list_push_rr(rrset, rr);
	}
	ldns_key_list *kl = ldns_key_list_new();
	ldns_key_list_push_key(kl, k->key);
	ldns_rr_list *sigs = ldns_sign_public(rrset, kl);
	assert_non_null(sigs);
	assert_int_equal(ldns_rr_list_rr_count(sigs), 1);
	ldns_rr *sig = ldns_rr_list_rr(sigs, 0);
	assert_int_equal(ldns_rdf2native_int16(ldns_rr_rrsig_keytag(sig)), k->tag);
	assert_int_equal(ldns_rdf2native_int8(ldns_rr_rrsig_algorithm(sig)), k->algorithm);
	ldns_rdf *zrdf = ldns_dname_new_frm_str(zone);
	assert_int_equal(ldns_dname_compare(ldns_rr_rrsig_signame(sig), zrdf), 0);
	ldns_rdf_deep_free(zrdf);

	char base[64];
	snprintf(base, sizeof(base), "Kexample.edu.+%03u+%05u", k->algorithm, k->tag);
	ldns_rr_list *pub = ldns_rr_list_new();
	ldns_rr_list_push_rr(pub, read_dnskey(dir, base));
	ldns_rr_list *good = ldns_rr_list_new();
	ldns_status s = ldns_verify_rrsig_keylist(rrset, sig, pub, good);
	if (s != LDNS_STATUS_OK)
		fail_msg("key %u (alg %u): RRSIG does not verify: %s", k->tag, k->algorithm,
		         ldns_get_errorstr_by_id(s));
	assert_int_equal(ldns_rr_list_rr_count(good), 1);

	/* A changed RRset must not verify. */
	ldns_rr *extra = NULL;
	assert_int_equal(
	    ldns_rr_new_frm_str(&extra, "www.example.edu. 300 IN A 192.0.2.3", 0, NULL, NULL),
	    LDNS_STATUS_OK);
	ldns_rr_list_push_rr(rrset, extra);
	ldns_rr_list *good2 = ldns_rr_list_new();
	assert_int_not_equal(ldns_verify_rrsig_keylist(rrset, sig, pub, good2), LDNS_STATUS_OK);

	ldns_rr_list_free(good2);
	ldns_rr_list_free(good);
	ldns_rr_list_deep_free(pub);
	ldns_rr_list_deep_free(sigs);
	ldns_key_list_set_key_count(kl, 0); /* the key belongs to the keyset */
	ldns_key_list_free(kl);
	ldns_rr_list_deep_free(rrset);
}

/* A KSK+ZSK pair of keys: shape, order, ldns_key fields, signing. */
static void check_pair(const char *dir, uint8_t alg, uint16_t ksk_tag, uint16_t zsk_tag)
{
	struct drdns_diag diag = {0};
	struct drdns_keyset *ks = load(dir, "example.edu", 0, &diag);
	assert_non_null(ks);
	assert_int_equal(diag.n, 0);
	assert_string_equal(ks->zone, "example.edu.");
	assert_int_equal(ks->n, 2);
	assert_true(ks->keys[0].ksk);
	assert_false(ks->keys[1].ksk);
	assert_int_equal(ks->keys[0].tag, ksk_tag);
	assert_int_equal(ks->keys[1].tag, zsk_tag);
	for (size_t i = 0; i < ks->n; i++) {
		const struct drdns_dnskey *k = &ks->keys[i];
		assert_int_equal(k->algorithm, alg);
		assert_non_null(k->key);
		assert_non_null(k->dnskey);
		assert_int_equal(ldns_key_algorithm(k->key), alg);
		assert_int_equal(ldns_key_flags(k->key), k->ksk ? 257 : 256);
		assert_int_equal(ldns_key_keytag(k->key), k->tag);
		assert_int_equal(ldns_calc_keytag(k->dnskey), k->tag);
		char *owner = ldns_rdf2str(ldns_key_pubkey_owner(k->key));
		assert_string_equal(owner, "example.edu.");
		free(owner);
		char suffix[64];
		snprintf(suffix, sizeof(suffix), "/Kexample.edu.+%03u+%05u.key", alg, k->tag);
		assert_non_null(strstr(k->path, suffix));
		assert_string_equal(strstr(k->path, suffix), suffix);
		/* The stored DNSKEY is the one in the .key file. */
		char base[64];
		snprintf(base, sizeof(base), "Kexample.edu.+%03u+%05u", alg, k->tag);
		ldns_rr *want = read_dnskey(dir, base);
		ldns_rr_set_ttl(want, ldns_rr_ttl(k->dnskey));
		assert_int_equal(ldns_rr_compare(want, k->dnskey), 0);
		ldns_rr_free(want);
		assert_signs(k, dir, "example.edu.");
	}
	drdns_keyset_free(ks);
	drdns_diag_clear(&diag);
}

/* ---- success paths ----------------------------------------------------- */

static void test_ecdsa(void **state)
{
	(void)state;
	check_pair("ecdsa", 13, 16588, 10680);
}

static void test_ed25519(void **state)
{
	(void)state;
	check_pair("ed25519", 15, 25959, 29750);
}

static void test_rsa(void **state)
{
	(void)state;
	check_pair("rsa", 8, 25460, 43251);
}

static void test_csk(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	struct drdns_keyset *ks = load("csk", "example.edu.", 0, &diag);
	assert_non_null(ks);
	assert_int_equal(ks->n, 1);
	assert_true(ks->keys[0].ksk);
	assert_int_equal(ks->keys[0].tag, 29843);
	assert_int_equal(ldns_key_flags(ks->keys[0].key), 257);
	assert_signs(&ks->keys[0], "csk", "example.edu.");
	drdns_keyset_free(ks);
	drdns_diag_clear(&diag);
}

/* Zone spelled in any case, with or without the trailing dot. */
static void test_zone_spelling(void **state)
{
	(void)state;
	const char *names[] = {"example.edu", "example.edu.", "EXAMPLE.Edu", "Example.EDU."};
	for (size_t i = 0; i < 4; i++) {
		struct drdns_diag diag = {0};
		struct drdns_keyset *ks = load("ecdsa", names[i], 0, &diag);
		assert_non_null(ks);
		assert_string_equal(ks->zone, "example.edu.");
		assert_int_equal(ks->n, 2);
		drdns_keyset_free(ks);
		drdns_diag_clear(&diag);
	}
}

/* Keys of other zones in the same directory are ignored, and loadable on
 * their own. */
static void test_other_zones(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	struct drdns_keyset *ks = load("ecdsa", "example.com", 0, &diag);
	assert_non_null(ks);
	assert_int_equal(ks->n, 1);
	assert_int_equal(ks->keys[0].tag, 21263);
	assert_true(ks->keys[0].ksk);
	drdns_keyset_free(ks);
	/* sub.example.edu has a lone ZSK: its own error, not example.edu's. */
	ks = load("ecdsa", "sub.example.edu", DRDNS_EDNSSEC, &diag);
	expect_diag(&diag, "ecdsa", "has a single key and it is a ZSK");
	drdns_diag_clear(&diag);
	/* edu: no key files at all. */
	ks = load("ecdsa", "edu", 0, &diag);
	assert_null(ks);
	assert_int_equal(diag.n, 0);
}

static void test_no_keys(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	struct drdns_keyset *ks = load("ecdsa", "other.edu", 0, &diag);
	assert_null(ks);
	assert_int_equal(diag.n, 0);
	ks = load("csk", ".", 0, &diag);
	assert_null(ks);
	assert_int_equal(diag.n, 0);
}

static void test_dnskeys(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	struct drdns_keyset *ks = load("rsa", "example.edu", 0, &diag);
	ldns_rr_list *l = drdns_keyset_dnskeys(ks, 86400);
	assert_non_null(l);
	assert_int_equal(ldns_rr_list_rr_count(l), 2);
	for (size_t i = 0; i < 2; i++) {
		ldns_rr *rr = ldns_rr_list_rr(l, i);
		assert_int_equal(ldns_rr_get_type(rr), LDNS_RR_TYPE_DNSKEY);
		assert_int_equal(ldns_rr_ttl(rr), 86400);
		assert_int_equal(ldns_calc_keytag(rr), ks->keys[i].tag);
		assert_ptr_not_equal(rr, ks->keys[i].dnskey); /* copies */
	}
	assert_true(ldns_is_rrset(l));
	ldns_rr_list_deep_free(l);
	/* A second call with another TTL does not disturb the first's keys. */
	l = drdns_keyset_dnskeys(ks, 60);
	assert_int_equal(ldns_rr_ttl(ldns_rr_list_rr(l, 0)), 60);
	ldns_rr_list_deep_free(l);
	drdns_keyset_free(ks);
	drdns_keyset_free(NULL);
}

/* ---- failure paths ----------------------------------------------------- */

static void test_missing_dir(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("no-such-dir", "example.edu", DRDNS_EDNSSEC, &diag);
	assert_int_equal(diag.n, 1);
	expect_diag(&diag, "no-such-dir", "cannot read key directory: No such file or directory");
	drdns_diag_clear(&diag);
	/* A file, not a directory. */
	load("ecdsa/README", "example.edu", DRDNS_EDNSSEC, &diag);
	expect_diag(&diag, "ecdsa/README", "cannot read key directory: Not a directory");
	drdns_diag_clear(&diag);
}

static void test_missing_private(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("missing-private", "example.edu", DRDNS_EDNSSEC, &diag);
	assert_int_equal(diag.n, 1);
	expect_diag(&diag, "missing-private/Kexample.edu.+013+16588.key",
	            "no matching .private file");
	drdns_diag_clear(&diag);
}

static void test_orphan_private(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("orphan-private", "example.edu", DRDNS_EDNSSEC, &diag);
	assert_int_equal(diag.n, 1);
	expect_diag(&diag, "orphan-private/Kexample.edu.+013+10680.private",
	            "no matching .key file");
	drdns_diag_clear(&diag);
}

static void test_truncated(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("truncated", "example.edu", DRDNS_EDNSSEC, &diag);
	assert_int_equal(diag.n, 1);
	expect_diag(&diag, "truncated/Kexample.edu.+013+16588.private",
	            "cannot parse the private key");
	drdns_diag_clear(&diag);
}

static void test_corrupt(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("corrupt", "example.edu", DRDNS_EDNSSEC, &diag);
	assert_int_equal(diag.n, 1);
	expect_diag(&diag, "corrupt/Kexample.edu.+008+25460.private",
	            "cannot parse the private key");
	drdns_diag_clear(&diag);
}

static void test_mismatch(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("mismatch", "example.edu", DRDNS_EDNSSEC, &diag);
	assert_int_equal(diag.n, 1);
	expect_diag(&diag, "mismatch/Kexample.edu.+013+16588.private",
	            "the private key does not match the DNSKEY in");
	assert_non_null(strstr(diag.msgs[0], "Kexample.edu.+013+16588.key"));
	drdns_diag_clear(&diag);
}

static void test_unsupported(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("unsupported", "example.edu", DRDNS_EDNSSEC, &diag);
	assert_int_equal(diag.n, 1);
	expect_diag(&diag, "unsupported/Kexample.edu.+014+14493.key",
	            "unsupported algorithm 14 (ECDSAP384SHA384)");
	drdns_diag_clear(&diag);
}

static void test_zsk_only(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("zsk-only", "example.edu", DRDNS_EDNSSEC, &diag);
	assert_int_equal(diag.n, 1);
	expect_diag(&diag, "zsk-only",
	            "zone example.edu. has a single key and it is a ZSK (flags 256)");
	drdns_diag_clear(&diag);
}

static void test_ksk_only(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("ksk-only", "example.edu", DRDNS_EDNSSEC, &diag);
	assert_int_equal(diag.n, 1);
	expect_diag(&diag, "ksk-only", "zone example.edu. has no ZSK (flags 256)");
	drdns_diag_clear(&diag);
}

static void test_owner(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("owner", "example.edu", DRDNS_EDNSSEC, &diag);
	assert_int_equal(diag.n, 1);
	expect_diag(&diag, "owner/Kexample.edu.+013+16588.key",
	            "DNSKEY owner example.org. is not the zone example.edu.");
	drdns_diag_clear(&diag);
}

static void test_tag_in_name(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("tagname", "example.edu", DRDNS_EDNSSEC, &diag);
	assert_int_equal(diag.n, 1);
	expect_diag(&diag, "tagname/Kexample.edu.+013+11111.key",
	            "DNSKEY key tag 16588 is not the file name's 11111");
	drdns_diag_clear(&diag);
}

/* Every problem is reported, not only the first. */
static void test_multi(void **state)
{
	(void)state;
	struct drdns_diag diag = {0};
	load("multi", "example.edu", DRDNS_EDNSSEC, &diag);
	expect_diag(&diag, "multi/Kexample.edu.+013+16588.key", "DNSKEY owner example.org.");
	expect_diag(&diag, "multi/Kexample.edu.+013+10680.key", "no matching .private file");
	expect_diag(&diag, "multi/Kexample.edu.+014+14493.key", "unsupported algorithm 14");
	expect_diag(&diag, "multi/Kexample.edu.+13x+1.key", "not a key file name");
	expect_diag(&diag, "multi/Kexample.edu.+015+25959.private",
	            "the private key does not match");
	if (diag.n != 5) {
		dump_diag(&diag);
		fail_msg("%zu diagnostics, want 5", diag.n);
	}
	drdns_diag_clear(&diag);
}

/* ---- cases built in a temporary directory ------------------------------- */

static char *tmpdir_make(void)
{
	char *t = strdup("/tmp/drdns-test-keys-XXXXXX");
	assert_non_null(mkdtemp(t));
	return t;
}

static void tmpdir_rm(char *t)
{
	char *cmd = NULL;
	assert_true(asprintf(&cmd, "rm -rf '%s'", t) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(t);
}

static void copy_file(const char *from_rel, const char *to)
{
	char *from = data_path(from_rel);
	char *cmd = NULL;
	assert_true(asprintf(&cmd, "cp '%s' '%s'", from, to) > 0);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	free(from);
}

/* The name form without the dot (K<zone>+...) is accepted too, and a file
 * name in another case as well. */
static void test_name_forms(void **state)
{
	(void)state;
	char *t = tmpdir_make();
	char *p = NULL;
	assert_true(asprintf(&p, "%s/Kexample.edu+013+16588.key", t) > 0);
	copy_file("keys/ecdsa/Kexample.edu.+013+16588.key", p);
	free(p);
	assert_true(asprintf(&p, "%s/Kexample.edu+013+16588.private", t) > 0);
	copy_file("keys/ecdsa/Kexample.edu.+013+16588.private", p);
	free(p);
	assert_true(asprintf(&p, "%s/KEXAMPLE.EDU.+013+10680.key", t) > 0);
	copy_file("keys/ecdsa/Kexample.edu.+013+10680.key", p);
	free(p);
	assert_true(asprintf(&p, "%s/KEXAMPLE.EDU.+013+10680.private", t) > 0);
	copy_file("keys/ecdsa/Kexample.edu.+013+10680.private", p);
	free(p);

	struct drdns_diag diag = {0};
	struct drdns_keyset *ks = NULL;
	assert_int_equal(drdns_keyset_load(t, "example.edu", &ks, &diag), 0);
	assert_non_null(ks);
	assert_int_equal(ks->n, 2);
	assert_int_equal(ks->keys[0].tag, 16588);
	assert_int_equal(ks->keys[1].tag, 10680);
	drdns_keyset_free(ks);

	/* The same key twice, under two spellings: reported. */
	assert_true(asprintf(&p, "%s/Kexample.edu.+013+16588.key", t) > 0);
	copy_file("keys/ecdsa/Kexample.edu.+013+16588.key", p);
	free(p);
	assert_int_equal(drdns_keyset_load(t, "example.edu", &ks, &diag), DRDNS_EDNSSEC);
	assert_null(ks);
	assert_int_equal(diag.n, 1);
	assert_non_null(strstr(diag.msgs[0], "a second file for key 16588 algorithm 13"));
	drdns_diag_clear(&diag);
	tmpdir_rm(t);
}

/* A .private that is not a regular file; a .key that is not a DNSKEY. */
static void test_unreadable(void **state)
{
	(void)state;
	char *t = tmpdir_make();
	char *p = NULL;
	assert_true(asprintf(&p, "%s/Kexample.edu.+013+29843.key", t) > 0);
	copy_file("keys/csk/Kexample.edu.+013+29843.key", p);
	free(p);
	assert_true(asprintf(&p, "%s/Kexample.edu.+013+29843.private", t) > 0);
	assert_int_equal(mkdir(p, 0700), 0);

	struct drdns_diag diag = {0};
	struct drdns_keyset *ks = NULL;
	assert_int_equal(drdns_keyset_load(t, "example.edu", &ks, &diag), DRDNS_EDNSSEC);
	assert_null(ks);
	assert_int_equal(diag.n, 1);
	char *want = NULL;
	assert_true(asprintf(&want, "%s: not a regular file", p) > 0);
	assert_string_equal(diag.msgs[0], want);
	free(want);
	drdns_diag_clear(&diag);
	assert_int_equal(rmdir(p), 0);
	copy_file("keys/csk/Kexample.edu.+013+29843.private", p);
	free(p);

	/* A .key holding something else than one DNSKEY record. */
	assert_true(asprintf(&p, "%s/Kexample.edu.+013+29843.key", t) > 0);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("; comment\nexample.edu. IN A 192.0.2.1\n", f);
	fclose(f);
	assert_int_equal(drdns_keyset_load(t, "example.edu", &ks, &diag), DRDNS_EDNSSEC);
	assert_int_equal(diag.n, 1);
	assert_non_null(strstr(diag.msgs[0], "Kexample.edu.+013+29843.key: the record is A, "
	                                     "not DNSKEY"));
	drdns_diag_clear(&diag);

	f = fopen(p, "w");
	assert_non_null(f);
	fputs("example.edu. IN DNSKEY 257 3 13 !!!\n", f);
	fclose(f);
	assert_int_equal(drdns_keyset_load(t, "example.edu", &ks, &diag), DRDNS_EDNSSEC);
	assert_int_equal(diag.n, 1);
	assert_non_null(strstr(diag.msgs[0], "Kexample.edu.+013+29843.key: line 1: cannot parse "
	                                     "the DNSKEY record"));
	drdns_diag_clear(&diag);

	f = fopen(p, "w");
	assert_non_null(f);
	fputs("; only a comment\n", f);
	fclose(f);
	assert_int_equal(drdns_keyset_load(t, "example.edu", &ks, &diag), DRDNS_EDNSSEC);
	assert_int_equal(diag.n, 1);
	assert_non_null(strstr(diag.msgs[0], "Kexample.edu.+013+29843.key: no DNSKEY record"));
	drdns_diag_clear(&diag);
	free(p);

	/* A .private without the format line. */
	assert_true(asprintf(&p, "%s/Kexample.edu.+013+29843.key", t) > 0);
	copy_file("keys/csk/Kexample.edu.+013+29843.key", p);
	free(p);
	assert_true(asprintf(&p, "%s/Kexample.edu.+013+29843.private", t) > 0);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("hello\n", f);
	fclose(f);
	free(p);
	assert_int_equal(drdns_keyset_load(t, "example.edu", &ks, &diag), DRDNS_EDNSSEC);
	assert_int_equal(diag.n, 1);
	assert_non_null(strstr(diag.msgs[0], "Kexample.edu.+013+29843.private: not a BIND "
	                                     "private key file"));
	drdns_diag_clear(&diag);
	tmpdir_rm(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ecdsa),
	    cmocka_unit_test(test_ed25519),
	    cmocka_unit_test(test_rsa),
	    cmocka_unit_test(test_csk),
	    cmocka_unit_test(test_zone_spelling),
	    cmocka_unit_test(test_other_zones),
	    cmocka_unit_test(test_no_keys),
	    cmocka_unit_test(test_dnskeys),
	    cmocka_unit_test(test_missing_dir),
	    cmocka_unit_test(test_missing_private),
	    cmocka_unit_test(test_orphan_private),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_corrupt),
	    cmocka_unit_test(test_mismatch),
	    cmocka_unit_test(test_unsupported),
	    cmocka_unit_test(test_zsk_only),
	    cmocka_unit_test(test_ksk_only),
	    cmocka_unit_test(test_owner),
	    cmocka_unit_test(test_tag_in_name),
	    cmocka_unit_test(test_multi),
	    cmocka_unit_test(test_name_forms),
	    cmocka_unit_test(test_unreadable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
