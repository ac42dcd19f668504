/*
 * The embedded block store: one file per block.
 *
 *	DIR/blocks/ab/abcdef...   the bytes of block abcdef... (64 hex digits)
 *	DIR/tmp/upload-XXXXXX     uploads in flight (emptied at open)
 *
 * DIR is the data directory (serve --data) or the one --blocks dir:DIR
 * names.  An upload streams into its temporary file; a download hands
 * the HTTP layer the block file's descriptor (read_take_fd), which it
 * sends with sendfile(2).
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
 *  6. A batch upload (write_finish_many) keeps invariants 1 and 2 with two
 *     syncs of the whole file system in place of two fsyncs per block:
 *     syncfs(2) once all temporary files are written (their bytes are
 *     durable), the renames, and syncfs(2) again (the names are).  Every
 *     block of the batch takes the same steps, new or held.
 *  7. An upload's bytes go to the disk around the page cache (direct
 *     I/O) where the file system allows it, gathered in an aligned
 *     buffer of at most DIRECT_CHUNK, the last piece padded with zeros
 *     and cut back by ftruncate() before the fsync of invariant 1.  Filling
 *     fresh page-cache pages cost the server more CPU than hashing the
 *     bytes, and the fsync then wrote them out anyway; a reader of a
 *     block soon after reads it from the disk.  Buffers of DIRECT_CHUNK
 *     go back to a pool of at most POOL_MAX, not to the allocator: fresh
 *     memory costs what fresh page-cache pages did.  At most LENT_MAX
 *     are out; an upload that finds none writes SMALL_CHUNK at a time.
 *     A block of at most SMALL_CHUNK goes through the cache (below).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cloudfs/log.h"
#include "cloudfs/platform.h"
#include "server/blockstore.h"

#define REAP_DELAY_MS 100
/* Invariant 7: what an upload gathers before it writes, at most. */
#define DIRECT_CHUNK  (1024 * 1024)
/* A block's first bytes gather in a buffer of this size, its own. */
#define SMALL_CHUNK   (64 * 1024)
/* Buffers of DIRECT_CHUNK out at most (memory: their product), kept. */
#define LENT_MAX      64
#define POOL_MAX      16

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
	/* Invariant 7: free buffers of DIRECT_CHUNK, pooled of them, and
	 * how many are lent to uploads; under pool_lock. */
	pthread_mutex_t pool_lock;
	void *pool[POOL_MAX];
	size_t pooled, lent;
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

struct dir_writer {
	struct blockstore_writer base;
	int fd;
	/* Invariant 7: fill bytes gathered in buf (cap bytes, aligned), size
	 * bytes received in all; !direct once writes go through the cache. */
	bool direct;
	char *buf;
	size_t cap, fill;
	uint64_t size;
	char path[4096];
};

struct dir_reader {
	struct blockstore_reader base;
	int fd; /* -1 once taken */
};

/* errnum (positive) as the interface's code, with the message fmt... */
static enum cfs_err dir_fail(struct cfs_error *err, int errnum, const char *fmt,
			     ...) __attribute__((format(printf, 3, 4)));

static enum cfs_err dir_fail(struct cfs_error *err, int errnum, const char *fmt,
			     ...)
{
	enum cfs_err code = CFS_ERR_INTERNAL;
	char what[400];
	va_list ap;

	if (errnum == ENOSPC || errnum == EDQUOT)
		code = CFS_ERR_STORAGE_FULL;
	else if (errnum == ENOENT)
		code = CFS_ERR_NOT_FOUND;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return cfs_fail(err, code, "%s: %s", what, strerror(errnum));
}

static enum cfs_err dir_write_begin(struct blockstore *bs,
				    struct blockstore_writer **out,
				    struct cfs_error *err)
{
	struct dir_store *s = (struct dir_store *)bs;
	struct dir_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	w->base.bs = bs;
	if ((size_t)snprintf(w->path, sizeof(w->path), "%s/upload-XXXXXX",
			     s->tmp) >= sizeof(w->path)) {
		free(w);
		return dir_fail(err, ENAMETOOLONG,
				"cannot create a temporary file in '%s'",
				s->tmp);
	}
	w->fd = mkostemp(w->path, O_CLOEXEC);
	if (w->fd < 0) {
		int e = errno;

		free(w);
		return dir_fail(err, e,
				"cannot create a temporary file in '%s'",
				s->tmp);
	}
	w->direct = platform_write_direct(w->fd, true) == 0;
	*out = &w->base;
	return CFS_OK;
}

/* Writes len bytes at p to w's file, as they are; 0 or an errno. */
static int write_all(struct dir_writer *w, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(w->fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Invariant 7: writes the len gathered bytes (aligned, but the last
 * piece); a file system that refuses direct I/O at the first write gets
 * them, and what follows, through the cache.  0 or an errno. */
static int write_gathered(struct dir_writer *w, size_t len)
{
	int e = write_all(w, w->buf, len);

	if (e == EINVAL && w->direct && w->size == w->fill &&
	    platform_write_direct(w->fd, false) == 0) {
		w->direct = false;
		e = write_all(w, w->buf, len);
	}
	return e;
}

/* Invariant 7: a buffer of DIRECT_CHUNK, from the pool, or NULL when
 * LENT_MAX are out already or memory is short. */
static void *chunk_lend(struct dir_store *s)
{
	void *buf = NULL;

	pthread_mutex_lock(&s->pool_lock);
	if (s->lent < LENT_MAX) {
		if (s->pooled)
			buf = s->pool[--s->pooled];
		else if (posix_memalign(&buf, PLATFORM_DIRECT_ALIGN,
					DIRECT_CHUNK))
			buf = NULL;
		s->lent += buf != NULL;
	}
	pthread_mutex_unlock(&s->pool_lock);
	return buf;
}

/* w's buffer given back: to the pool if it is a DIRECT_CHUNK. */
static void buf_release(struct dir_writer *w)
{
	struct dir_store *s = (struct dir_store *)w->base.bs;

	if (w->cap == DIRECT_CHUNK) {
		pthread_mutex_lock(&s->pool_lock);
		s->lent--;
		if (s->pooled < POOL_MAX) {
			s->pool[s->pooled++] = w->buf;
			w->buf = NULL;
		}
		pthread_mutex_unlock(&s->pool_lock);
	}
	free(w->buf);
	w->buf = NULL;
	w->cap = 0;
}

/* Invariant 7: room in w->buf: SMALL_CHUNK of it at first (a small block
 * takes no more), written out when full, and then a DIRECT_CHUNK if the
 * pool lends one.  0 or an errno. */
static int make_room(struct dir_writer *w)
{
	void *chunk;
	int e;

	if (w->fill < w->cap)
		return 0;
	if (!w->cap) {
		e = posix_memalign(&chunk, PLATFORM_DIRECT_ALIGN, SMALL_CHUNK);
		if (!e) {
			w->buf = chunk;
			w->cap = SMALL_CHUNK;
		}
		return e;
	}
	e = write_gathered(w, w->fill);
	w->fill = 0;
	if (!e && w->cap == SMALL_CHUNK &&
	    (chunk = chunk_lend((struct dir_store *)w->base.bs))) {
		buf_release(w);
		w->buf = chunk;
		w->cap = DIRECT_CHUNK;
	}
	return e;
}

static enum cfs_err dir_write(struct blockstore_writer *bw, const void *data,
			      size_t len, struct cfs_error *err)
{
	struct dir_writer *w = (struct dir_writer *)bw;
	const char *p = data;
	int e = 0;

	if (!w->direct)
		e = write_all(w, p, len);
	while (w->direct && !e && len) {
		size_t n;

		e = make_room(w);
		n = len < w->cap - w->fill ? len : w->cap - w->fill;
		if (!e && w->direct) {
			memcpy(w->buf + w->fill, p, n);
			w->fill += n;
			w->size += n;
			p += n;
			len -= n;
		} else if (!e) {
			/* Went through the cache at the first write. */
			e = write_all(w, p, len);
		}
	}
	return e ? dir_fail(err, e, "cannot write '%s'", w->path) : CFS_OK;
}

/* Invariant 7: the last gathered piece written, padded, and the file cut
 * back to the bytes received. */
static enum cfs_err write_last(struct dir_writer *w, struct cfs_error *err)
{
	size_t pad = (w->fill + PLATFORM_DIRECT_ALIGN - 1) /
		     PLATFORM_DIRECT_ALIGN * PLATFORM_DIRECT_ALIGN;
	int e = 0;

	if (!w->fill)
		return CFS_OK;
	/* A block that fit its first buffer goes through the cache: the
	 * batch's one syncfs (invariant 6) writes many small files out
	 * together, where direct writes would each wait for the disk. */
	if (w->direct && w->size == w->fill &&
	    platform_write_direct(w->fd, false) == 0)
		w->direct = false;
	if (w->direct)
		memset(w->buf + w->fill, 0, pad - w->fill);
	e = write_gathered(w, w->direct ? pad : w->fill);
	if (!e && w->direct && ftruncate(w->fd, (off_t)w->size))
		e = errno;
	w->fill = 0;
	return e ? dir_fail(err, e, "cannot write '%s'", w->path) : CFS_OK;
}

static void dir_write_abort(struct blockstore_writer *bw)
{
	struct dir_writer *w = (struct dir_writer *)bw;

	if (w->fd >= 0) {
		close(w->fd);
		unlink(w->path);
	}
	buf_release(w);
	free(w);
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
static enum cfs_err dir_write_finish(struct blockstore_writer *bw,
				     const struct cfs_block_id *id,
				     struct cfs_error *err)
{
	struct dir_writer *w = (struct dir_writer *)bw;
	struct dir_store *s = (struct dir_store *)bw->bs;
	char dir[4200], file[4300];
	enum cfs_err rc = CFS_OK;
	int old, e;

	block_path(s, id, dir, sizeof(dir), file, sizeof(file));
	rc = write_last(w, err);
	if (rc)
		goto out;
	if (fsync(w->fd)) {
		rc = dir_fail(err, errno, "cannot sync '%s'", w->path);
		goto out;
	}
	old = platform_open_inode(file);
	if (rename(w->path, file)) {
		rc = dir_fail(err, errno, "cannot rename '%s' to '%s'", w->path,
			      file);
	} else {
		/* The name is free again: mkostemp() may hand it to another
		 * upload, whose file dir_write_abort() would then unlink. */
		close(w->fd);
		w->fd = -1;
		e = fsync_dir(dir);
		if (e)
			rc = dir_fail(err, -e, "cannot sync folder '%s'", dir);
	}
	reap_later(s, old);
out:
	dir_write_abort(bw);
	return rc;
}

/* Invariant 6: the batch's files made durable together, then named. */
static enum cfs_err dir_write_finish_many(struct blockstore_writer **bw,
					  const struct cfs_block_id *ids,
					  size_t n, size_t *stored,
					  struct cfs_error *err)
{
	struct dir_store *s = (struct dir_store *)bw[0]->bs;
	char dir[4200], file[4300];
	enum cfs_err rc = CFS_OK;
	size_t i = 0;
	int fd;

	*stored = 0;
	for (size_t k = 0; rc == CFS_OK && k < n; k++)
		rc = write_last((struct dir_writer *)bw[k], err);
	if (rc) {
		for (size_t k = 0; k < n; k++)
			dir_write_abort(bw[k]);
		return rc;
	}
	if (platform_syncfs(((struct dir_writer *)bw[0])->fd)) {
		if (errno != ENOSYS)
			return dir_fail(
				err, errno,
				"cannot sync the temporary files in '%s'",
				s->tmp);
		/* No syncfs here: each block as a single upload is. */
		for (; i < n; i++) {
			if (rc == CFS_OK)
				rc = dir_write_finish(bw[i], &ids[i], err);
			else
				dir_write_abort(bw[i]);
			if (rc == CFS_OK)
				++*stored;
			bw[i] = NULL;
		}
		return rc;
	}
	for (; rc == CFS_OK && i < n; i++) {
		struct dir_writer *w = (struct dir_writer *)bw[i];
		int old;

		block_path(s, &ids[i], dir, sizeof(dir), file, sizeof(file));
		old = platform_open_inode(file);
		if (rename(w->path, file)) {
			rc = dir_fail(err, errno, "cannot rename '%s' to '%s'",
				      w->path, file);
			reap_later(s, old);
			break;
		}
		/* As in dir_write_finish: the temporary name is free. */
		close(w->fd);
		w->fd = -1;
		reap_later(s, old);
		dir_write_abort(bw[i]);
		bw[i] = NULL;
	}
	for (size_t k = i; k < n; k++)
		dir_write_abort(bw[k]);
	if (i == 0)
		return rc;
	/* The names of the i blocks renamed, durable: */
	fd = open(s->blocks, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || platform_syncfs(fd)) {
		if (rc == CFS_OK)
			rc = dir_fail(err, errno,
				      "cannot sync the folders of '%s'",
				      s->blocks);
	} else {
		*stored = i;
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static enum cfs_err dir_read_open(struct blockstore *bs,
				  const struct cfs_block_id *id,
				  struct blockstore_reader **out,
				  uint64_t *size, struct cfs_error *err)
{
	struct dir_store *s = (struct dir_store *)bs;
	char dir[4200], file[4300];
	struct dir_reader *r;
	struct stat st;
	int fd, e;

	block_path(s, id, dir, sizeof(dir), file, sizeof(file));
	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return dir_fail(err, errno, "cannot open '%s'", file);
	if (fstat(fd, &st)) {
		e = errno;
		close(fd);
		return dir_fail(err, e, "cannot stat '%s'", file);
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		close(fd);
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	r->base.bs = bs;
	r->fd = fd;
	*size = (uint64_t)st.st_size;
	*out = &r->base;
	return CFS_OK;
}

static int dir_read_take_fd(struct blockstore_reader *br)
{
	struct dir_reader *r = (struct dir_reader *)br;
	int fd = r->fd;

	r->fd = -1;
	return fd;
}

static void dir_read_close(struct blockstore_reader *br)
{
	struct dir_reader *r = (struct dir_reader *)br;

	if (r->fd >= 0)
		close(r->fd);
	free(r);
}

static enum cfs_err dir_remove(struct blockstore *bs,
			       const struct cfs_block_id *id,
			       struct cfs_error *err)
{
	struct dir_store *s = (struct dir_store *)bs;
	char dir[4200], file[4300];

	block_path(s, id, dir, sizeof(dir), file, sizeof(file));
	if (unlink(file) && errno != ENOENT)
		return dir_fail(err, errno, "cannot remove '%s'", file);
	return CFS_OK;
}

static void dir_close(struct blockstore *bs)
{
	struct dir_store *s = (struct dir_store *)bs;

	close(s->reap[1]); /* the reaper drains the pipe, then stops */
	pthread_join(s->reaper, NULL);
	close(s->reap[0]);
	while (s->pooled)
		free(s->pool[--s->pooled]);
	pthread_mutex_destroy(&s->pool_lock);
	free(s);
}

static const struct blockstore_ops dir_ops = {
	.close = dir_close,
	.write_begin = dir_write_begin,
	.write = dir_write,
	.write_finish = dir_write_finish,
	.write_finish_many = dir_write_finish_many,
	.write_abort = dir_write_abort,
	.read_open = dir_read_open,
	.read_take_fd = dir_read_take_fd,
	.read_close = dir_read_close,
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

static int dir_open(struct dir_store *s, const char *dir)
{
	int rc;

	if ((size_t)snprintf(s->blocks, sizeof(s->blocks), "%s/blocks", dir) >=
		    sizeof(s->blocks) ||
	    (size_t)snprintf(s->tmp, sizeof(s->tmp), "%s/tmp", dir) >=
		    sizeof(s->tmp))
		return -ENAMETOOLONG;
	rc = mkdir_private(dir);
	if (rc == 0)
		rc = mkdir_private(s->blocks);
	if (rc == 0)
		rc = make_prefixes(s->blocks);
	if (rc == 0)
		rc = mkdir_private(s->tmp);
	if (rc == 0 && platform_pipe(s->reap))
		rc = -errno;
	if (rc)
		return rc;
	/* Uploads never wait for the reaper (invariant 3). */
	if (fcntl(s->reap[1], F_SETFL, O_NONBLOCK))
		rc = -errno;
	else
		rc = -pthread_create(&s->reaper, NULL, reaper_thread, s);
	if (rc) {
		close(s->reap[0]);
		close(s->reap[1]);
		return rc;
	}
	empty_tmp(s->tmp);
	return 0;
}

enum cfs_err blockstore_dir_open(const char *dir, struct blockstore **out,
				 struct cfs_error *err)
{
	struct dir_store *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	s->base.ops = &dir_ops;
	pthread_mutex_init(&s->pool_lock, NULL);
	rc = dir_open(s, dir);
	if (rc) {
		pthread_mutex_destroy(&s->pool_lock);
		free(s);
		return dir_fail(err, -rc, "cannot open the block store in '%s'",
				dir);
	}
	*out = &s->base;
	return CFS_OK;
}
