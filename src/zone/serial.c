#include "drdns/serial.h"
#include "drdns/error.h"

int drdns_serial_cmp(uint32_t a, uint32_t b, int *result)
{
	uint32_t d = b - a; /* distance from a up to b, modulo 2^32 */
	if (d == 0) {
		*result = 0;
		return 0;
	}
	if (d == DRDNS_SERIAL_HALF)
		return DRDNS_ESERIAL;
	*result = d < DRDNS_SERIAL_HALF ? -1 : 1;
	return 0;
}

bool drdns_serial_gt(uint32_t a, uint32_t b)
{
	int r;
	return drdns_serial_cmp(a, b, &r) == 0 && r > 0;
}

int drdns_serial_add(uint32_t a, uint32_t n, uint32_t *out)
{
	if (n >= DRDNS_SERIAL_HALF)
		return DRDNS_ESERIAL;
	*out = a + n;
	return 0;
}

/* candidate is a valid next serial: strictly greater than every observed one. */
static bool above_all(uint32_t candidate, const uint32_t *observed, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!drdns_serial_gt(candidate, observed[i]))
			return false;
	return true;
}

int drdns_serial_next(const uint32_t *observed, size_t n, uint32_t floor, uint32_t *out,
                      const char **why)
{
	static const char *undefined =
	    "observed serials differ by exactly 2^31: their order is undefined (RFC 1982)";
	static const char *span =
	    "observed serials span 2^31-1 or more: no serial is greater than all of them";
	if (n == 0) {
		*out = floor;
		return 0;
	}
	uint32_t newest = observed[0];
	for (size_t i = 1; i < n; i++) {
		int r;
		if (drdns_serial_cmp(observed[i], newest, &r) < 0) {
			*why = undefined;
			return DRDNS_ESERIAL;
		}
		if (r > 0)
			newest = observed[i];
	}
	/* RFC 1982 order is not transitive: check newest really is >= every one. */
	for (size_t i = 0; i < n; i++) {
		int r;
		if (drdns_serial_cmp(observed[i], newest, &r) < 0) {
			*why = undefined;
			return DRDNS_ESERIAL;
		}
		if (r > 0) {
			*why = span;
			return DRDNS_ESERIAL;
		}
	}
	uint32_t next = newest + 1;
	if (!above_all(next, observed, n)) {
		*why = span;
		return DRDNS_ESERIAL;
	}
	if (drdns_serial_gt(floor, next) && above_all(floor, observed, n))
		next = floor;
	*out = next;
	return 0;
}

void drdns_serial_failback(uint32_t master, uint32_t current, uint32_t *target, bool *two_step,
                           uint32_t *intermediate)
{
	*two_step = false;
	*intermediate = master;
	if (drdns_serial_gt(master, current)) {
		*target = master;
		return;
	}
	*target = current + 1;
	if ((uint32_t)(*target - master) >= DRDNS_SERIAL_HALF) {
		*two_step = true;
		*intermediate = master + (DRDNS_SERIAL_HALF - 1);
	}
}
