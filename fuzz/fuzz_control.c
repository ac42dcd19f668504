/*
 * fuzz_control: the mount's control socket (fs/control.c), as cloudfs(1)
 * or any local process of the user speaks to it: the real listener of a
 * real (unmounted) mount, over a real Unix socket.
 *
 * Feeds: the input as the bytes one connection sends (then it shuts its
 * sending side), so the request line, its JSON and the command with its
 * fields all come from it; commands that ask the server meet one that
 * refuses at once (mount_env.h).
 * Checks: every connection gets exactly one answer, one JSON object on
 * one line and nothing after it, whatever was sent; the mount stays up
 * to answer the next.
 */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fs/control.h"
#include "fuzz_util.h"
#include "mount_env.h"

#define ANSWER_MAX (1 << 20)

static struct sockaddr_un addr = { .sun_family = AF_UNIX };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct fs *fs = mount_env_get(0);

	(void)argc;
	(void)argv;
	fs->control = control_start(fs);
	FUZZ_CHECK(fs->control, "no control socket");
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/control",
		 fs->cache->path);
	return 0;
}

/* Sends the request, then reads the answer to the end. */
static char *ask(const uint8_t *data, size_t size, size_t *len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char *buf = malloc(ANSWER_MAX + 1);
	size_t at = 0;

	FUZZ_CHECK(fd >= 0 && buf, "no socket");
	FUZZ_CHECK(connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0,
		   "the mount does not answer at '%s': %s", addr.sun_path,
		   strerror(errno));
	/* The mount reads at most one request's worth: what it leaves may
	 * find the socket closed. */
	while (at < size) {
		ssize_t w = send(fd, data + at, size - at, MSG_NOSIGNAL);

		if (w <= 0)
			break;
		at += (size_t)w;
	}
	shutdown(fd, SHUT_WR);
	*len = 0;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int ready;
		ssize_t k;

		/* libFuzzer's timer signals this process every few seconds:
		 * an interrupted wait is no missing answer. */
		do
			ready = poll(&p, 1, 20000);
		while (ready < 0 && errno == EINTR);
		FUZZ_CHECK(ready == 1, "no answer in 20 s");
		k = read(fd, buf + *len, ANSWER_MAX - *len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == ECONNRESET)
			break;
		FUZZ_CHECK(k >= 0, "cannot read the answer: %s",
			   strerror(errno));
		if (k == 0)
			break;
		*len += (size_t)k;
		FUZZ_CHECK(*len < ANSWER_MAX, "an answer of 1 MiB");
	}
	close(fd);
	buf[*len] = '\0';
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t len;
	char *answer = ask(data, size, &len);
	json_t *o;

	FUZZ_CHECK(len >= 3 && answer[len - 1] == '\n' &&
			   !memchr(answer, '\n', len - 1),
		   "not one line: '%s'", answer);
	o = json_loadb(answer, len - 1, 0, NULL);
	FUZZ_CHECK(json_is_object(o), "not a JSON object: '%s'", answer);
	FUZZ_CHECK(!json_object_get(o, "error") ||
			   json_is_string(json_object_get(o, "error")),
		   "an error that is no message: '%s'", answer);
	json_decref(o);
	free(answer);
	return 0;
}
