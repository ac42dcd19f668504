/* Which mount or cache a command is about, and asking a mount
 * (include/cli/cli.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cloudfs/platform.h"

#define ANSWER_MAX (16 * 1024 * 1024)

void cli_error(const char *fmt, ...)
{
	va_list ap;

	fputs("cloudfs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

const char *cli_text(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "?";
}

void cli_print_json(json_t *o)
{
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
	json_decref(o);
}

bool cli_target(const struct cli_opts *opts, const char *path,
		struct cli_target *t)
{
	struct stat st;
	ssize_t n;

	memset(t, 0, sizeof(*t));
	if (opts->cache_dir) {
		if (snprintf(t->cache_dir, sizeof(t->cache_dir), "%s",
			     opts->cache_dir) >= (int)sizeof(t->cache_dir)) {
			cli_error("cache directory '%s': name too long",
				  opts->cache_dir);
			return false;
		}
		/* By its lock alone: never open a live mount's database. */
		t->live = cache_in_use(t->cache_dir);
		return true;
	}
	if (!path)
		path = ".";
	snprintf(t->path, sizeof(t->path), "%s", path);
	if (lstat(path, &st)) {
		cli_error("cannot find '%s': %s", path, strerror(errno));
		return false;
	}
	n = platform_lgetxattr(path, "user.cloudfs.cache", t->cache_dir,
			       sizeof(t->cache_dir) - 1);
	if (n < 0) {
		cli_error(
			"'%s' is not in a cloudfs mount (give a path in one, or --cache DIR)",
			path);
		return false;
	}
	t->cache_dir[n] = '\0';
	t->ino = (uint64_t)st.st_ino;
	t->live = true;
	return true;
}

char **cli_mounts(bool *listed)
{
	return platform_mounts("fuse.cloudfs", listed);
}

/* Connects to the control socket of the mount serving t. */
static int dial(const struct cli_target *t)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd, len;

	/* sun_path holds 108 bytes, a cache directory's name up to 4095:
	 * snprintf's count is the one check of whether it fits. */
	len = snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/control",
		       t->cache_dir);
	if (len < 0 || (size_t)len >= sizeof(addr.sun_path)) {
		cli_error(
			"cache directory '%s': its control socket's path is too long",
			t->cache_dir);
		return -1;
	}
	fd = platform_socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		cli_error("cannot reach the mount of cache '%s' at '%s': %s",
			  t->cache_dir, addr.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* Reads the whole answer (the mount closes the connection after it). */
static char *read_all(int fd, size_t *len)
{
	size_t cap = 4096;
	char *buf = malloc(cap);

	*len = 0;
	while (buf) {
		ssize_t k;

		if (*len + 1 >= cap) {
			char *p = cap < ANSWER_MAX ? realloc(buf, cap *= 2)
						   : NULL;

			if (!p) {
				free(buf);
				return NULL;
			}
			buf = p;
		}
		k = read(fd, buf + *len, cap - 1 - *len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		*len += (size_t)k;
	}
	if (buf)
		buf[*len] = '\0';
	return buf;
}

json_t *cli_ask(const struct cli_target *t, json_t *request)
{
	char *text = json_dumps(request, JSON_COMPACT);
	const char *cmd = json_string_value(json_object_get(request, "cmd"));
	int fd = text ? dial(t) : -1;
	json_t *answer = NULL;
	json_error_t jerr;
	size_t len = 0;
	char *got = NULL;

	if (fd >= 0 && dprintf(fd, "%s\n", text) > 0)
		got = read_all(fd, &len);
	if (fd >= 0 && !got)
		cli_error("no answer from the mount of cache '%s' to '%s'",
			  t->cache_dir, cmd);
	if (got)
		answer = json_loadb(got, len, 0, &jerr);
	if (got && !answer)
		cli_error(
			"the mount of cache '%s' answered '%s' with no JSON: %s",
			t->cache_dir, cmd, jerr.text);
	if (answer && json_object_get(answer, "error")) {
		cli_error("the mount of cache '%s' could not %s: %s",
			  t->cache_dir, cmd,
			  json_string_value(json_object_get(answer, "error")));
		json_decref(answer);
		answer = NULL;
	}
	if (fd >= 0)
		close(fd);
	free(got);
	free(text);
	json_decref(request);
	return answer;
}
