/*
 * SOA serial arithmetic, RFC 1982 (SERIAL_BITS = 32).
 *
 * s1 < s2 when (s1 < s2 and s2 - s1 < 2^31) or (s1 > s2 and s1 - s2 > 2^31).
 * When the two differ by exactly 2^31 the comparison is undefined: drdns never
 * relies on it and refuses instead.
 */
#ifndef DRDNS_SERIAL_H
#define DRDNS_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DRDNS_SERIAL_HALF 0x80000000u /* 2^31 */

/* Compare a and b.  Sets *result to -1, 0 or 1 and returns 0, or returns
 * DRDNS_ESERIAL when the comparison is undefined (they differ by 2^31). */
int drdns_serial_cmp(uint32_t a, uint32_t b, int *result);

/* a > b, strictly and defined (false when undefined). */
bool drdns_serial_gt(uint32_t a, uint32_t b);

/* a + n with n in [0, 2^31-1] (RFC 1982 addition).  n out of range -> DRDNS_ESERIAL. */
int drdns_serial_add(uint32_t a, uint32_t n, uint32_t *out);

/*
 * The serial to publish at promotion: the smallest serial strictly greater than
 * every observed serial (the newest observed plus one), or floor when floor is
 * greater still and also a valid step above every observed serial.
 *
 * Fails with DRDNS_ESERIAL when the observed serials span 2^31 or more (no
 * serial is greater than all of them) or include an undefined pair; *why then
 * points at a static explanation.  n == 0 returns floor.
 */
int drdns_serial_next(const uint32_t *observed, size_t n, uint32_t floor, uint32_t *out,
                      const char **why);

/*
 * Failback plan: the smallest serial the master must publish so that every
 * secondary holding `current` accepts it: `master` itself when it is already
 * greater than current (RFC 1982), else current + 1.  *two_step is set when
 * `master` is not already ahead and the distance from master to the target is
 * 2^31 or more, so the master must first step to *intermediate (master + 2^31 - 1)
 * and let it propagate.
 */
void drdns_serial_failback(uint32_t master, uint32_t current, uint32_t *target, bool *two_step,
                           uint32_t *intermediate);

#endif
