/*
 * The embedded block store: one file per block.
 *
 *	DATA/blocks/ab/abcdef...   the bytes of block abcdef... (64 hex digits)
 *	DATA/tmp/upload-XXXXXX     uploads in flight (emptied at open)
 *
 * Invariants:
 *  1. A block file appears only by rename(2) of a complete, fsync'ed
 *     temporary file, followed by an fsync of its directory, so after a
 *     crash a block file is either absent or whole.
 *  2. Storing a block does the same work whether or not the store holds
 *     it already (Dropship, by timing): the temporary file is fsync'ed,
 *     renamed over the block's name and the directory fsync'ed in both
 *     cases.  Renaming over a block already stored replaces it with the
 *     same bytes (the caller checked their hash), atomically: a reader
 *     opens either the old file or the new one, both whole.
 *  3. The one cost that renaming over a file adds, freeing the old
 *     file's disk blocks (about 0.2 ms for 4 KiB, 1 ms for 1 MiB on
 *     ext4), is not paid by the upload: the old file is opened (O_PATH)
 *     before the rename, which therefore only drops a name, and the
 *     reaper thread closes it, which frees it, REAP_DELAY_MS later.  The
 *     delay keeps the freeing clear of the rest of the upload (the
 *     folder's fsync, the metadata commit's), whose fsyncs a freeing
 *     under way holds up.  A new block makes the same open attempt
 *     (ENOENT) and hands -1 to the reaper.  Should the reaper's pipe be
 *     full, the upload closes the file itself: a slower upload under
 *     overload, never a lost one.
 *  4. The 256 folders blocks/00 to blocks/ff all exist once the store is
 *     open (created and made durable there), so that the first block of
 *     a prefix costs no mkdir() that a later one would not.
 *  5. Every file is created 0600 and every folder 0700 (mkostemp, mkdir):
 *     block bytes are no business of other local users.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cloudfs/log.h"
#include "server/blockstore.h"

#define REAP_DELAY_MS 100

/* A file to close at a time (CLOCK_MONOTONIC, ms); fd -1 for none. */
struct reap_item {
	int fd;
	uint64_t at_ms;
};

static uint64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct dir_store {
	struct blockstore base;
	char blocks[4096];
	char tmp[4096];
	/* Invariant 3: struct reap_item, written by uploads (non-blocking),
	 * read by the reaper until the store closes. */
	int reap[2];
	pthread_t reaper;
};

static int mkdir_private(const char *path)
{
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

static void block_path(const struct dir_store *s, const struct cfs_block_id *id,
		       char *dir, size_t dir_len, char *file, size_t file_len)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];

	cfs_block_id_to_hex(id, hex);
	snprintf(dir, dir_len, "%s/%.2s", s->blocks, hex);
	snprintf(file, file_len, "%s/%.2s/%s", s->blocks, hex, hex);
}

static int dir_tmp_create(struct blockstore *bs, struct blockstore_tmp *tmp)
{
	struct dir_store *s = (struct dir_store *)bs;

	if ((size_t)snprintf(tmp->path, sizeof(tmp->path), "%s/upload-XXXXXX",
			     s->tmp) >= sizeof(tmp->path))
		return -ENAMETOOLONG;
	tmp->fd = mkostemp(tmp->path, O_CLOEXEC);
	return tmp->fd < 0 ? -errno : 0;
}

static void dir_tmp_discard(struct blockstore *bs, struct blockstore_tmp *tmp)
{
	(void)bs;
	if (tmp->fd >= 0) {
		close(tmp->fd);
		unlink(tmp->path);
		tmp->fd = -1;
	}
}

/* Invariant 3: closes what uploads hand over, when its time comes. */
static void *reaper_thread(void *arg)
{
	struct dir_store *s = arg;
	struct reap_item it;

	for (;;) {
		ssize_t n = read(s->reap[0], &it, sizeof(it));

		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(it))
			break; /* the store is closing: the pipe is empty */
		if (it.fd < 0)
			continue;
		/* Items come in time order: one wait covers those behind. */
		while (monotonic_ms() < it.at_ms) {
			struct timespec ts = {
				.tv_sec = (time_t)(it.at_ms / 1000),
				.tv_nsec = (long)(it.at_ms % 1000) * 1000000,
			};

			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
					NULL);
		}
		close(it.fd);
	}
	return NULL;
}

static void reap_later(struct dir_store *s, int fd)
{
	struct reap_item it = { .fd = fd,
				.at_ms = monotonic_ms() + REAP_DELAY_MS };

	/* One item is well under PIPE_BUF: written whole or not at all. */
	if (write(s->reap[1], &it, sizeof(it)) != (ssize_t)sizeof(it) &&
	    fd >= 0)
		close(fd);
}

/* Invariants 1 to 3: the same steps for bytes new and bytes held. */
static int dir_tmp_store(struct blockstore *bs, struct blockstore_tmp *tmp,
			 const struct cfs_block_id *id)
{
	struct dir_store *s = (struct dir_store *)bs;
	char dir[4200], file[4300];
	int rc = 0, old;

	block_path(s, id, dir, sizeof(dir), file, sizeof(file));
	if (fsync(tmp->fd)) {
		rc = -errno;
		goto out;
	}
	old = open(file, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (rename(tmp->path, file)) {
		rc = -errno;
	} else {
		/* The name is free again: mkostemp() may hand it to another
		 * upload, whose file dir_tmp_discard() would then unlink. */
		close(tmp->fd);
		tmp->fd = -1;
		rc = fsync_dir(dir);
	}
	reap_later(s, old);
out:
	dir_tmp_discard(bs, tmp);
	return rc;
}

static int dir_open(struct blockstore *bs, const struct cfs_block_id *id,
		    int *fd, uint64_t *size)
{
	struct dir_store *s = (struct dir_store *)bs;
	char dir[4200], file[4300];
	struct stat st;

	block_path(s, id, dir, sizeof(dir), file, sizeof(file));
	*fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (*fd < 0)
		return -errno;
	if (fstat(*fd, &st)) {
		int rc = -errno;

		close(*fd);
		*fd = -1;
		return rc;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

static int dir_remove(struct blockstore *bs, const struct cfs_block_id *id)
{
	struct dir_store *s = (struct dir_store *)bs;
	char dir[4200], file[4300];

	block_path(s, id, dir, sizeof(dir), file, sizeof(file));
	return unlink(file) && errno != ENOENT ? -errno : 0;
}

static void dir_close(struct blockstore *bs)
{
	struct dir_store *s = (struct dir_store *)bs;

	close(s->reap[1]); /* the reaper drains the pipe, then stops */
	pthread_join(s->reaper, NULL);
	close(s->reap[0]);
	free(s);
}

static const struct blockstore_ops dir_ops = {
	.close = dir_close,
	.tmp_create = dir_tmp_create,
	.tmp_store = dir_tmp_store,
	.tmp_discard = dir_tmp_discard,
	.open = dir_open,
	.remove = dir_remove,
};

/* Invariant 4: blocks/00 to blocks/ff, and durably so. */
static int make_prefixes(const char *blocks)
{
	char dir[4200];
	int rc = 0;

	for (unsigned i = 0; rc == 0 && i < 256; i++) {
		snprintf(dir, sizeof(dir), "%s/%02x", blocks, i);
		rc = mkdir_private(dir);
	}
	return rc ? rc : fsync_dir(blocks);
}

/* Uploads that were in flight when the server last stopped are garbage. */
static void empty_tmp(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "upload-", 7) == 0 &&
		    unlinkat(dirfd(d), de->d_name, 0))
			cfs_log_warn("cannot remove stale upload '%s/%s': %s",
				     path, de->d_name, strerror(errno));
	}
	closedir(d);
}

int blockstore_dir_open(const char *data_dir, struct blockstore **out)
{
	struct dir_store *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
	s->base.ops = &dir_ops;
	if ((size_t)snprintf(s->blocks, sizeof(s->blocks), "%s/blocks",
			     data_dir) >= sizeof(s->blocks) ||
	    (size_t)snprintf(s->tmp, sizeof(s->tmp), "%s/tmp", data_dir) >=
		    sizeof(s->tmp)) {
		free(s);
		return -ENAMETOOLONG;
	}
	rc = mkdir_private(s->blocks);
	if (rc == 0)
		rc = make_prefixes(s->blocks);
	if (rc == 0)
		rc = mkdir_private(s->tmp);
	if (rc == 0 && pipe2(s->reap, O_CLOEXEC))
		rc = -errno;
	if (rc) {
		free(s);
		return rc;
	}
	/* Uploads never wait for the reaper (invariant 3). */
	if (fcntl(s->reap[1], F_SETFL, O_NONBLOCK))
		rc = -errno;
	else
		rc = -pthread_create(&s->reaper, NULL, reaper_thread, s);
	if (rc) {
		close(s->reap[0]);
		close(s->reap[1]);
		free(s);
		return rc;
	}
	empty_tmp(s->tmp);
	*out = &s->base;
	return 0;
}
