/* Log lines on stderr (cloudfs/log.h): timestamped for a log file, plain
 * for a person at a terminal, with a priority for the journal. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cloudfs/log.h"

static const char *log_prog = "cloudfs";
static enum cfs_log_level log_level = CFS_LOG_INFO;
static bool log_syslog;

static const char *const level_names[] = {
	[CFS_LOG_ERROR] = "error",
	[CFS_LOG_WARN] = "warning",
	[CFS_LOG_INFO] = "info",
	[CFS_LOG_DEBUG] = "debug",
};

static const int priorities[] = {
	[CFS_LOG_ERROR] = LOG_ERR,
	[CFS_LOG_WARN] = LOG_WARNING,
	[CFS_LOG_INFO] = LOG_INFO,
	[CFS_LOG_DEBUG] = LOG_DEBUG,
};

void cfs_log_init(const char *prog, enum cfs_log_level level)
{
	log_prog = prog;
	log_level = level;
}

void cfs_log_syslog(void)
{
	openlog(log_prog, LOG_PID, LOG_DAEMON);
	log_syslog = true;
}

/* systemd.exec(5): JOURNAL_STREAM names the journal's stream as
 * "DEVICE:INODE"; stderr is that stream only while they match (not once
 * redirected to a file, nor in a child given another stderr).  The
 * journal stamps and names lines itself. */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	return js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
	       fstat(STDERR_FILENO, &st) == 0 && st.st_dev == dev &&
	       st.st_ino == ino;
}

void cfs_log(enum cfs_log_level level, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if (level > log_level)
		return;
	/* Asked each time: a daemon's stderr turns from the terminal it
	 * started on into its log file. */
	if (stderr_is_journal()) {
		/* sd-daemon(3)'s "<N>" prefix: the journal keeps the level. */
		n = snprintf(line, sizeof(line), "<%d>", priorities[level]);
	} else if (isatty(STDERR_FILENO)) {
		n = level == CFS_LOG_ERROR
			    ? snprintf(line, sizeof(line), "%s: ", log_prog)
			    : snprintf(line, sizeof(line), "%s: %s: ", log_prog,
				       level_names[level]);
	} else {
		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = snprintf(line, sizeof(line),
			     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s[%d] %s: ",
			     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
			     tm.tm_hour, tm.tm_min, tm.tm_sec,
			     ts.tv_nsec / 1000000, log_prog, (int)getpid(),
			     level_names[level]);
	}
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (log_syslog && n > 0 && (size_t)n < sizeof(line))
		syslog(priorities[level], "%s", line + n);
	/* One write per line, so lines from threads never interleave. */
	n = (int)strnlen(line, sizeof(line) - 2);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return; /* nowhere left to report it */
}
