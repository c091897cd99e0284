/*
 * Helpers shared by the cmocka unit tests.  Include after <cmocka.h>.
 */
#ifndef DRDNS_TESTUTIL_H
#define DRDNS_TESTUTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Path of a fixture: $DRDNS_TEST_DATA/name (meson sets it), else
 * tests/unit/data/name.  Caller frees. */
static inline char *data_path(const char *name)
{
	const char *base = getenv("DRDNS_TEST_DATA");
	if (!base || !*base)
		base = "tests/unit/data";
	char *p = NULL;
	assert_true(asprintf(&p, "%s/%s", base, name) > 0);
	return p;
}

/* Number of entries in dir, not counting "." and "..". */
static inline size_t dir_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

#endif
