/*
 * Writes into a session (include/fs/session.h): writes, truncates and
 * appends of whole blocks, and the bytes each brings into the cache for
 * the keeper to admit first.  The staging files they go to: fs/staging.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/blockcache.h"
#include "cloudfs/clock.h"
#include "fs/fs.h"
#include "fs/session.h"
#include "fs/session_state.h"
#include "fs/staging.h"
/* Whether base block b is in the cache now. */
static bool cached(struct session *s, uint64_t b)
{
	int fd = blockcache_open(s->t->fs->cache, &s->base.ids[b]);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* Under s->lock: the bytes staging block b brings in, written up to upto
 * bytes into it: its base copied in, fetched first if not cached. */
static uint64_t stage_cost(struct session *s, uint64_t b, uint64_t upto)
{
	uint64_t copied;

	if (staging_is_dirty(s, b) || b >= s->base.n)
		return upto;
	copied = cfs_block_len(s->base_size, b);
	return (upto > copied ? upto : copied) + (cached(s, b) ? 0 : copied);
}

/* Under s->lock: growing the file to size stages its short last block
 * (invariant 6), unless a write stages it (then counted twice: the
 * keeper errs on the safe side). */
static uint64_t growth_cost(struct session *s, uint64_t size)
{
	uint64_t b = s->size / CFS_BLOCK_SIZE;

	if (size <= s->size || s->size % CFS_BLOCK_SIZE == 0 ||
	    staging_is_dirty(s, b) || b >= s->base.n)
		return 0;
	return stage_cost(s, b, cfs_block_len(size, b));
}

uint64_t session_truncate_cost(struct session *s, uint64_t size)
{
	uint64_t cost;

	pthread_mutex_lock(&s->lock);
	cost = growth_cost(s, size);
	if (size < s->size && size % CFS_BLOCK_SIZE)
		cost = stage_cost(s, size / CFS_BLOCK_SIZE, 0);
	pthread_mutex_unlock(&s->lock);
	return cost;
}

uint64_t session_write_cost(struct session *s, off_t off, size_t len)
{
	uint64_t end = (uint64_t)off + len, pos = (uint64_t)off, cost = 0;

	pthread_mutex_lock(&s->lock);
	for (uint64_t b = pos / CFS_BLOCK_SIZE; pos < end; b++) {
		uint64_t block_end = (b + 1) * CFS_BLOCK_SIZE;
		uint64_t n = (end < block_end ? end : block_end) - pos;
		uint64_t upto = pos + n - b * CFS_BLOCK_SIZE;

		cost += staging_is_dirty(s, b) || b >= s->base.n
				? n
				: stage_cost(s, b, upto);
		pos += n;
	}
	cost += growth_cost(s, end);
	pthread_mutex_unlock(&s->lock);
	return cost;
}

int session_write(struct session *s, session_fill_fn *fill, void *arg,
		  size_t len, off_t off, size_t *written)
{
	uint64_t end = (uint64_t)off + len, old_size, pos = (uint64_t)off;
	uint64_t first = pos / CFS_BLOCK_SIZE, grown;
	int e = 0;

	*written = 0;
	if (len == 0)
		return 0;
	if (end > CFS_MAX_FILE_SIZE)
		return EFBIG;
	pthread_mutex_lock(&s->lock);
	grown = staging_grown_block(s, end);
	pthread_mutex_unlock(&s->lock);
	/* Past the base's end, nothing between its last block and first. */
	e = staging_bases_fetch(s, grown < first ? grown : first,
				(end - 1) / CFS_BLOCK_SIZE);
	if (e)
		return e;
	pthread_mutex_lock(&s->lock);
	old_size = s->size;
	e = staging_grow(s, end);
	for (uint64_t b = pos / CFS_BLOCK_SIZE; !e && pos < end; b++) {
		uint64_t block_end = (b + 1) * CFS_BLOCK_SIZE;
		uint64_t n = (end < block_end ? end : block_end) - pos;
		size_t k = 0;

		e = staging_open(s, b);
		if (e)
			break;
		e = fill(arg, s->fd, pos - b * CFS_BLOCK_SIZE, n, &k);
		if (!e && k < n)
			e = ENOSPC;
		if (!e)
			pos += n;
	}
	*written = pos - (uint64_t)off;
	if (pos > s->size)
		s->size = pos;
	/* Invariant 1 for the blocks written and the old last block. */
	if (s->size != old_size && old_size)
		e = e ? e : staging_fit(s, (old_size - 1) / CFS_BLOCK_SIZE);
	for (uint64_t b = (uint64_t)off / CFS_BLOCK_SIZE;
	     !e && pos > (uint64_t)off && b <= (pos - 1) / CFS_BLOCK_SIZE; b++)
		e = staging_fit(s, b);
	if (*written) {
		s->mtime_ns = s->ctime_ns = cfs_now_ns();
		s->changed = true;
	}
	pthread_mutex_unlock(&s->lock);
	return *written ? 0 : e;
}

int session_truncate(struct session *s, uint64_t size)
{
	uint64_t keep = cfs_block_count(size), grown;
	bool cut;
	int e = 0;

	if (size > CFS_MAX_FILE_SIZE)
		return EFBIG;
	/* Cutting into a block stages it (invariant 3), and so does growing
	 * a short last one (invariant 6): its base first. */
	pthread_mutex_lock(&s->lock);
	cut = size < s->size && size % CFS_BLOCK_SIZE;
	grown = staging_grown_block(s, size);
	pthread_mutex_unlock(&s->lock);
	if (cut && (e = staging_bases_fetch(s, keep - 1, keep - 1)))
		return e;
	if (grown != UINT64_MAX && (e = staging_bases_fetch(s, grown, grown)))
		return e;
	pthread_mutex_lock(&s->lock);
	if (size > s->size)
		e = staging_grow(s, size);
	if (size < s->size) {
		for (uint64_t b = keep; b < s->dirty_cap; b++)
			staging_drop(s, b);
		/* Invariant 3. */
		if (size % CFS_BLOCK_SIZE)
			e = staging_open(s, keep - 1);
		if (s->base.n > keep)
			s->base.n = keep;
		if (s->base_size > size)
			s->base_size = size;
	}
	if (!e) {
		uint64_t old_last =
			s->size ? (s->size - 1) / CFS_BLOCK_SIZE : 0;

		s->size = size;
		if (keep)
			e = staging_fit(s, keep - 1);
		if (!e && old_last < keep)
			e = staging_fit(s, old_last);
		s->mtime_ns = s->ctime_ns = cfs_now_ns();
		s->changed = true;
	}
	pthread_mutex_unlock(&s->lock);
	return e;
}

/* At most this much per call: FUSE answers a copy's length in 32 bits. */
#define APPEND_MAX (256 * (uint64_t)CFS_BLOCK_SIZE)

int session_append_blocks(struct session *s, uint64_t off,
			  const struct cfs_blocklist *src, uint64_t src_size,
			  uint64_t src_off, uint64_t len, uint64_t *copied)
{
	uint64_t first = off / CFS_BLOCK_SIZE, from = src_off / CFS_BLOCK_SIZE;
	uint64_t bytes, n;
	struct cfs_block_id *ids;
	int e = 0;

	*copied = 0;
	if (src->n != cfs_block_count(src_size))
		return EIO;
	if (src_off >= src_size || len == 0)
		return 0;
	bytes = len < src_size - src_off ? len : src_size - src_off;
	/* Whole blocks, but for the source's last one. */
	if (src_off + bytes < src_size)
		bytes -= bytes % CFS_BLOCK_SIZE;
	if (bytes > APPEND_MAX)
		bytes = APPEND_MAX;
	if (off % CFS_BLOCK_SIZE || src_off % CFS_BLOCK_SIZE || bytes == 0)
		return EOPNOTSUPP;
	if (off + bytes > CFS_MAX_FILE_SIZE)
		return EFBIG;
	n = cfs_block_count(bytes);
	pthread_mutex_lock(&s->lock);
	if (s->size != off || s->base_size != off || s->base.n != first)
		e = EOPNOTSUPP;
	for (uint64_t b = first; !e && b < s->dirty_cap; b++)
		if (s->dirty[b])
			e = EOPNOTSUPP;
	ids = e ? NULL
		: realloc(s->base.ids, (first + n) * sizeof(s->base.ids[0]));
	if (!e && !ids)
		e = ENOMEM;
	if (!e) {
		memcpy(ids + first, src->ids + from, n * sizeof(ids[0]));
		s->base.ids = ids;
		s->base.n = first + n;
		s->base_size = s->size = off + bytes;
		s->mtime_ns = s->ctime_ns = cfs_now_ns();
		s->changed = true;
		*copied = bytes;
	}
	pthread_mutex_unlock(&s->lock);
	return e;
}
