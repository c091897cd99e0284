/*
 * Logging: one line per event, syslog levels, a group ("ctl", "probe",
 * "failover", "xfr", "notify", "server", "zone", "conf") and key=value fields
 * a person can grep, e.g.
 *   drdns_log(DRDNS_LOG_NOTICE, "xfr", "axfr zone=%s peer=%s rrs=%zu", ...);
 */
#ifndef DRDNS_LOG_H
#define DRDNS_LOG_H

#include <stdbool.h>
#include <syslog.h>

enum drdns_log_level {
	DRDNS_LOG_ERR = LOG_ERR,
	DRDNS_LOG_WARNING = LOG_WARNING,
	DRDNS_LOG_NOTICE = LOG_NOTICE,
	DRDNS_LOG_INFO = LOG_INFO,
	DRDNS_LOG_DEBUG = LOG_DEBUG,
};

/* Log to syslog (use_syslog) or to stderr.  Messages above max_level are dropped.
 * Before this is called, logging goes to stderr at NOTICE. */
void drdns_log_init(const char *ident, bool use_syslog, int max_level);

void drdns_log(int level, const char *group, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
