/*
 * Reads answered from a session (include/fs/session.h): its staging
 * files overlaid on its base, zeros where neither reaches (invariants 1
 * and 2 of fs/session_state.h).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "fs/fs.h"
#include "fs/session.h"
#include "fs/session_state.h"
#include "fs/staging.h"

static void add_span(struct session_span *v, size_t *n, int fd, uint64_t pos,
		     const void *mem, size_t len)
{
	v[(*n)++] = (struct session_span){
		.fd = fd, .pos = pos, .mem = mem, .len = len
	};
}

/* The spans of [pos, end) of block b of s (invariants 1 and 2), added to
 * v; zeros, of at least end - pos bytes, outlives the reply. */
static int read_block(struct session *s, struct session_span *v, size_t *n,
		      const char *zeros, uint64_t b, uint64_t pos, uint64_t end)
{
	uint64_t start = b * CFS_BLOCK_SIZE;
	uint64_t base_end = start + cfs_block_len(s->base_size, b);
	char name[48];
	int fd;

	assert(start <= pos && pos < end && end <= start + CFS_BLOCK_SIZE);
	if (staging_is_dirty(s, b)) {
		staging_name(s, b, name);
		fd = openat(s->t->fs->cache->dirty_fd, name,
			    O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return errno;
		add_span(v, n, fd, pos - start, NULL, end - pos);
		return 0;
	}
	if (b < s->base.n && pos < base_end) {
		uint64_t stop = end < base_end ? end : base_end;

		fd = staging_base_open(s, b);
		if (fd < 0)
			return EIO;
		add_span(v, n, fd, pos - start, NULL, stop - pos);
		pos = stop;
	}
	if (pos < end)
		add_span(v, n, -1, 0, zeros, end - pos);
	return 0;
}

bool session_read(struct sessions *t, uint64_t ino, size_t size, off_t off,
		  session_reply_fn *reply, void *arg)
{
	struct session_span *v = NULL;
	struct session *s;
	uint64_t pos = (uint64_t)off, end;
	char *zeros = NULL;
	size_t n = 0;
	int e = 0;

	/* The base blocks the read shows are fetched first, with no lock
	 * held (staging_bases_fetch()); s may settle and go meanwhile, so it is
	 * looked up again after each. */
	for (uint64_t tries = 0;; tries++) {
		struct cfs_block_id id;
		uint32_t len;

		pthread_mutex_lock(&t->lock);
		s = *session_slot(t, ino);
		if (s)
			pthread_mutex_lock(&s->lock);
		pthread_mutex_unlock(&t->lock);
		if (!s)
			return false;
		end = pos + size < s->size ? pos + size : s->size;
		if (pos >= end ||
		    tries > (end - 1) / CFS_BLOCK_SIZE - pos / CFS_BLOCK_SIZE ||
		    !staging_base_uncached(s, pos / CFS_BLOCK_SIZE,
					   (end - 1) / CFS_BLOCK_SIZE, &id,
					   &len))
			break;
		pthread_mutex_unlock(&s->lock);
		if (staging_base_fetch(t->fs, ino, &id, len)) {
			reply(arg, EIO, NULL, 0);
			return true;
		}
	}
	if (pos < end) {
		size_t blocks =
			(end - 1) / CFS_BLOCK_SIZE - pos / CFS_BLOCK_SIZE + 1;

		v = calloc(2 * blocks, sizeof(*v));
		zeros = calloc(1, end - pos);
		if (!v || !zeros)
			e = ENOMEM;
	}
	for (uint64_t b = pos / CFS_BLOCK_SIZE; !e && pos < end; b++) {
		uint64_t stop = (b + 1) * CFS_BLOCK_SIZE;

		if (stop > end)
			stop = end;
		e = read_block(s, v, &n, zeros, b, pos, stop);
		pos = stop;
	}
	reply(arg, e, e ? NULL : v, e ? 0 : n);
	pthread_mutex_unlock(&s->lock);
	for (size_t i = 0; i < n; i++)
		if (v[i].fd >= 0)
			close(v[i].fd);
	free(v);
	free(zeros);
	return true;
}
