/*
 * File content: open, create, read, write, fallocate, copy_file_range,
 * fsync, release (fs/ops.h).
 *
 * A handle opened for reading keeps the block list it reads
 * (fs/openfile.h); one opened for writing also holds the file's write
 * session (fs/session.h), which every read of the file then goes through,
 * so a process always reads what was written.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/local.h"
#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "cloudfs/platform.h"
#include "fs/ops.h"
#include "fs/session.h"
#include "fs/upload.h"

static struct open_attr attr_of(const struct mirror_entry *e)
{
	return (struct open_attr){ .size = e->size,
				   .mode = e->mode,
				   .atime_ns = e->atime_ns,
				   .mtime_ns = e->mtime_ns,
				   .ctime_ns = e->ctime_ns };
}

void ops_refresh(struct fs *fs, struct open_file *fh)
{
	uint64_t version = openfiles_version(fs->open, fh);
	struct mirror_entry e;
	struct cfs_sql *db;

	if (version == fh->version)
		return;
	if (ops_get(fs, fh->ino, &db, &e) == 0) {
		cache_db_release(fs->cache, db);
		if (e.kind == CFS_KIND_FILE) {
			struct open_attr attr = attr_of(&e);

			openfiles_set_attr(fs->open, fh, &attr);
			cfs_blocklist_release(&fh->blocks);
			fh->blocks = e.blocks;
			e.blocks = (struct cfs_blocklist){ 0 };
			fh->size = e.size;
			fh->prefetched = 0;
		}
		mirror_entry_release(&e);
	}
	/* Deleted meanwhile: the handle keeps reading what it had. */
	fh->version = version;
}

/*
 * The part of fh that a read of size bytes at off needs, copied out under
 * its lock, and the blocks a sequential reader will want next queued.
 */
struct read_plan {
	uint64_t size;
	uint64_t first, last; /* block indexes */
	struct cfs_block_id *ids;
};

static int plan_read(struct fs *fs, struct open_file *fh, size_t size,
		     off_t off, struct read_plan *p)
{
	uint64_t end, ahead_end;
	bool sequential;

	pthread_mutex_lock(&fh->lock);
	ops_refresh(fs, fh);
	p->size = fh->size;
	p->ids = NULL;
	if ((uint64_t)off >= fh->size || size == 0) {
		pthread_mutex_unlock(&fh->lock);
		return 0;
	}
	end = (uint64_t)off + size < fh->size ? (uint64_t)off + size : fh->size;
	p->first = (uint64_t)off / CFS_BLOCK_SIZE;
	p->last = (end - 1) / CFS_BLOCK_SIZE;
	p->ids = malloc((p->last - p->first + 1) * sizeof(p->ids[0]));
	if (!p->ids) {
		pthread_mutex_unlock(&fh->lock);
		return ENOMEM;
	}
	memcpy(p->ids, &fh->blocks.ids[p->first],
	       (p->last - p->first + 1) * sizeof(p->ids[0]));
	sequential = (uint64_t)off >= fh->last_off &&
		     (uint64_t)off <= fh->last_end + CFS_BLOCK_SIZE / 4;
	fh->last_off = (uint64_t)off;
	fh->last_end = end;
	ahead_end = p->last + 1 + fs->opt.readahead;
	if (ahead_end > fh->blocks.n)
		ahead_end = fh->blocks.n;
	if (fh->prefetched < p->last + 1)
		fh->prefetched = p->last + 1;
	for (; sequential && fh->prefetched < ahead_end; fh->prefetched++)
		fetcher_prefetch(fs->fetch, &fh->blocks.ids[fh->prefetched],
				 cfs_block_len(fh->size, fh->prefetched));
	pthread_mutex_unlock(&fh->lock);
	return 0;
}

/* The path of ino, for a message (malloc'd; NULL when it cannot be had). */
static char *path_for_log(struct fs *fs, fuse_ino_t ino)
{
	struct cfs_error err;
	char *path = NULL;
	int eno;
	struct cfs_sql *db = ops_db(fs, &eno);

	if (db) {
		mirror_path(db, ino, &path, &err);
		cache_db_release(fs->cache, db);
	}
	return path;
}

static void log_read_error(struct fs *fs, fuse_ino_t ino, uint64_t index,
			   const struct cfs_block_id *id,
			   const struct cfs_error *err)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1], *path = path_for_log(fs, ino);

	cfs_block_id_to_hex(id, hex);
	cfs_log_error("cannot read block %llu of '%s' (%s): %s",
		      (unsigned long long)index, path ? path : "?", hex,
		      err->msg);
	free(path);
}

/* Replies to a read with the spans of a session (session_reply_fn): the
 * descriptors go to the kernel as they are, so that it may splice. */
static void reply_spans(void *arg, int e, const struct session_span *v,
			size_t n)
{
	fuse_req_t req = arg;
	struct fuse_bufvec *bv;

	if (e || n == 0) {
		if (e)
			fuse_reply_err(req, e);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	bv = calloc(1, sizeof(*bv) + n * sizeof(bv->buf[0]));
	if (!bv) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		struct fuse_buf *b = &bv->buf[i];

		b->size = v[i].len;
		if (v[i].fd < 0) {
			b->mem = (void *)v[i].mem;
			continue;
		}
		b->flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		b->fd = v[i].fd;
		b->pos = (off_t)v[i].pos;
	}
	bv->count = n;
	fuse_reply_data(req, bv, 0);
	free(bv);
}

void ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	      struct fuse_file_info *fi)
{
	struct fs *fs = ops_fs(req);
	struct open_file *fh = (struct open_file *)fi->fh;
	struct fuse_bufvec *bv = NULL;
	struct read_plan p;
	uint64_t pos = (uint64_t)off, n_bufs;
	int eno;

	/* A file being written reads what was written (fs/session.h). */
	if (fs->sessions &&
	    session_read(fs->sessions, ino, size, off, reply_spans, req))
		return;
	eno = plan_read(fs, fh, size, off, &p);

	if (eno || !p.ids) {
		if (eno)
			fuse_reply_err(req, eno);
		else
			fuse_reply_buf(req, NULL, 0);
		return;
	}
	n_bufs = p.last - p.first + 1;
	bv = calloc(1, sizeof(*bv) + n_bufs * sizeof(bv->buf[0]));
	if (!bv) {
		free(p.ids);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	bv->count = 0;
	for (uint64_t b = p.first; b <= p.last; b++) {
		uint64_t block_start = b * CFS_BLOCK_SIZE;
		uint64_t end = block_start + cfs_block_len(p.size, b);
		struct cfs_error err;
		int fd;

		if (end > (uint64_t)off + size)
			end = (uint64_t)off + size;
		fd = fetcher_open(fs->fetch, &p.ids[b - p.first],
				  cfs_block_len(p.size, b),
				  fs->opt.timeout_s * 1000, &err);
		if (fd < 0) {
			log_read_error(fs, ino, b, &p.ids[b - p.first], &err);
			eno = EIO;
			break;
		}
		bv->buf[bv->count++] = (struct fuse_buf){
			.size = end - pos,
			.flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK,
			.fd = fd,
			.pos = (off_t)(pos - block_start),
		};
		pos = end;
	}
	if (eno)
		fuse_reply_err(req, eno);
	else
		fuse_reply_data(req, bv, 0);
	for (size_t i = 0; i < bv->count; i++)
		close(bv->buf[i].fd);
	free(bv);
	free(p.ids);
}

/* Fills the new handle fh from file e (whose blocks it takes), with a
 * write session when the file is written (new: the session local_mknode
 * opened).  On failure the caller releases fh. */
static int open_handle(struct fs *fs, struct open_file *fh,
		       struct mirror_entry *e, bool write, bool new, bool trunc,
		       struct fuse_file_info *fi)
{
	struct open_attr attr = attr_of(e);
	int eno = 0;

	openfiles_load(fs->open, fh, &attr, &e->blocks);
	if (write)
		eno = session_open(fs->sessions, e->ino, new, &fh->session);
	if (!eno && trunc)
		eno = session_truncate(fh->session, 0);
	if (eno) {
		if (fh->session)
			session_release(fs->sessions, fh->session);
		return eno;
	}
	fi->fh = (uintptr_t)fh;
	/* Content changes reach the page cache through explicit
	 * invalidation, and every handle follows them (fs/openfile.h). */
	fi->keep_cache = 1;
	return 0;
}

static int do_open(struct fs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	bool write = (fi->flags & O_ACCMODE) != O_RDONLY;
	struct mirror_entry e;
	struct cfs_sql *db;
	/* Counted before the mirror is read: a change committed meanwhile
	 * makes the handle reload (fs/openfile.h). */
	struct open_file *fh = openfiles_open(fs->open, ino);
	int eno = fh ? ops_get(fs, ino, &db, &e) : ENOMEM;

	if (!fh)
		return eno;
	if (!eno) {
		cache_db_release(fs->cache, db);
		eno = e.kind == CFS_KIND_FILE
			      ? open_handle(fs, fh, &e,
					    write || (fi->flags & O_TRUNC),
					    false,
					    write && (fi->flags & O_TRUNC), fi)
			      : EISDIR;
		mirror_entry_release(&e);
	}
	if (eno)
		openfiles_release(fs->open, fh);
	return eno;
}

void ops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int eno = do_open(ops_fs(req), ino, fi);

	if (eno)
		fuse_reply_err(req, eno);
	else
		fuse_reply_open(req, fi);
}

static int do_create(struct fs *fs, fuse_ino_t parent, const char *name,
		     mode_t mode, struct fuse_file_info *fi,
		     struct fuse_entry_param *ep)
{
	struct local_new n = { .kind = CFS_KIND_FILE,
			       .mode = mode & 07777,
			       .time_ns = cfs_now_ns() };
	struct mirror_entry e;
	struct open_file *fh;
	int eno = ops_make(fs, parent, name, &n, ep, &e);

	/* The kernel asks to create a name it saw missing; another mount's
	 * file may have come by since.  Without O_EXCL, open(2) opens it
	 * then, as a local disk would. */
	if (eno == EEXIST && !(fi->flags & O_EXCL)) {
		eno = ops_lookup_entry(fs, parent, name, ep);
		return eno ? eno : do_open(fs, ep->ino, fi);
	}
	if (eno)
		return eno;
	fh = openfiles_open(fs->open, e.ino);
	eno = fh ? open_handle(fs, fh, &e, true, true, false, fi) : ENOMEM;
	if (eno && fh)
		openfiles_release(fs->open, fh);
	mirror_entry_release(&e);
	return eno;
}

void ops_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode, struct fuse_file_info *fi)
{
	struct fuse_entry_param ep;
	int eno = do_create(ops_fs(req), parent, name, mode, fi, &ep);

	if (eno)
		fuse_reply_err(req, eno);
	else
		fuse_reply_create(req, &ep, fi);
}

/* A write refused for want of room: said once for a file refused write
 * after write, not at every write. */
static void log_no_room(struct fs *fs, fuse_ino_t ino)
{
	static fuse_ino_t last;
	char *path;

	if (__atomic_exchange_n(&last, ino, __ATOMIC_RELAXED) == ino)
		return;
	path = path_for_log(fs, ino);
	cfs_log_error(
		"cannot write to '%s': the cache is full of changes not yet sent (ENOSPC; see cloudfs cache stat)",
		path ? path : "?");
	free(path);
}

int ops_admit(struct fs *fs, fuse_ino_t ino, uint64_t cost)
{
	int eno = keeper_admit(fs->keeper, cost);

	if (eno)
		log_no_room(fs, ino);
	return eno;
}

/* Copies the next n bytes of a write's buffers (arg) to fd at pos
 * (session_fill_fn): from the kernel's pipe, a splice. */
static int fill_from_bufvec(void *arg, int fd, uint64_t pos, size_t n,
			    size_t *copied)
{
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(n);
	ssize_t k;

	dst.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	dst.buf[0].fd = fd;
	dst.buf[0].pos = (off_t)pos;
	k = fuse_buf_copy(&dst, arg, 0);
	if (k < 0)
		return (int)-k;
	*copied = (size_t)k;
	return 0;
}

void ops_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv,
		   off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = ops_fs(req);
	struct open_file *fh = (struct open_file *)fi->fh;
	size_t written = 0;
	int eno = fh->session ? 0 : EBADF;
	uint64_t cost = 0;

	if (eno == 0) {
		cost = session_write_cost(fh->session, off,
					  fuse_buf_size(bufv));
		eno = ops_admit(fs, ino, cost);
	}
	if (eno == 0) {
		eno = session_write(fh->session, fill_from_bufvec, bufv,
				    fuse_buf_size(bufv), off, &written);
		keeper_written(fs->keeper, cost);
	}
	if (eno)
		fuse_reply_err(req, eno);
	else
		fuse_reply_write(req, written);
}

/* Writes zeros over len bytes at off of s (a hole punched, a range
 * zeroed): blocks of zeros are one block id, stored and sent once. */
static int write_zeros(struct session *s, off_t off, off_t len)
{
	static const char zeros[1 << 20];
	int eno = 0;

	while (!eno && len > 0) {
		struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(
			len < (off_t)sizeof(zeros) ? (size_t)len
						   : sizeof(zeros));
		size_t written = 0;

		bufv.buf[0].mem = (void *)zeros;
		eno = session_write(s, fill_from_bufvec, &bufv,
				    fuse_buf_size(&bufv), off, &written);
		if (!eno && written == 0)
			eno = EIO;
		off += (off_t)written;
		len -= (off_t)written;
	}
	return eno;
}

/*
 * A cache of blocks has no space to reserve: the default mode grows the
 * file to off + len if it is shorter (the new part reads as zeros, as
 * after a truncate), KEEP_SIZE keeps the size; PUNCH_HOLE and ZERO_RANGE
 * write zeros over what the range covers of the file.  Other modes
 * (collapsing, inserting, unsharing ranges) are EOPNOTSUPP.
 */
void ops_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
		   off_t len, struct fuse_file_info *fi)
{
	struct fs *fs = ops_fs(req);
	struct open_file *fh = (struct open_file *)fi->fh;
	struct platform_fallocate how;
	struct session_attr a = { 0 };
	int eno = 0;

	if (platform_fallocate_mode(mode, &how))
		eno = EOPNOTSUPP;
	else if (off < 0 || len <= 0)
		eno = EINVAL;
	else if (len > (off_t)CFS_MAX_FILE_SIZE ||
		 (uint64_t)off + (uint64_t)len > CFS_MAX_FILE_SIZE)
		eno = EFBIG;
	else if (!fh->session)
		eno = EBADF;
	else if (!session_stat(fs->sessions, ino, &a))
		eno = EIO;
	if (!eno && how.zero && (uint64_t)off < a.size) {
		off_t cover = (uint64_t)(off + len) < a.size
				      ? len
				      : (off_t)a.size - off;

		eno = ops_admit(fs, ino, (uint64_t)cover);
		if (!eno) {
			eno = write_zeros(fh->session, off, cover);
			keeper_written(fs->keeper, (uint64_t)cover);
		}
	}
	if (!eno && !how.keep_size && (uint64_t)(off + len) > a.size)
		eno = session_truncate(fh->session, (uint64_t)(off + len));
	fuse_reply_err(req, eno);
}

/*
 * copy_file_range within a namespace, from a file not being written: the
 * destination takes the source's blocks (session_append_blocks), so cp
 * of a large file moves no byte.  Any other copy (also from a file removed
 * while open) is EOPNOTSUPP, for which the kernel copies the bytes itself.
 */
void ops_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			 struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			 off_t off_out, struct fuse_file_info *fi_out,
			 size_t len, int flags)
{
	struct fs *fs = ops_fs(req);
	struct open_file *out = (struct open_file *)fi_out->fh;
	struct mirror_entry src, dst;
	struct cfs_error err;
	struct cfs_sql *db;
	struct session_attr busy;
	uint64_t copied = 0;
	int eno;

	(void)fi_in;
	if (flags || off_in < 0 || off_out < 0)
		eno = EINVAL;
	else if (!out->session)
		eno = EBADF;
	else if (session_stat(fs->sessions, ino_in, &busy))
		eno = EOPNOTSUPP; /* its newest bytes are not blocks yet */
	else
		eno = ops_get(fs, ino_in, &db, &src);
	/* Removed while open: the kernel copies what its handle reads. */
	if (eno == ESTALE)
		eno = EOPNOTSUPP;
	if (eno) {
		fuse_reply_err(req, eno);
		return;
	}
	if (mirror_get(db, ino_out, &dst, &err) == CFS_OK) {
		/* The server lets a namespace's file list blocks of its own. */
		eno = src.kind != CFS_KIND_FILE || src.ns != dst.ns
			      ? EOPNOTSUPP
			      : session_append_blocks(
					out->session, (uint64_t)off_out,
					&src.blocks, src.size, (uint64_t)off_in,
					len, &copied);
		mirror_entry_release(&dst);
	} else {
		eno = EOPNOTSUPP;
	}
	cache_db_release(fs->cache, db);
	mirror_entry_release(&src);
	if (eno)
		fuse_reply_err(req, eno);
	else
		fuse_reply_write(req, copied);
}

void ops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	       struct fuse_file_info *fi)
{
	struct fs *fs = ops_fs(req);
	struct open_file *fh = (struct open_file *)fi->fh;
	int eno = 0;

	(void)ino, (void)datasync;
	/* In the queue (cache/local.h), durable; the uploader sends it. */
	if (fh->session)
		eno = session_commit(fh->session);
	if (!eno)
		eno = ops_sync(fs);
	uploader_wake(fs->upload);
	fuse_reply_err(req, eno);
}

void ops_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		  struct fuse_file_info *fi)
{
	(void)ino, (void)datasync, (void)fi;
	/* Changes to the tree are queued as they are made. */
	fuse_reply_err(req, ops_sync(ops_fs(req)));
}

void ops_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = ops_fs(req);
	struct open_file *fh = (struct open_file *)fi->fh;

	(void)ino;
	if (fh->session) {
		session_release(fs->sessions, fh->session);
		uploader_wake(fs->upload);
	}
	openfiles_release(fs->open, fh);
	fuse_reply_err(req, 0);
}
