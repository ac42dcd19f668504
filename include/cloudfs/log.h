/*
 * Logging to stderr, one line per event:
 *
 *	2026-11-22T18:22:01.123Z cloudfsd[1234] error: cannot open 'x': ...
 *
 * "prog: msg" instead on a terminal, and "<3>msg" (the syslog priority,
 * sd-daemon(3)) when stderr is the systemd journal's stream.
 * Messages start with the problem, in lower case, and name the object.
 * Safe to call from any thread.
 */
#ifndef CLOUDFS_LOG_H
#define CLOUDFS_LOG_H

enum cfs_log_level {
	CFS_LOG_ERROR,
	CFS_LOG_WARN,
	CFS_LOG_INFO,
	CFS_LOG_DEBUG,
};

/* Sets the program name shown on every line and the least important level
 * that is still printed. */
void cfs_log_init(const char *prog, enum cfs_log_level level);

/* From now on each line also goes to syslog(3) as prog, facility
 * LOG_DAEMON: for a daemon whose stderr is a file nobody reads. */
void cfs_log_syslog(void);

void cfs_log(enum cfs_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define cfs_log_error(...) cfs_log(CFS_LOG_ERROR, __VA_ARGS__)
#define cfs_log_warn(...)  cfs_log(CFS_LOG_WARN, __VA_ARGS__)
#define cfs_log_info(...)  cfs_log(CFS_LOG_INFO, __VA_ARGS__)
#define cfs_log_debug(...) cfs_log(CFS_LOG_DEBUG, __VA_ARGS__)

#endif
