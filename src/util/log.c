#include "drdns/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static bool log_syslog;
static int log_max = DRDNS_LOG_NOTICE;
static const char *log_ident = "drdns";

void drdns_log_init(const char *ident, bool use_syslog, int max_level)
{
	log_ident = ident;
	log_syslog = use_syslog;
	log_max = max_level;
	if (use_syslog)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

static const char *level_name(int level)
{
	switch (level) {
	case DRDNS_LOG_ERR: return "error";
	case DRDNS_LOG_WARNING: return "warning";
	case DRDNS_LOG_NOTICE: return "notice";
	case DRDNS_LOG_INFO: return "info";
	default: return "debug";
	}
}

void drdns_log(int level, const char *group, const char *fmt, ...)
{
	if (level > log_max)
		return;
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_syslog) {
		syslog(level, "[%s] %s", group, msg);
		return;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char when[32];
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s %s [%s] %s\n", when, ts.tv_nsec / 1000000L, log_ident,
	        level_name(level), group, msg);
}
