#include "drdns/fsutil.h"
#include "drdns/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int drdns_fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int ret = fsync(fd) < 0 ? -errno : 0;
	close(fd);
	return ret;
}

int drdns_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char *tmp = NULL;
	char *dir = NULL;
	int fd = -1;
	int ret = 0;

	if (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0)
		return DRDNS_ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		ret = -errno;
		goto cleanup;
	}
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto cleanup;
		}
		p += w;
		left -= (size_t)w;
	}
	if (fsync(fd) < 0) {
		ret = -errno;
		goto cleanup; /* closes fd */
	}
	int closed = close(fd);
	fd = -1;
	if (closed < 0) {
		ret = -errno;
		goto cleanup;
	}
	if (rename(tmp, path) < 0) {
		ret = -errno;
		goto cleanup;
	}
	dir = drdns_dirname(path);
	ret = dir ? drdns_fsync_dir(dir) : DRDNS_ENOMEM;
cleanup:
	if (fd >= 0)
		close(fd);
	if (ret < 0)
		unlink(tmp);
	free(tmp);
	free(dir);
	return ret;
}

int drdns_mkdir_p(const char *path, unsigned mode)
{
	if (!path[0])
		return -ENOENT;
	char *copy = strdup(path);
	if (!copy)
		return DRDNS_ENOMEM;
	int ret = 0;
	for (char *p = copy + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char saved = *p;
			*p = '\0';
			if (mkdir(copy, mode) < 0 && errno != EEXIST) {
				ret = -errno;
				break;
			}
			*p = saved;
			if (saved == '\0')
				break;
		}
	}
	free(copy);
	if (ret == 0) {
		struct stat st;
		if (stat(path, &st) < 0)
			ret = -errno;
		else if (!S_ISDIR(st.st_mode))
			ret = -ENOTDIR;
	}
	return ret;
}

int drdns_read_file(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return -errno;
	char *buf = NULL;
	size_t size = 0, cap = 0;
	int ret = 0;
	for (;;) {
		if (cap - size < 4096) {
			cap = cap ? cap * 2 : 8192;
			char *grown = realloc(buf, cap);
			if (!grown) {
				ret = DRDNS_ENOMEM;
				break;
			}
			buf = grown;
		}
		size_t r = fread(buf + size, 1, cap - size - 1, f);
		size += r;
		if (r == 0) {
			if (ferror(f))
				ret = DRDNS_EIO;
			break;
		}
	}
	fclose(f);
	if (ret < 0) {
		free(buf);
		return ret;
	}
	buf[size] = '\0';
	*out = buf;
	if (len)
		*len = size;
	return 0;
}

int drdns_rm_rf(const char *path)
{
	/* never follow a symlink: remove the link, not what it points to */
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		if (errno == ENOTDIR || errno == ELOOP)
			return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
		return -errno;
	}
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return -e;
	}
	struct dirent *e;
	int ret = 0;
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		char *child = NULL;
		if (asprintf(&child, "%s/%s", path, e->d_name) < 0) {
			ret = DRDNS_ENOMEM;
			break;
		}
		struct stat st;
		if (lstat(child, &st) == 0 && S_ISDIR(st.st_mode))
			ret = drdns_rm_rf(child);
		else if (unlink(child) < 0)
			ret = -errno;
		free(child);
		if (ret < 0)
			break;
	}
	closedir(d);
	if (ret == 0 && rmdir(path) < 0)
		ret = -errno;
	return ret;
}

char *drdns_path_resolve(const char *base_dir, const char *path)
{
	if (path[0] == '/' || !base_dir)
		return strdup(path);
	char *out = NULL;
	if (asprintf(&out, "%s/%s", base_dir, path) < 0)
		return NULL;
	return out;
}

char *drdns_dirname(const char *path)
{
	char *copy = strdup(path);
	if (!copy)
		return NULL;
	char *out = strdup(dirname(copy));
	free(copy);
	return out;
}
