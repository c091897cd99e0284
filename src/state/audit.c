#include "drdns/audit.h"
#include "drdns/error.h"
#include "drdns/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int drdns_audit_append(const char *path, const json_t *record)
{
	json_t *copy = json_deep_copy(record);
	if (!copy)
		return DRDNS_ENOMEM;
	if (!json_object_get(copy, "time")) {
		char when[32];
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		json_object_set_new(copy, "time", json_string(when));
	}
	char *line = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(copy);
	if (!line)
		return DRDNS_ENOMEM;
	char *dir = drdns_dirname(path);
	if (dir)
		drdns_mkdir_p(dir, 0750);
	free(dir);
	int ret = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		ret = -errno;
	} else {
		size_t len = strlen(line);
		line[len] = '\n'; /* replaces the terminator: one write, one line */
		ssize_t w;
		do
			w = write(fd, line, len + 1);
		while (w < 0 && errno == EINTR);
		if (w < 0 || fsync(fd) < 0)
			ret = -errno;
		else if (w != (ssize_t)(len + 1)) /* short write (disk full): errno is not set */
			ret = DRDNS_EIO;
		if (close(fd) < 0 && ret == 0)
			ret = -errno;
	}
	free(line);
	return ret;
}
