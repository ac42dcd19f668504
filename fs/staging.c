/*
 * Staging files (fs/staging.h): the blocks of a file a session wrote
 * into, each a file of its own until the commit, and the base blocks they
 * start as copies of (fs/session_state.h, invariants 1, 2, 3, 6 and 7).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache/blockcache.h"
#include "cloudfs/log.h"
#include "cloudfs/mutex.h"
#include "cloudfs/platform.h"
#include "fs/fs.h"
#include "fs/session_state.h"
#include "fs/staging.h"

void staging_name(const struct session *s, uint64_t b, char name[48])
{
	snprintf(name, 48, "%llu.%llu", (unsigned long long)s->ino,
		 (unsigned long long)b);
}

bool staging_is_dirty(const struct session *s, uint64_t b)
{
	return b < s->dirty_cap && s->dirty[b];
}

static int set_dirty(struct session *s, uint64_t b, bool dirty)
{
	if (b >= s->dirty_cap) {
		size_t cap = s->dirty_cap ? s->dirty_cap : 16;
		uint8_t *p;

		if (!dirty)
			return 0;
		while (cap <= b)
			cap *= 2;
		p = realloc(s->dirty, cap);
		if (!p)
			return ENOMEM;
		memset(p + s->dirty_cap, 0, cap - s->dirty_cap);
		s->dirty = p;
		s->dirty_cap = cap;
	}
	s->dirty[b] = dirty;
	return 0;
}

void staging_close(struct session *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* Drops staging file b (invariant 1). */
void staging_drop(struct session *s, uint64_t b)
{
	char name[48];

	if (!staging_is_dirty(s, b))
		return;
	if (s->fd_block == b)
		staging_close(s);
	staging_name(s, b, name);
	unlinkat(s->t->fs->cache->dirty_fd, name, 0);
	set_dirty(s, b, false);
}

/* The base block b, opened (fetched first if it is not cached). */
int staging_base_open(struct session *s, uint64_t b)
{
	struct fs *fs = s->t->fs;
	struct cfs_error err;
	int fd = fetcher_open(fs->fetch, &s->base.ids[b],
			      cfs_block_len(s->base_size, b),
			      fs->opt.timeout_s * 1000, &err);

	assert(cfs_mutex_locked(&s->lock));
	if (fd < 0)
		cfs_log_error(
			"cannot read block %llu of inode %llu to write into it: %s",
			(unsigned long long)b, (unsigned long long)s->ino,
			err.msg);
	return fd;
}

/*
 * The first base block in [first, last] that s shows (not dirty, within
 * the base and the file) and the cache lacks, with its id and length;
 * false when there is none.  s->lock held.
 */
bool staging_base_uncached(struct session *s, uint64_t first, uint64_t last,
			   struct cfs_block_id *id, uint32_t *len)
{
	for (uint64_t b = first; b <= last && b < s->base.n; b++) {
		int fd;

		if (staging_is_dirty(s, b) || b * CFS_BLOCK_SIZE >= s->size)
			continue;
		fd = blockcache_open(s->t->fs->cache, &s->base.ids[b]);
		if (fd >= 0) {
			close(fd);
			continue;
		}
		*id = s->base.ids[b];
		*len = cfs_block_len(s->base_size, b);
		return true;
	}
	return false;
}

/* Fetches block id of inode ino into the cache, with no lock held; 0 or
 * EIO. */
int staging_base_fetch(struct fs *fs, uint64_t ino,
		       const struct cfs_block_id *id, uint32_t len)
{
	struct cfs_error err;
	int fd = fetcher_open(fs->fetch, id, len, fs->opt.timeout_s * 1000,
			      &err);

	if (fd < 0) {
		char hex[CFS_BLOCK_ID_HEX_LEN + 1];

		cfs_block_id_to_hex(id, hex);
		cfs_log_error("cannot fetch block %s of inode %llu: %s", hex,
			      (unsigned long long)ino, err.msg);
		return EIO;
	}
	close(fd);
	return 0;
}

/*
 * Fetches the base blocks in [first, last] that s shows and the cache
 * lacks before the caller takes s->lock (include/fs/locks.h): a fetch
 * waits on the network, and a stat of the file waits for s->lock while
 * holding the table's, so every stat of the mount would wait for it.
 * Under the lock the caller then finds them cached, or, evicted again
 * meanwhile, fetches them there as before.  The caller keeps s alive (a
 * handle, or the settler's turn).  0, or EIO when a fetch failed.
 */
int staging_bases_fetch(struct session *s, uint64_t first, uint64_t last)
{
	for (uint64_t tries = 0; tries <= last - first; tries++) {
		struct cfs_block_id id;
		uint32_t len;
		bool missing;
		int e;

		pthread_mutex_lock(&s->lock);
		missing = staging_base_uncached(s, first, last, &id, &len);
		pthread_mutex_unlock(&s->lock);
		if (!missing)
			return 0;
		e = staging_base_fetch(s->t->fs, s->ino, &id, len);
		if (e)
			return e;
	}
	return 0;
}

/*
 * Invariant 7: staging file name (*fd open on it) copied in place when a
 * failed commit left it linked into the cache too, whose block files
 * never change.  0 or a positive errno.
 */
static int unshare_staging(struct session *s, const char *name, int *fd)
{
	int dir = s->t->fs->cache->dirty_fd, copy, e;
	char tmp[56];
	struct stat st;

	if (fstat(*fd, &st))
		return errno;
	if (st.st_nlink <= 1)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.w", name);
	copy = openat(dir, tmp,
		      O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		      0600);
	if (copy < 0)
		return errno;
	e = platform_copy_file(*fd, copy, (size_t)st.st_size);
	if (!e && renameat(dir, tmp, dir, name))
		e = errno;
	if (e) {
		close(copy);
		unlinkat(dir, tmp, 0);
		return e;
	}
	close(*fd);
	*fd = copy;
	return 0;
}

/*
 * Makes block b dirty (copying the base in) and s->fd its staging file,
 * as long as the block is for size bytes.  0 or a positive errno.
 */
int staging_open(struct session *s, uint64_t b)
{
	int dir = s->t->fs->cache->dirty_fd, e = 0, fd;
	char name[48];

	assert(cfs_mutex_locked(&s->lock));
	if (s->fd >= 0 && s->fd_block == b)
		return 0;
	staging_close(s);
	staging_name(s, b, name);
	if (staging_is_dirty(s, b)) {
		fd = openat(dir, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return errno;
		e = unshare_staging(s, name, &fd);
		if (e) {
			close(fd);
			return e;
		}
	} else {
		fd = openat(dir, name,
			    O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
			    0600);
		if (fd < 0)
			return errno;
		if (b < s->base.n) {
			int src = staging_base_open(s, b);

			e = src < 0 ? EIO
				    : platform_copy_file(
					      src, fd,
					      cfs_block_len(s->base_size, b));
			if (src >= 0)
				close(src);
		}
		if (!e)
			e = set_dirty(s, b, true);
		if (e) {
			close(fd);
			unlinkat(dir, name, 0);
			return e;
		}
	}
	s->fd = fd;
	s->fd_block = b;
	return 0;
}

/*
 * Invariant 6: before the file grows to size, its last block, when it
 * is a short base block that is not staged, is staged (the base fetched
 * if it is not cached: the caller fetched it first with no lock held).
 */
int staging_grow(struct session *s, uint64_t size)
{
	uint64_t b = s->size ? (s->size - 1) / CFS_BLOCK_SIZE : 0;

	assert(cfs_mutex_locked(&s->lock));
	if (size <= s->size || !s->size || staging_is_dirty(s, b) ||
	    b >= s->base.n ||
	    cfs_block_len(s->base_size, b) == cfs_block_len(size, b))
		return 0;
	return staging_open(s, b);
}

/* The block staging_grow() stages when the file grows to size, or
 * UINT64_MAX; s->lock held. */
uint64_t staging_grown_block(struct session *s, uint64_t size)
{
	uint64_t b = s->size ? (s->size - 1) / CFS_BLOCK_SIZE : 0;

	if (size <= s->size || !s->size || b >= s->base.n)
		return UINT64_MAX;
	return b;
}

/* Invariant 1: staging file b as long as block b of a file of size. */
int staging_fit(struct session *s, uint64_t b)
{
	int e;

	assert(cfs_mutex_locked(&s->lock));
	if (!staging_is_dirty(s, b))
		return 0;
	e = staging_open(s, b);
	if (!e && ftruncate(s->fd, cfs_block_len(s->size, b)))
		e = errno;
	return e;
}
