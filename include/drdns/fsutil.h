/*
 * Crash-safe files.  drdns_write_atomic() writes a temporary file in the same
 * directory, fsyncs it, renames it over the target and fsyncs the directory,
 * so a reader sees either the old content or the new, never a mix.
 */
#ifndef DRDNS_FSUTIL_H
#define DRDNS_FSUTIL_H

#include <stddef.h>

/* Replace path with len bytes of data, atomically and durably.  mode is the file mode. */
int drdns_write_atomic(const char *path, const void *data, size_t len, unsigned mode);
/* fsync a directory. */
int drdns_fsync_dir(const char *dir);
/* mkdir -p with mode; existing directories are fine. */
int drdns_mkdir_p(const char *path, unsigned mode);
/* Read a whole file into a NUL-terminated buffer (caller frees *out). */
int drdns_read_file(const char *path, char **out, size_t *len);
/* Remove a directory tree (used for abandoned generation directories). */
int drdns_rm_rf(const char *path);
/* path joined to base when relative; always a new string (caller frees). */
char *drdns_path_resolve(const char *base_dir, const char *path);
/* Directory part of path, newly allocated ("." if none). */
char *drdns_dirname(const char *path);

#endif
