/*
 * cloudfsd stop: stops the server of a data directory.  The directory's
 * lock (cmd_lock_data_dir()) says whether one runs and, once it is free,
 * that the server has exited; its file holds the pid to signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "cloudfs/log.h"
#include "cloudfs/num.h"
#include "server/cmd.h"

static const char usage[] =
	"usage: cloudfsd stop --data DIR [--timeout SECONDS]\n"
	"Stops the cloudfsd serving DIR (SIGTERM) and waits until it has\n"
	"exited (default 30 seconds).  Exit status 1 when none serves DIR or\n"
	"it does not exit in time.\n";

/* True once nobody holds fd's lock; it is let go again at once. */
static bool lock_free(int fd)
{
	if (flock(fd, LOCK_SH | LOCK_NB))
		return false;
	flock(fd, LOCK_UN);
	return true;
}

/* The pid in the lock file, 0 when there is none yet (a server that has
 * not written it, or a 'cloudfsd gc'). */
static pid_t read_pid(int fd)
{
	char buf[24];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	int64_t pid;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return cfs_num_parse_i64(buf, 2, INT_MAX, &pid) ? 0 : (pid_t)pid;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int stop(const char *dir, long timeout_ms)
{
	char path[PATH_MAX];
	pid_t pid = 0;
	int fd, status = 1;

	snprintf(path, sizeof(path), "%s/serve.lock", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		cfs_log_error("no cloudfsd serves '%s'", dir);
		return 1;
	}
	if (fd < 0) {
		cfs_log_error("cannot open '%s': %s", path, strerror(errno));
		return 1;
	}
	/* A server writes its pid just after taking the lock. */
	for (int i = 0; i < 20 && !lock_free(fd) && !(pid = read_pid(fd)); i++)
		sleep_ms(50);
	if (lock_free(fd)) {
		cfs_log_error("no cloudfsd serves '%s'", dir);
		goto out;
	}
	if (!pid) {
		cfs_log_error("'%s' is locked by a process that is not a "
			      "server (a 'cloudfsd gc'?)",
			      dir);
		goto out;
	}
	if (kill(pid, SIGTERM)) {
		cfs_log_error("cannot stop the cloudfsd serving '%s' "
			      "(pid %d): %s",
			      dir, (int)pid, strerror(errno));
		goto out;
	}
	for (long waited = 0; waited < timeout_ms; waited += 100) {
		if (lock_free(fd)) {
			cfs_log_info(
				"stopped the cloudfsd serving '%s' (pid %d)",
				dir, (int)pid);
			status = 0;
			goto out;
		}
		sleep_ms(100);
	}
	cfs_log_error("the cloudfsd serving '%s' (pid %d) has not exited "
		      "%ld s after SIGTERM",
		      dir, (int)pid, timeout_ms / 1000);
out:
	close(fd);
	return status;
}

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = NULL;
	int64_t timeout_s = 30;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 't':
			if (cfs_num_parse_i64(optarg, 1, 86400, &timeout_s)) {
				fprintf(stderr,
					"cloudfsd stop: --timeout must be 1 to "
					"86400 seconds, not '%s'\n",
					optarg);
				return EXIT_USAGE;
			}
			break;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs(usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (!dir || optind != argc) {
		fprintf(stderr, "cloudfsd stop: %s\n%s",
			dir ? "unexpected operand" : "--data DIR is required",
			usage);
		return EXIT_USAGE;
	}
	return stop(dir, (long)timeout_s * 1000);
}
