/* Reading files whole through a mount, so that it caches them
 * (include/cli/cli.h). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cloudfs/platform.h"
#include "cloudfs/size.h"

#define CHUNK (1024 * 1024)

/* nftw() has no argument for its callback: the walk's state. */
static struct {
	char *buf;
	uint64_t files, bytes;
	bool tty, failed;
} walk;

static void show(void)
{
	char b[32];

	if (!walk.tty)
		return;
	cfs_size_format(walk.bytes, b, sizeof(b));
	fprintf(stderr, "\rwarming: %llu files, %s   ",
		(unsigned long long)walk.files, b);
	fflush(stderr);
}

static int read_whole(const char *path, const struct stat *st, int type,
		      struct FTW *ftw)
{
	int fd;
	ssize_t k;

	(void)ftw;
	/* Only files have content: a FIFO's open would wait for a writer.
	 * (O_NONBLOCK too, for one that takes a file's place meanwhile.) */
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	/* Removed or renamed since the walk listed it (by another mount's
	 * change arriving): nothing of it is left to warm. */
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0) {
		cli_error("cannot open '%s': %s", path, strerror(errno));
		walk.failed = true;
		return 1;
	}
	/* Pages the kernel holds would not reach the mount. */
	platform_drop_cached_pages(fd);
	while ((k = read(fd, walk.buf, CHUNK)) > 0) {
		walk.bytes += (uint64_t)k;
		if (walk.bytes % (64 * CHUNK) < (uint64_t)k)
			show();
	}
	if (k < 0) {
		cli_error("cannot read '%s': %s", path, strerror(errno));
		walk.failed = true;
	}
	close(fd);
	walk.files++;
	show();
	return walk.failed;
}

bool cli_warm(const char *path, uint64_t *files, uint64_t *bytes)
{
	walk.buf = malloc(CHUNK);
	walk.files = walk.bytes = 0;
	walk.tty = isatty(STDERR_FILENO);
	walk.failed = !walk.buf;
	if (!walk.failed && nftw(path, read_whole, 16, FTW_PHYS) < 0 &&
	    !walk.failed) {
		cli_error("cannot walk '%s': %s", path, strerror(errno));
		walk.failed = true;
	}
	if (walk.tty)
		fputc('\n', stderr);
	free(walk.buf);
	*files = walk.files;
	*bytes = walk.bytes;
	return !walk.failed;
}
