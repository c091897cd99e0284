/*
 * Unit tests for include/drdns/serial.h (RFC 1982 serial arithmetic).
 *
 * Written from the header contract; the expected values are worked out by
 * hand (and, for the property test, by an independent brute-force oracle).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "drdns/error.h"
#include "drdns/serial.h"

#define HALF 0x80000000u

/* ---- drdns_serial_cmp / gt / add ------------------------------------- */

static int cmp_ok(uint32_t a, uint32_t b)
{
	int r = 99;
	assert_int_equal(drdns_serial_cmp(a, b, &r), 0);
	assert_true(r == -1 || r == 0 || r == 1);
	return r;
}

static void test_cmp_basic(void **state)
{
	(void)state;
	assert_int_equal(cmp_ok(1, 2), -1);
	assert_int_equal(cmp_ok(2, 1), 1);
	assert_int_equal(cmp_ok(7, 7), 0);
	assert_int_equal(cmp_ok(0, 0), 0);
	assert_int_equal(cmp_ok(0xFFFFFFFFu, 0xFFFFFFFFu), 0);
}

static void test_cmp_wrap(void **state)
{
	(void)state;
	/* 0xFFFFFFFF + 1 == 0, so 0xFFFFFFFF < 0 */
	assert_int_equal(cmp_ok(0xFFFFFFFFu, 0), -1);
	assert_int_equal(cmp_ok(0, 0xFFFFFFFFu), 1);
	/* largest defined forward distance */
	assert_int_equal(cmp_ok(0, 0x7FFFFFFFu), -1);
	assert_int_equal(cmp_ok(0x7FFFFFFFu, 0), 1);
	/* just beyond half: the order flips */
	assert_int_equal(cmp_ok(0, 0x80000001u), 1);
	assert_int_equal(cmp_ok(0x80000001u, 0), -1);
	assert_int_equal(cmp_ok(0xFFFFFFF0u, 5), -1);
	assert_int_equal(cmp_ok(5, 0xFFFFFFF0u), 1);
	assert_int_equal(cmp_ok(0x7FFFFFFFu, 0x80000000u), -1);
}

static void test_cmp_undefined(void **state)
{
	(void)state;
	int r = 42;
	assert_int_equal(drdns_serial_cmp(0, 0x80000000u, &r), DRDNS_ESERIAL);
	assert_int_equal(drdns_serial_cmp(0x80000000u, 0, &r), DRDNS_ESERIAL);
	assert_int_equal(drdns_serial_cmp(12345, 12345u + HALF, &r), DRDNS_ESERIAL);
	assert_int_equal(drdns_serial_cmp(0xFFFFFFFFu, 0x7FFFFFFFu, &r), DRDNS_ESERIAL);
}

static void test_gt(void **state)
{
	(void)state;
	assert_true(drdns_serial_gt(2, 1));
	assert_false(drdns_serial_gt(1, 2));
	assert_false(drdns_serial_gt(5, 5));
	assert_true(drdns_serial_gt(0, 0xFFFFFFFFu));
	assert_false(drdns_serial_gt(0xFFFFFFFFu, 0));
	assert_true(drdns_serial_gt(0x7FFFFFFFu, 0));
	/* undefined: false both ways */
	assert_false(drdns_serial_gt(0x80000000u, 0));
	assert_false(drdns_serial_gt(0, 0x80000000u));
	assert_false(drdns_serial_gt(100u + HALF, 100));
	assert_false(drdns_serial_gt(100, 100u + HALF));
}

static void test_add(void **state)
{
	(void)state;
	uint32_t out = 0xDEADBEEFu;
	assert_int_equal(drdns_serial_add(10, 5, &out), 0);
	assert_int_equal(out, 15);
	assert_int_equal(drdns_serial_add(0xFFFFFFFFu, 1, &out), 0);
	assert_int_equal(out, 0);
	assert_int_equal(drdns_serial_add(0xFFFFFFF0u, 0x20, &out), 0);
	assert_int_equal(out, 0x10);
	assert_int_equal(drdns_serial_add(7, 0, &out), 0);
	assert_int_equal(out, 7);
	assert_int_equal(drdns_serial_add(1, 0x7FFFFFFFu, &out), 0);
	assert_int_equal(out, 0x80000000u);
	/* n >= 2^31 refused */
	out = 0xDEADBEEFu;
	assert_int_equal(drdns_serial_add(1, 0x80000000u, &out), DRDNS_ESERIAL);
	assert_int_equal(drdns_serial_add(1, 0x80000001u, &out), DRDNS_ESERIAL);
	assert_int_equal(drdns_serial_add(0, 0xFFFFFFFFu, &out), DRDNS_ESERIAL);
}

/* ---- drdns_serial_next ---------------------------------------------- */

static uint32_t next_ok(const uint32_t *obs, size_t n, uint32_t floor)
{
	uint32_t out = 0xDEADBEEFu;
	const char *why = NULL;
	int rc = drdns_serial_next(obs, n, floor, &out, &why);
	if (rc != 0)
		fail_msg("serial_next failed rc=%d why=%s", rc, why ? why : "(null)");
	return out;
}

static void next_refused(const uint32_t *obs, size_t n, uint32_t floor)
{
	uint32_t out = 0xDEADBEEFu;
	const char *why = NULL;
	assert_int_equal(drdns_serial_next(obs, n, floor, &out, &why), DRDNS_ESERIAL);
	assert_non_null(why);
	assert_true(strlen(why) > 0);
}

static void test_next_simple(void **state)
{
	(void)state;
	uint32_t obs[] = {5, 3, 7, 6};
	assert_int_equal(next_ok(obs, 4, 1), 8);
	uint32_t one[] = {2024010100u};
	assert_int_equal(next_ok(one, 1, 0), 2024010101u);
	uint32_t dup[] = {5, 5, 5};
	assert_int_equal(next_ok(dup, 3, 0), 6);
}

static void test_next_wrap(void **state)
{
	(void)state;
	uint32_t obs[] = {0xFFFFFFFFu};
	/* floor lower than the observed serial (RFC 1982) */
	assert_int_equal(next_ok(obs, 1, 0xFFFFFF00u), 0);
	/* floor equal to max+1 */
	assert_int_equal(next_ok(obs, 1, 0), 0);
	uint32_t obs2[] = {0xFFFFFFFEu, 0xFFFFFFFFu};
	assert_int_equal(next_ok(obs2, 2, 1), 1); /* floor 1 > 0 = max+1 */
}

static void test_next_mixed_wrap(void **state)
{
	(void)state;
	uint32_t obs[] = {0xFFFFFFF0u, 5};
	assert_int_equal(next_ok(obs, 2, 1), 6);
	uint32_t obs_rev[] = {5, 0xFFFFFFF0u};
	assert_int_equal(next_ok(obs_rev, 2, 1), 6);
	uint32_t obs3[] = {0x7FFFFFF0u, 0x80000010u, 0xA0000000u};
	assert_int_equal(next_ok(obs3, 3, 1), 0xA0000001u);
}

static void test_next_floor_higher(void **state)
{
	(void)state;
	uint32_t obs[] = {100, 90};
	assert_int_equal(next_ok(obs, 2, 1000), 1000);
	/* floor across the wrap, still a valid step */
	uint32_t obs2[] = {0xFFFFFFF0u};
	assert_int_equal(next_ok(obs2, 1, 10), 10);
	/* the largest valid step: exactly 2^31-1 above the single observed */
	uint32_t obs3[] = {100};
	assert_int_equal(next_ok(obs3, 1, 100u + 0x7FFFFFFFu), 100u + 0x7FFFFFFFu);
}

static void test_next_floor_lower_ignored(void **state)
{
	(void)state;
	uint32_t obs[] = {100};
	assert_int_equal(next_ok(obs, 1, 50), 101);
	assert_int_equal(next_ok(obs, 1, 100), 101);
	assert_int_equal(next_ok(obs, 1, 101), 101);
}

static void test_next_floor_too_far_ignored(void **state)
{
	(void)state;
	uint32_t obs[] = {100};
	/* exactly 2^31 above: undefined against 100 */
	assert_int_equal(next_ok(obs, 1, 100u + HALF), 101);
	/* 2^31 + 1 above: RFC 1982 says it is below 100 */
	assert_int_equal(next_ok(obs, 1, 100u + HALF + 1), 101);
	/* above the newest but 2^31 or more above an older observed serial */
	uint32_t obs2[] = {100, 0x70000000u};
	assert_int_equal(next_ok(obs2, 2, 100u + HALF), 0x70000001u);
	assert_int_equal(next_ok(obs2, 2, 100u + HALF + 12), 0x70000001u);
	/* but 2^31-1 above the oldest is a valid step */
	assert_int_equal(next_ok(obs2, 2, 100u + 0x7FFFFFFFu), 100u + 0x7FFFFFFFu);
}

static void test_next_undefined_pair(void **state)
{
	(void)state;
	uint32_t obs[] = {1000, 1000u + HALF};
	next_refused(obs, 2, 1);
	uint32_t obs2[] = {0, 0x80000000u, 5};
	next_refused(obs2, 3, 0);
	/* a high floor does not rescue an undefined observed pair */
	next_refused(obs, 2, 1000u + 0x7FFFFFFFu);
}

static void test_next_span_too_wide(void **state)
{
	(void)state;
	/* x and x + 2^31 - 1: x+2^31-1 is the newest, but +1 is undefined against x */
	uint32_t obs[] = {1000, 1000u + 0x7FFFFFFFu};
	next_refused(obs, 2, 1);
	uint32_t obs_wrap[] = {0xF0000000u, 0xF0000000u + 0x7FFFFFFFu};
	next_refused(obs_wrap, 2, 0);
	/* one less is fine: the answer is exactly 2^31-1 above the oldest */
	uint32_t ok[] = {1000, 1000u + 0x7FFFFFFEu};
	assert_int_equal(next_ok(ok, 2, 1), 1000u + 0x7FFFFFFFu);
}

static void test_next_empty(void **state)
{
	(void)state;
	assert_int_equal(next_ok(NULL, 0, 42), 42);
	uint32_t dummy[] = {7};
	assert_int_equal(next_ok(dummy, 0, 0xFFFFFFFFu), 0xFFFFFFFFu);
	assert_int_equal(next_ok(dummy, 0, 0), 0);
}

/* Oracle: independent brute force over the candidates. */
static int oracle_next(const uint32_t *obs, size_t n, uint32_t floor, uint32_t *out)
{
	if (n == 0) {
		*out = floor;
		return 0;
	}
	/* floor, when it is a valid step (distance 1..2^31-1) above every observed */
	bool floor_ok = true;
	for (size_t i = 0; i < n; i++) {
		uint32_t d = floor - obs[i];
		if (d == 0 || d >= HALF)
			floor_ok = false;
	}
	/* the newest m: every other observed is 0..2^31-2 below it (so m+1 is valid) */
	bool have_m = false;
	uint32_t m = 0;
	for (size_t j = 0; j < n && !have_m; j++) {
		bool all = true;
		for (size_t i = 0; i < n; i++) {
			uint32_t d = obs[j] - obs[i];
			if (d > 0x7FFFFFFEu)
				all = false;
		}
		if (all) {
			have_m = true;
			m = obs[j];
		}
	}
	if (!have_m)
		return -1;
	*out = floor_ok ? floor : m + 1;
	return 0;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd32(void)
{
	/* xorshift64*, deterministic */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static uint32_t rnd_offset(void)
{
	switch (rnd32() % 6) {
	case 0: return rnd32() % 16;
	case 1: return rnd32() % 100000;
	case 2: return rnd32() % 0x7FFFFFFFu;
	case 3: return 0x7FFFFFFEu - rnd32() % 4; /* near the span limit */
	case 4: return 0x80000000u + rnd32() % 3; /* at or just past half */
	default: return rnd32();
	}
}

static void test_next_property(void **state)
{
	(void)state;
	unsigned ok_count = 0, refused_count = 0;
	for (int iter = 0; iter < 200000; iter++) {
		uint32_t obs[6];
		size_t n = 1 + rnd32() % 6;
		uint32_t base = rnd32();
		if (iter % 7 == 0)
			base = 0xFFFFFFFFu - rnd32() % 64; /* near the wrap */
		for (size_t i = 0; i < n; i++) {
			obs[i] = base;
			if (i > 0)
				obs[i] = base + ((rnd32() & 1) ? rnd_offset() : rnd32() % 1000);
		}
		uint32_t floor = (rnd32() & 1) ? base + rnd_offset() : rnd32();

		uint32_t want = 0, got = 0xDEADBEEFu;
		const char *why = NULL;
		int orc = oracle_next(obs, n, floor, &want);
		int rc = drdns_serial_next(obs, n, floor, &got, &why);
		if (orc < 0) {
			if (rc != DRDNS_ESERIAL)
				fail_msg("iter %d: expected refusal, got rc=%d out=%u", iter, rc,
				         got);
			assert_non_null(why);
			refused_count++;
			continue;
		}
		if (rc != 0)
			fail_msg("iter %d: n=%zu obs0=%u floor=%u: rc=%d why=%s", iter, n, obs[0],
			         floor, rc, why ? why : "(null)");
		for (size_t i = 0; i < n; i++) {
			if (!drdns_serial_gt(got, obs[i]))
				fail_msg("iter %d: result %u not > observed %u", iter, got, obs[i]);
			if ((uint32_t)(got - obs[i]) >= HALF)
				fail_msg("iter %d: step %u -> %u is >= 2^31", iter, obs[i], got);
		}
		if (got != want)
			fail_msg("iter %d: n=%zu floor=%u: got %u want %u", iter, n, floor, got,
			         want);
		ok_count++;
	}
	/* the generator must exercise both outcomes */
	assert_true(ok_count > 10000);
	assert_true(refused_count > 10000);
}

/* ---- drdns_serial_failback ------------------------------------------- */

static void test_failback_master_ahead(void **state)
{
	(void)state;
	uint32_t target = 1, inter = 1;
	bool two = true;
	drdns_serial_failback(200, 100, &target, &two, &inter);
	assert_false(two);
	assert_int_equal(target, 200);
	/* master ahead across the wrap */
	two = true;
	drdns_serial_failback(3, 0xFFFFFFF0u, &target, &two, &inter);
	assert_false(two);
	assert_int_equal(target, 3);
}

static void test_failback_master_behind_small(void **state)
{
	(void)state;
	uint32_t target = 0, inter = 0;
	bool two = true;
	drdns_serial_failback(100, 200, &target, &two, &inter);
	assert_false(two);
	assert_int_equal(target, 201);
	two = true;
	drdns_serial_failback(150, 150, &target, &two, &inter); /* equal: not ahead */
	assert_false(two);
	assert_int_equal(target, 151);
	two = true;
	drdns_serial_failback(0xFFFFFFF0u, 5, &target, &two, &inter);
	assert_false(two);
	assert_int_equal(target, 6);
	two = true;
	drdns_serial_failback(100, 100u + 0x7FFFFFFEu, &target, &two, &inter);
	/* current = 100 + 2^31 - 2 ahead of master: target = 100 + 2^31 - 1, a valid step */
	assert_false(two);
	assert_int_equal(target, 100u + 0x7FFFFFFFu);
}

static void test_failback_two_step(void **state)
{
	(void)state;
	uint32_t target = 0, inter = 0;
	bool two = false;
	/* current exactly 2^31-1 ahead: target (current+1) is 2^31 above master */
	uint32_t master = 100, current = 100u + 0x7FFFFFFFu;
	drdns_serial_failback(master, current, &target, &two, &inter);
	assert_true(two);
	assert_int_equal(target, current + 1);
	assert_int_equal(inter, master + 0x7FFFFFFFu);
	assert_true(drdns_serial_gt(inter, master));
	assert_true(drdns_serial_gt(target, inter));

	/* current exactly 2^31 from master (undefined): not ahead, two steps */
	two = false;
	master = 0xFFFFFF00u;
	current = master + HALF;
	drdns_serial_failback(master, current, &target, &two, &inter);
	assert_true(two);
	assert_int_equal(target, current + 1);
	assert_int_equal(inter, master + 0x7FFFFFFFu);
	assert_true(drdns_serial_gt(inter, master));
	assert_true(drdns_serial_gt(target, inter));
	assert_true(drdns_serial_gt(target, current));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cmp_basic),
	    cmocka_unit_test(test_cmp_wrap),
	    cmocka_unit_test(test_cmp_undefined),
	    cmocka_unit_test(test_gt),
	    cmocka_unit_test(test_add),
	    cmocka_unit_test(test_next_simple),
	    cmocka_unit_test(test_next_wrap),
	    cmocka_unit_test(test_next_mixed_wrap),
	    cmocka_unit_test(test_next_floor_higher),
	    cmocka_unit_test(test_next_floor_lower_ignored),
	    cmocka_unit_test(test_next_floor_too_far_ignored),
	    cmocka_unit_test(test_next_undefined_pair),
	    cmocka_unit_test(test_next_span_too_wide),
	    cmocka_unit_test(test_next_empty),
	    cmocka_unit_test(test_next_property),
	    cmocka_unit_test(test_failback_master_ahead),
	    cmocka_unit_test(test_failback_master_behind_small),
	    cmocka_unit_test(test_failback_two_step),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
