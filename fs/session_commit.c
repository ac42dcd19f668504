/*
 * A session's commit (include/fs/session.h): its blocks hashed into block
 * files of the cache, the new block list queued durably in the mirror,
 * and only then its staging files let go (fs/session_state.h, invariants
 * 4, 6 and 7).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/blockcache.h"
#include "cache/local.h"
#include "cloudfs/log.h"
#include "cloudfs/mutex.h"
#include "cloudfs/platform.h"
#include "fs/fs.h"
#include "fs/session.h"
#include "fs/session_state.h"
#include "fs/staging.h"

/* The hash of the first n bytes of fd. */
static int hash_fd(int fd, uint64_t n, struct cfs_block_id *id)
{
	struct cfs_sha256 *h = cfs_sha256_new();
	char *buf = malloc(1 << 20);
	uint64_t done = 0;
	int e = h && buf ? 0 : ENOMEM;

	while (!e && done < n) {
		size_t want =
			n - done < (1 << 20) ? (size_t)(n - done) : 1 << 20;
		ssize_t k = pread(fd, buf, want, (off_t)done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			e = k < 0 ? errno : EIO;
		else if (cfs_sha256_update(h, buf, (size_t)k))
			e = ENOMEM;
		else
			done += (uint64_t)k;
	}
	if (!e && cfs_sha256_final(h, id))
		e = ENOMEM;
	cfs_sha256_free(h);
	free(buf);
	return e;
}

static struct cfs_block_id zero_id;
static bool zero_id_ok;

static void hash_zeros(void)
{
	void *zeros = calloc(1, CFS_BLOCK_SIZE);

	zero_id_ok = zeros && cfs_sha256(zeros, CFS_BLOCK_SIZE, &zero_id) == 0;
	free(zeros);
}

/* Whether a whole block of zeros is in the cache already, *id its id.  A
 * file grown by truncate is holes, each the same block: a 200 GiB one is
 * 51,200 of them, and building, hashing and storing each took minutes
 * before the file could commit. */
static bool zeros_cached(struct cache *c, struct cfs_block_id *id)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int fd;

	pthread_once(&once, hash_zeros);
	if (!zero_id_ok || (fd = blockcache_open(c, &zero_id)) < 0)
		return false;
	close(fd);
	*id = zero_id;
	return true;
}

/* Block b of the new content, when it is neither staged nor the base's
 * as it was (a grown or cut last block, a hole): built, hashed, stored. */
static int materialize(struct session *s, uint64_t b, struct cfs_block_id *id)
{
	struct cache *c = s->t->fs->cache;
	uint32_t len = cfs_block_len(s->size, b);
	uint32_t from_base = b < s->base.n ? cfs_block_len(s->base_size, b) : 0;
	struct cfs_error err;
	char tmp[32];
	int e = 0, src = -1, fd;

	if (from_base > len)
		from_base = len;
	if (!from_base && len == CFS_BLOCK_SIZE && zeros_cached(c, id))
		return 0;
	fd = blockcache_tmp_create(c, tmp);
	if (fd < 0)
		return -fd;
	if (from_base)
		src = staging_base_open(s, b);
	if (from_base && src < 0)
		e = EIO;
	if (!e && from_base)
		e = platform_copy_file(src, fd, from_base);
	if (!e && ftruncate(fd, len))
		e = errno;
	if (src >= 0)
		close(src);
	if (!e)
		e = hash_fd(fd, len, id);
	if (e) {
		blockcache_tmp_discard(c, fd, tmp);
		return e;
	}
	if (blockcache_store(c, fd, tmp, id, len, &err)) {
		cfs_log_error("%s", err.msg);
		return err.code == CFS_ERR_STORAGE_FULL ? ENOSPC : EIO;
	}
	return 0;
}

/* Block b of the new content as a block file of the cache; *id its id,
 * *placed when it is a staging file placed there, to be indexed with the
 * commit's record. */
static int commit_block(struct session *s, uint64_t b, struct cfs_block_id *id,
			bool *placed)
{
	struct cache *c = s->t->fs->cache;
	uint32_t len = cfs_block_len(s->size, b);
	struct cfs_error err;
	char name[48], link[56];
	int e, fd;

	if (!staging_is_dirty(s, b)) {
		if (b < s->base.n && cfs_block_len(s->base_size, b) == len) {
			*id = s->base.ids[b];
			return 0;
		}
		return materialize(s, b, id);
	}
	staging_close(s);
	staging_name(s, b, name);
	fd = openat(c->dirty_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno;
	e = hash_fd(fd, len, id);
	if (e) {
		close(fd);
		return e;
	}
	/* The staging file becomes the block file: nothing is copied.  A
	 * second name of it is, so that the staging file stays until the
	 * commit is in the mirror (invariant 7). */
	snprintf(link, sizeof(link), "%s.c", name);
	if (s->failures)
		unlinkat(c->dirty_fd, link, 0);
	if (linkat(c->dirty_fd, name, c->dirty_fd, link, 0)) {
		e = errno;
		cfs_log_error("cannot link staging file %s of inode %llu: %s",
			      name, (unsigned long long)s->ino, strerror(e));
		close(fd);
		return e;
	}
	if (blockcache_place(c, c->dirty_fd, fd, link, id, s->synced, &err)) {
		/* Left when the rename found the same file there. */
		unlinkat(c->dirty_fd, link, 0);
		cfs_log_error("%s", err.msg);
		return err.code == CFS_ERR_STORAGE_FULL ? ENOSPC : EIO;
	}
	/* Adopted by a failed commit before: the rename found the same file
	 * there and left the link. */
	if (s->failures)
		unlinkat(c->dirty_fd, link, 0);
	*placed = true;
	return 0;
}

int session_commit_prepare(struct session *s, bool go_on,
			   struct session_commit *sc)
{
	bool dirty = false;
	int e = 0;

	assert(cfs_mutex_locked(&s->lock));
	*sc = (struct session_commit){ 0 };
	for (uint64_t b = 0; b < s->dirty_cap && !dirty; b++)
		dirty = s->dirty[b];
	if (!s->changed && !dirty && s->size == s->base_size) {
		sc->end_mark = s->in_db && !go_on;
		return 0;
	}
	sc->content = true;
	sc->bl.n = cfs_block_count(s->size);
	sc->bl.ids = sc->bl.n ? malloc(sc->bl.n * sizeof(sc->bl.ids[0])) : NULL;
	sc->placed = sc->bl.n ? calloc(sc->bl.n, sizeof(*sc->placed)) : NULL;
	if (sc->bl.n && (!sc->bl.ids || !sc->placed))
		return ENOMEM;
	/* Until the mirror lists them, the new blocks must not be evicted,
	 * nor the placed ones found unindexed (blockcache_place()). */
	blockcache_hold(s->t->fs->cache);
	sc->held = true;
	for (uint64_t b = 0; !e && b < sc->bl.n; b++)
		e = commit_block(s, b, &sc->bl.ids[b], &sc->placed[b]);
	sc->c = (struct local_content){ .size = s->size,
					.blocks = &sc->bl,
					.atime_ns = s->atime_ns,
					.mtime_ns = s->mtime_ns,
					.ctime_ns = s->ctime_ns,
					.mode = s->mode & 07777,
					.has_mode = s->mode != 0 };
	return e;
}

int session_commit_record(struct session *s, struct cfs_sql *db,
			  const struct session_commit *sc)
{
	struct cache *c = s->t->fs->cache;
	struct cfs_error err;
	enum cfs_err rc;
	int e;

	if (!sc->content)
		return sc->end_mark ? session_mark_in(db, s->ino, false, NULL)
				    : 0;
	/* The index of its blocks and the commit stand or fall together. */
	rc = cfs_sql_begin(db, true, &err);
	for (uint64_t b = 0; rc == CFS_OK && b < sc->bl.n; b++)
		if (sc->placed[b])
			rc = blockcache_index(c, db, &sc->bl.ids[b],
					      cfs_block_len(sc->c.size, b),
					      &err);
	if (rc)
		cfs_log_error("%s", err.msg);
	e = rc ? cfs_err_errno(rc) : session_mark_in(db, s->ino, false, &sc->c);
	rc = cfs_sql_end(db, e ? CFS_ERR_INTERNAL : CFS_OK, &err);
	if (rc && !e) {
		cfs_log_error("%s", err.msg);
		e = cfs_err_errno(rc);
	}
	return e;
}

int session_commit_finish(struct session *s, struct session_commit *sc, int e,
			  bool go_on)
{
	if (sc->held)
		blockcache_unhold(s->t->fs->cache);
	free(sc->placed);
	if (e) {
		cfs_blocklist_release(&sc->bl);
		if (sc->content)
			s->failures++;
		return e;
	}
	if (sc->end_mark || sc->content)
		s->in_db = false;
	if (!sc->content)
		return 0;
	s->failures = 0;
	/* In the mirror: the staging files are the cache's alone now. */
	for (uint64_t b = 0; b < s->dirty_cap; b++)
		staging_drop(s, b);
	cfs_blocklist_release(&s->base);
	s->base = sc->bl;
	s->base_size = s->size;
	s->changed = false;
	/* Writes may go on (fsync of an open file): count them again. */
	return go_on ? session_mark(s, true, NULL) : 0;
}

/* Commits s (its lock held): the new block list, queued durably. */
int session_commit_locked(struct session *s, bool go_on)
{
	struct session_commit sc;
	struct cfs_error err;
	struct cfs_sql *db = NULL;
	int e = session_commit_prepare(s, go_on, &sc);

	if (!e && !(db = cache_db(s->t->fs->cache, &err))) {
		cfs_log_error("%s", err.msg);
		e = EIO;
	}
	if (!e)
		e = session_commit_record(s, db, &sc);
	if (db)
		cache_db_release(s->t->fs->cache, db);
	return session_commit_finish(s, &sc, e, go_on);
}

int session_commit(struct session *s)
{
	int e;

	pthread_mutex_lock(&s->lock);
	e = session_commit_locked(s, true);
	pthread_mutex_unlock(&s->lock);
	return e;
}
