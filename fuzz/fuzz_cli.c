/*
 * fuzz_cli: what cloudfs(1) makes of a mount's answers on the control
 * socket (cli/): cli_ask() and the commands that print what it returns.
 * A fake mount here holds a cache directory's lock, as a live mount does,
 * and answers every request on its control socket with the input.
 *
 * Feeds: byte 0 picks the command and, by its bit 3, --json: status,
 * cache stat, cache ls, cache verify, shares (all with --cache), or the
 * printer of history (reached by including cli/history.c); the rest is
 * the answer, sent as it is.
 * Checks: each command ends with one of cloudfs(1)'s exit statuses,
 * whatever the mount answered (a wrong type or a missing field is no
 * crash); its output goes to /dev/null.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../cli/history.c"

#include "cache/cache.h"
#include "cloudfs/log.h"
#include "fuzz_util.h"

static const char *dir;
static struct cache *held; /* its lock, as a live mount holds it */
static int listen_fd = -1;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t *answer_data;
static size_t answer_len;

/* The fake mount: reads a request line, sends the current answer. */
static void *serve(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		char line[4096];
		size_t at = 0;

		if (fd < 0)
			continue;
		while (at < sizeof(line) && !memchr(line, '\n', at)) {
			ssize_t k = read(fd, line + at, sizeof(line) - at);

			if (k <= 0)
				break;
			at += (size_t)k;
		}
		pthread_mutex_lock(&lock);
		for (size_t w = 0; w < answer_len;) {
			ssize_t k = send(fd, answer_data + w, answer_len - w,
					 MSG_NOSIGNAL);

			if (k <= 0)
				break;
			w += (size_t)k;
		}
		pthread_mutex_unlock(&lock);
		close(fd);
	}
	return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct cfs_error err;
	pthread_t t;

	(void)argc;
	(void)argv;
	cfs_log_init("fuzz_cli", CFS_LOG_ERROR);
	FUZZ_CHECK(freopen("/dev/null", "w", stdout), "no /dev/null");
	dir = fuzz_tmpdir("cli");
	FUZZ_CHECK(cache_open(dir, &held, &err) == CFS_OK, "%s", err.msg);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/control", dir);
	listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	FUZZ_CHECK(listen_fd >= 0 &&
			   bind(listen_fd, (struct sockaddr *)&addr,
				sizeof(addr)) == 0 &&
			   listen(listen_fd, 4) == 0 &&
			   pthread_create(&t, NULL, serve, NULL) == 0,
		   "no fake mount at '%s'", addr.sun_path);
	pthread_detach(t);
	return 0;
}

static int run(unsigned cmd, bool json, const uint8_t *data, size_t size)
{
	struct cli_opts opts = { .json = json, .cache_dir = dir };
	char *stat[] = { "stat" }, *ls[] = { "ls" }, *verify[] = { "verify" };
	json_t *a;

	switch (cmd) {
	case 0:
		return cli_status(&opts, 0, NULL);
	case 1:
		return cli_cache(&opts, 1, stat);
	case 2:
		return cli_cache(&opts, 1, ls);
	case 3:
		return cli_cache(&opts, 1, verify);
	case 4:
		return cli_share(&opts, "shares", 0, NULL);
	default:
		/* cloudfs history prints what cli_ask() returned. */
		a = json_loadb((const char *)data, size, 0, NULL);
		if (json_is_object(a) && !json_object_get(a, "error"))
			print_versions(a);
		json_decref(a);
		return CLI_OK;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int rc;

	if (size < 1)
		return 0;
	pthread_mutex_lock(&lock);
	answer_data = data + 1;
	answer_len = size - 1;
	pthread_mutex_unlock(&lock);
	rc = run(data[0] % 6, data[0] & 8, data + 1, size - 1);
	FUZZ_CHECK(rc >= CLI_OK && rc <= CLI_NOT_WELL, "exit status %d", rc);
	fflush(stdout);
	return 0;
}
