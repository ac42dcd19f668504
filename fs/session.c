/*
 * Write sessions (fs/session.h).
 *
 * Invariants, under a session's lock:
 *  1. dirty[b] says block b of the file lives in the staging file
 *     DIR/dirty/INO.B; a staging file is exactly as long as its block is
 *     (cfs_block_len(size, b)), so it can be served as it is.
 *  2. A block that is not dirty shows base block b up to the base's length
 *     of it (cfs_block_len(base_size, b)), and zeros beyond; a block past
 *     the base shows zeros.
 *  3. Cutting a file short stages its new last block: bytes cut off must
 *     read as zeros if the file grows again, not come back from the base.
 *  4. in_db: the mirror counts this session as a pending change of the
 *     file (local_write_begin) until its commit is queued.
 *  5. A settling session stays in the table until its commit is in the
 *     mirror: until then the mirror shows the file's older content, so
 *     stat and read are answered by the session, and an open or a touch
 *     waits for the commit and then starts from the mirror.
 *  6. A commit needs no byte of a base block: growing the file past a
 *     short last base block stages that block first (stage_grown()), so
 *     a base block that cannot be fetched fails the write or truncate
 *     that needs it (EIO), never the commit after write(2) accepted it.
 *  7. A commit that fails (a full disk, a SQLite error) loses nothing:
 *     the staging files stay until the mirror holds the commit, and the
 *     session stays in the table and is committed again later
 *     (settle_one()).  A staging file linked into the cache by a failed
 *     commit is copied before it is written again (unshare_staging()).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/blockcache.h"
#include "cloudfs/clock.h"
#include "cache/local.h"
#include "cloudfs/log.h"
#include "cloudfs/platform.h"
#include "fs/fs.h"
#include "fs/session.h"
#include "fs/upload.h"

#define N_BUCKETS    256
#define SETTLE_BATCH 64

struct session {
	struct sessions *t;
	uint64_t ino;
	/* The table's: */
	unsigned handles;
	uint64_t settle_at_ms; /* once handles is 0 */
	bool settling;	       /* invariant 5 */
	/* Settling, and its staging files' bytes are on disk: settle_due()
	 * synced the file system after the last write (the settler's). */
	bool synced;
	struct session *due_next; /* settle_due()'s batch */
	struct session *next;
	/* The session's (its lock: never held across a fetch, see
	 * fetch_bases() and include/fs/locks.h): */
	pthread_mutex_t lock;
	uint64_t size;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint32_t mode; /* set by a chmod since the session began, or 0 */
	bool changed;
	bool in_db;
	unsigned failures; /* commits failed in a row (invariant 7) */
	struct cfs_blocklist base;
	uint64_t base_size;
	uint8_t *dirty;
	size_t dirty_cap;
	int fd; /* the staging file of block fd_block, or -1 */
	uint64_t fd_block;
};

struct sessions {
	struct fs *fs;
	pthread_mutex_t lock;
	pthread_cond_t settled; /* a settling session left the table */
	struct session *table[N_BUCKETS];
	/* The settler: its own thread, so that a closed file reaches the
	 * durable queue on time even while the uploader waits on the
	 * network. */
	pthread_t settler;
	pthread_cond_t tick; /* a handle was released, or stop */
	bool stop, running;
	/* Sessions that left the table (sessions_settled()). */
	atomic_uint_fast64_t settled_count;
};

static struct session **slot(struct sessions *t, uint64_t ino)
{
	struct session **p = &t->table[ino % N_BUCKETS];

	while (*p && (*p)->ino != ino)
		p = &(*p)->next;
	return p;
}

/* The session of ino that may change (invariant 5), t's lock held. */
static struct session **live_slot(struct sessions *t, uint64_t ino)
{
	struct session **p;

	while (*(p = slot(t, ino)) && (*p)->settling)
		pthread_cond_wait(&t->settled, &t->lock);
	assert(!*p || !(*p)->settling);
	return p;
}

static void staging_name(const struct session *s, uint64_t b, char name[48])
{
	snprintf(name, 48, "%llu.%llu", (unsigned long long)s->ino,
		 (unsigned long long)b);
}

static bool is_dirty(const struct session *s, uint64_t b)
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

static void close_fd(struct session *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* Drops staging file b (invariant 1). */
static void unstage(struct session *s, uint64_t b)
{
	char name[48];

	if (!is_dirty(s, b))
		return;
	if (s->fd_block == b)
		close_fd(s);
	staging_name(s, b, name);
	unlinkat(s->t->fs->cache->dirty_fd, name, 0);
	set_dirty(s, b, false);
}

/* The base block b, opened (fetched first if it is not cached). */
static int open_base(struct session *s, uint64_t b)
{
	struct fs *fs = s->t->fs;
	struct cfs_error err;
	int fd = fetcher_open(fs->fetch, &s->base.ids[b],
			      cfs_block_len(s->base_size, b),
			      fs->opt.timeout_s * 1000, &err);

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
static bool uncached_base(struct session *s, uint64_t first, uint64_t last,
			  struct cfs_block_id *id, uint32_t *len)
{
	for (uint64_t b = first; b <= last && b < s->base.n; b++) {
		int fd;

		if (is_dirty(s, b) || b * CFS_BLOCK_SIZE >= s->size)
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
static int fetch_base(struct fs *fs, uint64_t ino,
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
static int fetch_bases(struct session *s, uint64_t first, uint64_t last)
{
	for (uint64_t tries = 0; tries <= last - first; tries++) {
		struct cfs_block_id id;
		uint32_t len;
		bool missing;
		int e;

		pthread_mutex_lock(&s->lock);
		missing = uncached_base(s, first, last, &id, &len);
		pthread_mutex_unlock(&s->lock);
		if (!missing)
			return 0;
		e = fetch_base(s->t->fs, s->ino, &id, len);
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
static int stage(struct session *s, uint64_t b)
{
	int dir = s->t->fs->cache->dirty_fd, e = 0, fd;
	char name[48];

	if (s->fd >= 0 && s->fd_block == b)
		return 0;
	close_fd(s);
	staging_name(s, b, name);
	if (is_dirty(s, b)) {
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
			int src = open_base(s, b);

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
static int stage_grown(struct session *s, uint64_t size)
{
	uint64_t b = s->size ? (s->size - 1) / CFS_BLOCK_SIZE : 0;

	if (size <= s->size || !s->size || is_dirty(s, b) || b >= s->base.n ||
	    cfs_block_len(s->base_size, b) == cfs_block_len(size, b))
		return 0;
	return stage(s, b);
}

/* The block stage_grown() stages when the file grows to size, or
 * UINT64_MAX; s->lock held. */
static uint64_t grown_block(struct session *s, uint64_t size)
{
	uint64_t b = s->size ? (s->size - 1) / CFS_BLOCK_SIZE : 0;

	if (size <= s->size || !s->size || b >= s->base.n)
		return UINT64_MAX;
	return b;
}

/* Invariant 1: staging file b as long as block b of a file of size. */
static int fit(struct session *s, uint64_t b)
{
	int e;

	if (!is_dirty(s, b))
		return 0;
	e = stage(s, b);
	if (!e && ftruncate(s->fd, cfs_block_len(s->size, b)))
		e = errno;
	return e;
}

static long settle_due(struct sessions *t);

static void *settle_thread(void *arg)
{
	struct sessions *t = arg;

	pthread_mutex_lock(&t->lock);
	while (!t->stop) {
		long next;

		pthread_mutex_unlock(&t->lock);
		next = settle_due(t);
		pthread_mutex_lock(&t->lock);
		if (next < 0) {
			if (!t->stop)
				pthread_cond_wait(&t->tick, &t->lock);
		} else if (next > 0) {
			struct timespec until = cfs_deadline_in_ms(next);

			if (!t->stop)
				pthread_cond_timedwait(&t->tick, &t->lock,
						       &until);
		}
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}

struct sessions *sessions_new(struct fs *fs)
{
	struct sessions *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->fs = fs;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->settled, NULL);
	pthread_cond_init(&t->tick, NULL);
	return t;
}

int sessions_start(struct sessions *t)
{
	int e = pthread_create(&t->settler, NULL, settle_thread, t);

	t->running = e == 0;
	return e;
}

static void session_free(struct session *s)
{
	for (uint64_t b = 0; b < s->dirty_cap; b++)
		unstage(s, b);
	close_fd(s);
	cfs_blocklist_release(&s->base);
	free(s->dirty);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

/* Counts (or stops counting) s as a pending change in the mirror. */
static int mark(struct session *s, bool begin, const struct local_content *c)
{
	struct fs *fs = s->t->fs;
	struct mirror_changes ch = { 0 };
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);
	enum cfs_err rc;

	if (!db) {
		cfs_log_error("%s", err.msg);
		return EIO;
	}
	rc = begin ? local_write_begin(db, s->ino, &err)
		   : local_write_end(db, s->ino, c, &ch, &err);
	cache_db_release(fs->cache, db);
	mirror_changes_release(&ch);
	if (rc == CFS_OK)
		s->in_db = begin;
	else if (rc != CFS_ERR_NOT_FOUND)
		cfs_log_error("%s", err.msg);
	return rc ? cfs_err_errno(rc) : 0;
}

/* A new session from the mirror's entry. */
static int start(struct sessions *t, uint64_t ino, bool new,
		 struct session **out)
{
	struct mirror_entry e;
	struct cfs_error err;
	struct session *s;
	struct cfs_sql *db = cache_db(t->fs->cache, &err);
	enum cfs_err rc = db ? mirror_get(db, ino, &e, &err) : err.code;
	int eno;

	if (db)
		cache_db_release(t->fs->cache, db);
	/* Gone since the kernel's lookup (a change from elsewhere applied):
	 * ESTALE, as ops_get answers, makes open(2) look the name up again
	 * rather than fail with ENOENT on a name that exists. */
	if (rc)
		return rc == CFS_ERR_NOT_FOUND ? ESTALE : cfs_err_errno(rc);
	if (e.kind != CFS_KIND_FILE) {
		mirror_entry_release(&e);
		return EISDIR;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		mirror_entry_release(&e);
		return ENOMEM;
	}
	*s = (struct session){ .t = t,
			       .ino = ino,
			       .handles = 1,
			       .size = e.size,
			       .atime_ns = e.atime_ns,
			       .mtime_ns = e.mtime_ns,
			       .ctime_ns = e.ctime_ns,
			       .base = e.blocks,
			       .base_size = e.size,
			       .fd = -1,
			       /* A new file is a change even if never
				* written: the server must get it. */
			       .changed = new,
			       .in_db = new };
	e.blocks = (struct cfs_blocklist){ 0 };
	mirror_entry_release(&e);
	pthread_mutex_init(&s->lock, NULL);
	eno = new ? 0 : mark(s, true, NULL);
	if (eno == ENOENT)
		eno = ESTALE; /* removed meanwhile, as above */
	if (eno) {
		session_free(s);
		return eno;
	}
	*out = s;
	return 0;
}

int session_open(struct sessions *t, uint64_t ino, bool new,
		 struct session **out)
{
	struct session **p;
	int e = 0;

	/* Held across start(): two opens of one file make one session. */
	pthread_mutex_lock(&t->lock);
	p = live_slot(t, ino);
	if (*p) {
		(*p)->handles++;
	} else {
		e = start(t, ino, new, p);
	}
	*out = *p;
	pthread_mutex_unlock(&t->lock);
	return e;
}

void session_release(struct sessions *t, struct session *s)
{
	pthread_mutex_lock(&t->lock);
	assert(s->handles > 0 && !s->settling);
	if (--s->handles == 0) {
		s->settle_at_ms = cfs_monotonic_ms() + t->fs->opt.settle_ms;
		pthread_cond_signal(&t->tick);
	}
	pthread_mutex_unlock(&t->lock);
}

bool session_stat(struct sessions *t, uint64_t ino, struct session_attr *a)
{
	struct session *s;

	pthread_mutex_lock(&t->lock);
	s = *slot(t, ino);
	if (s) {
		pthread_mutex_lock(&s->lock);
		*a = (struct session_attr){ .size = s->size,
					    .atime_ns = s->atime_ns,
					    .mtime_ns = s->mtime_ns,
					    .ctime_ns = s->ctime_ns,
					    .mode = s->mode };
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return s != NULL;
}

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

	if (is_dirty(s, b) || b >= s->base.n)
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
	    is_dirty(s, b) || b >= s->base.n)
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

		cost += is_dirty(s, b) || b >= s->base.n
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
	grown = grown_block(s, end);
	pthread_mutex_unlock(&s->lock);
	/* Past the base's end, nothing between its last block and first. */
	e = fetch_bases(s, grown < first ? grown : first,
			(end - 1) / CFS_BLOCK_SIZE);
	if (e)
		return e;
	pthread_mutex_lock(&s->lock);
	old_size = s->size;
	e = stage_grown(s, end);
	for (uint64_t b = pos / CFS_BLOCK_SIZE; !e && pos < end; b++) {
		uint64_t block_end = (b + 1) * CFS_BLOCK_SIZE;
		uint64_t n = (end < block_end ? end : block_end) - pos;
		size_t k = 0;

		e = stage(s, b);
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
		e = e ? e : fit(s, (old_size - 1) / CFS_BLOCK_SIZE);
	for (uint64_t b = (uint64_t)off / CFS_BLOCK_SIZE;
	     !e && pos > (uint64_t)off && b <= (pos - 1) / CFS_BLOCK_SIZE; b++)
		e = fit(s, b);
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
	grown = grown_block(s, size);
	pthread_mutex_unlock(&s->lock);
	if (cut && (e = fetch_bases(s, keep - 1, keep - 1)))
		return e;
	if (grown != UINT64_MAX && (e = fetch_bases(s, grown, grown)))
		return e;
	pthread_mutex_lock(&s->lock);
	if (size > s->size)
		e = stage_grown(s, size);
	if (size < s->size) {
		for (uint64_t b = keep; b < s->dirty_cap; b++)
			unstage(s, b);
		/* Invariant 3. */
		if (size % CFS_BLOCK_SIZE)
			e = stage(s, keep - 1);
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
			e = fit(s, keep - 1);
		if (!e && old_last < keep)
			e = fit(s, old_last);
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

bool session_touch(struct sessions *t, uint64_t ino,
		   const struct local_attrs *a, int64_t ctime_ns)
{
	struct session *s;

	pthread_mutex_lock(&t->lock);
	s = *live_slot(t, ino);
	if (s) {
		pthread_mutex_lock(&s->lock);
		if (a->atime_ns)
			s->atime_ns = *a->atime_ns;
		if (a->mtime_ns)
			s->mtime_ns = *a->mtime_ns;
		if (a->mode)
			s->mode = SESSION_MODE_SET | (*a->mode & CFS_MODE_MASK);
		s->ctime_ns = ctime_ns;
		s->changed = true;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&t->lock);
	return s != NULL;
}

void session_ctime(struct sessions *t, uint64_t ino, int64_t ctime_ns)
{
	struct session *s;

	pthread_mutex_lock(&t->lock);
	s = *live_slot(t, ino);
	if (s) {
		pthread_mutex_lock(&s->lock);
		if (ctime_ns > s->ctime_ns)
			s->ctime_ns = ctime_ns;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_unlock(&t->lock);
}

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
	if (is_dirty(s, b)) {
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

		fd = open_base(s, b);
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
	 * held (fetch_bases()); s may settle and go meanwhile, so it is
	 * looked up again after each. */
	for (uint64_t tries = 0;; tries++) {
		struct cfs_block_id id;
		uint32_t len;

		pthread_mutex_lock(&t->lock);
		s = *slot(t, ino);
		if (s)
			pthread_mutex_lock(&s->lock);
		pthread_mutex_unlock(&t->lock);
		if (!s)
			return false;
		end = pos + size < s->size ? pos + size : s->size;
		if (pos >= end ||
		    tries > (end - 1) / CFS_BLOCK_SIZE - pos / CFS_BLOCK_SIZE ||
		    !uncached_base(s, pos / CFS_BLOCK_SIZE,
				   (end - 1) / CFS_BLOCK_SIZE, &id, &len))
			break;
		pthread_mutex_unlock(&s->lock);
		if (fetch_base(t->fs, ino, &id, len)) {
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
		src = open_base(s, b);
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

/* Block b of the new content as a block file of the cache; *id its id. */
static int commit_block(struct session *s, uint64_t b, struct cfs_block_id *id)
{
	struct cache *c = s->t->fs->cache;
	uint32_t len = cfs_block_len(s->size, b);
	struct cfs_error err;
	char name[48], link[56];
	int e, fd;

	if (!is_dirty(s, b)) {
		if (b < s->base.n && cfs_block_len(s->base_size, b) == len) {
			*id = s->base.ids[b];
			return 0;
		}
		return materialize(s, b, id);
	}
	close_fd(s);
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
	if (blockcache_adopt(c, c->dirty_fd, fd, link, id, len, s->synced,
			     &err)) {
		/* Left when the rename found the same file there. */
		unlinkat(c->dirty_fd, link, 0);
		cfs_log_error("%s", err.msg);
		return err.code == CFS_ERR_STORAGE_FULL ? ENOSPC : EIO;
	}
	/* Adopted by a failed commit before: the rename found the same file
	 * there and left the link. */
	if (s->failures)
		unlinkat(c->dirty_fd, link, 0);
	return 0;
}

/* Commits s (its lock held): the new block list, queued durably. */
static int commit_locked(struct session *s, bool go_on)
{
	struct cfs_blocklist bl = { 0 };
	struct local_content c;
	bool dirty = false;
	int e = 0;

	for (uint64_t b = 0; b < s->dirty_cap && !dirty; b++)
		dirty = s->dirty[b];
	if (!s->changed && !dirty && s->size == s->base_size) {
		e = s->in_db && !go_on ? mark(s, false, NULL) : 0;
		return e;
	}
	bl.n = cfs_block_count(s->size);
	bl.ids = bl.n ? malloc(bl.n * sizeof(bl.ids[0])) : NULL;
	if (bl.n && !bl.ids)
		return ENOMEM;
	/* Until the mirror lists them, the new blocks must not be evicted. */
	blockcache_hold(s->t->fs->cache);
	for (uint64_t b = 0; !e && b < bl.n; b++)
		e = commit_block(s, b, &bl.ids[b]);
	c = (struct local_content){ .size = s->size,
				    .blocks = &bl,
				    .atime_ns = s->atime_ns,
				    .mtime_ns = s->mtime_ns,
				    .ctime_ns = s->ctime_ns,
				    .mode = s->mode & 07777,
				    .has_mode = s->mode != 0 };
	if (!e)
		e = mark(s, false, &c);
	blockcache_unhold(s->t->fs->cache);
	if (e) {
		cfs_blocklist_release(&bl);
		s->failures++;
		return e;
	}
	s->failures = 0;
	/* In the mirror: the staging files are the cache's alone now. */
	for (uint64_t b = 0; b < s->dirty_cap; b++)
		unstage(s, b);
	cfs_blocklist_release(&s->base);
	s->base = bl;
	s->base_size = s->size;
	s->changed = false;
	/* Writes may go on (fsync of an open file): count them again. */
	return go_on ? mark(s, true, NULL) : 0;
}

int session_commit(struct session *s)
{
	int e;

	pthread_mutex_lock(&s->lock);
	e = commit_locked(s, true);
	pthread_mutex_unlock(&s->lock);
	return e;
}

/* The path of inode ino for a message, malloc'd, or NULL. */
static char *path_of(struct fs *fs, uint64_t ino)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);
	char *path = NULL;

	if (db && mirror_path(db, ino, &path, &err) != CFS_OK)
		path = NULL;
	if (db)
		cache_db_release(fs->cache, db);
	return path;
}

/* Milliseconds before a commit that failed n times in a row is tried
 * again: 1 s, doubling up to a minute. */
static uint64_t retry_ms(unsigned n)
{
	return n > 6 ? 60000 : 1000ull << (n ? n - 1 : 0);
}

/*
 * Commits s, settling in the table, and takes it out (invariant 5): true.
 * When the commit fails, s stays in the table, no longer settling, due
 * again after retry_ms() (invariant 7): false; but with give_up (an
 * unmount out of time) it goes, and the loss is logged.
 */
static bool settle_one(struct sessions *t, struct session *s, bool give_up)
{
	struct session **p;
	unsigned failures;
	char *path;
	int e;

	pthread_mutex_lock(&s->lock);
	e = commit_locked(s, false);
	failures = s->failures;
	pthread_mutex_unlock(&s->lock);
	if (e) {
		path = path_of(t->fs, s->ino);
		if (give_up)
			cfs_log_error(
				"cannot commit '%s' (inode %llu) at unmount: %s; its last writes are lost",
				path ? path : "?", (unsigned long long)s->ino,
				strerror(e));
		else
			cfs_log_error(
				"cannot commit '%s' (inode %llu): %s; trying again in %llu s",
				path ? path : "?", (unsigned long long)s->ino,
				strerror(e),
				(unsigned long long)retry_ms(failures) / 1000);
		free(path);
	}
	if (e && !give_up) {
		pthread_mutex_lock(&t->lock);
		s->settling = false;
		s->settle_at_ms = cfs_monotonic_ms() + retry_ms(failures);
		pthread_cond_broadcast(&t->settled);
		pthread_mutex_unlock(&t->lock);
		return false;
	}
	/* Handles opened on the older content read the commit. */
	openfiles_changed(t->fs->open, s->ino);
	pthread_mutex_lock(&t->lock);
	/* No reader is inside s once both locks were held. */
	pthread_mutex_lock(&s->lock);
	for (p = slot(t, s->ino); *p != s; p = &(*p)->next)
		;
	*p = s->next;
	atomic_fetch_add(&t->settled_count, 1);
	pthread_mutex_unlock(&s->lock);
	pthread_cond_broadcast(&t->settled);
	pthread_mutex_unlock(&t->lock);
	session_free(s);
	return !e;
}

/* What settle_one() committed, made durable: one fsync for many files. */
static void settled_durable(struct sessions *t)
{
	struct cfs_error err;

	if (cache_sync(t->fs->cache, &err))
		cfs_log_error(
			"cannot make the commits of closed files durable: %s",
			err.msg);
}

/*
 * Commits up to SETTLE_BATCH sessions whose settling delay has passed,
 * found in one walk of the table (a tree unpacked leaves thousands); returns
 * the milliseconds until the next one is due, 0 to look again at once, or
 * -1 when none waits.  The batch is small so that a file reopened meanwhile
 * does not wait long for its turn (invariant 5).
 */
static long settle_due(struct sessions *t)
{
	uint64_t now = cfs_monotonic_ms();
	struct session *due = NULL;
	size_t n = 0;
	long next = -1;

	pthread_mutex_lock(&t->lock);
	for (size_t i = 0; i < N_BUCKETS; i++) {
		for (struct session *s = t->table[i]; s; s = s->next) {
			if (s->handles || s->settling)
				continue;
			if (s->settle_at_ms <= now && n < SETTLE_BATCH) {
				s->settling = true;
				s->due_next = due;
				due = s;
				n++;
			} else if (s->settle_at_ms > now &&
				   (next < 0 ||
				    (long)(s->settle_at_ms - now) < next)) {
				next = (long)(s->settle_at_ms - now);
			}
		}
	}
	pthread_mutex_unlock(&t->lock);
	if (!due)
		return next;
	/*
	 * A settling session no longer changes (invariant 5: writes, opens
	 * and truncates wait for it to leave), so one syncfs(2) here makes
	 * the staging files of the whole batch durable, in place of an
	 * fsync of each before it is renamed into the cache.  Failing, each
	 * file is fsync'ed as it is adopted, as without it.
	 */
	if (platform_syncfs(t->fs->cache->dirty_fd) == 0)
		for (struct session *s = due; s; s = s->due_next)
			s->synced = true;
	while (due) {
		struct session *s = due;

		due = s->due_next;
		settle_one(t, s, false);
	}
	settled_durable(t);
	uploader_wake(t->fs->upload);
	return 0;
}

void sessions_free(struct sessions *t)
{
	uint64_t until;

	if (!t)
		return;
	if (t->running) {
		pthread_mutex_lock(&t->lock);
		t->stop = true;
		pthread_cond_signal(&t->tick);
		pthread_mutex_unlock(&t->lock);
		pthread_join(t->settler, NULL);
	}
	/* A commit that fails is tried again for up to the network's
	 * timeout, as the uploader sends the queue (invariant 7). */
	until = cfs_monotonic_ms() + 1000 * (uint64_t)t->fs->opt.timeout_s;
	for (size_t i = 0; i < N_BUCKETS; i++) {
		while (t->table[i]) {
			bool give_up = cfs_monotonic_ms() >= until;

			t->table[i]->settling = true;
			if (!settle_one(t, t->table[i], give_up) && !give_up)
				usleep(250 * 1000);
		}
	}
	settled_durable(t);
	pthread_cond_destroy(&t->tick);
	pthread_cond_destroy(&t->settled);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

/* Whether a session of t is being committed (t's lock held). */
static bool any_settling(struct sessions *t)
{
	for (size_t b = 0; b < N_BUCKETS; b++)
		for (struct session *s = t->table[b]; s; s = s->next)
			if (s->settling)
				return true;
	return false;
}

void sessions_settle_now(struct sessions *t)
{
	if (!t)
		return;
	pthread_mutex_lock(&t->lock);
	for (size_t b = 0; b < N_BUCKETS; b++)
		for (struct session *s = t->table[b]; s; s = s->next)
			if (!s->handles)
				s->settle_at_ms = 0;
	pthread_mutex_unlock(&t->lock);
	/* Here rather than by the settler, to know when they are done;
	 * those the settler took meanwhile are waited for. */
	while (settle_due(t) == 0)
		;
	pthread_mutex_lock(&t->lock);
	while (any_settling(t))
		pthread_cond_wait(&t->settled, &t->lock);
	pthread_mutex_unlock(&t->lock);
}

uint64_t sessions_settled(struct sessions *t)
{
	return t ? atomic_load(&t->settled_count) : 0;
}

size_t sessions_count(struct sessions *t)
{
	size_t n = 0;

	if (!t)
		return 0;
	pthread_mutex_lock(&t->lock);
	for (size_t b = 0; b < N_BUCKETS; b++)
		for (struct session *s = t->table[b]; s; s = s->next)
			n++;
	pthread_mutex_unlock(&t->lock);
	return n;
}
