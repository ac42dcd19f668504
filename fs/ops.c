/*
 * The kernel-facing handlers of mount.cloudfs (FUSE low-level API).
 *
 * Each handler replies exactly once; the work is done by helpers that
 * return 0 or a positive errno.  Metadata is answered from the mirror,
 * never with a network round trip; file content comes from the block
 * cache, fetched on demand.  The kernel may cache attributes and entries
 * for a long time because the sync thread invalidates them explicitly,
 * and forget needs no bookkeeping: inode numbers are the mirror's, stable
 * and never reused.
 *
 * This version serves the mount read-only.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cache/mirror.h"
#include "cloudfs/log.h"
#include "fs/fs.h"

/* Safe to keep long: every change is invalidated explicitly. */
#define CACHE_TIMEOUT_S 86400.0

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* A cache connection for this thread; NULL with *e = EIO (logged). */
static struct cfs_sql *db_of(struct fs *fs, int *e)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);

	*e = db ? 0 : EIO;
	if (!db)
		cfs_log_error("%s", err.msg);
	return db;
}

static int errno_of(enum cfs_err rc, const struct cfs_error *err)
{
	if (rc == CFS_ERR_INTERNAL || rc == CFS_ERR_STORAGE_FULL)
		cfs_log_error("%s", err->msg);
	return cfs_err_errno(rc);
}

static void fill_stat(struct fs *fs, const struct mirror_entry *e,
		      struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = e->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_nlink = 1;
	st->st_blksize = 128 * 1024;
	switch (e->kind) {
	case CFS_KIND_FILE:
		st->st_mode = S_IFREG | (e->mode & 07777);
		st->st_size = (off_t)e->size;
		break;
	case CFS_KIND_SYMLINK:
		st->st_mode = S_IFLNK | 0777;
		st->st_size = (off_t)e->size;
		break;
	default: /* directories and shared folders' mounts */
		st->st_mode = S_IFDIR | (e->mode & 07777);
		st->st_size = 4096;
		break;
	}
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_mtim.tv_sec = e->mtime_ns / 1000000000;
	st->st_mtim.tv_nsec = e->mtime_ns % 1000000000;
	if (st->st_mtim.tv_nsec < 0) {
		st->st_mtim.tv_sec--;
		st->st_mtim.tv_nsec += 1000000000;
	}
	st->st_atim = st->st_ctim = st->st_mtim;
}

static void fill_entry(struct fs *fs, const struct mirror_entry *e,
		       struct fuse_entry_param *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->ino = e->ino;
	ep->attr_timeout = CACHE_TIMEOUT_S;
	ep->entry_timeout = CACHE_TIMEOUT_S;
	fill_stat(fs, e, &ep->attr);
}

static int do_lookup(struct fs *fs, fuse_ino_t parent, const char *name,
		     struct fuse_entry_param *ep)
{
	struct mirror_entry dir, e;
	struct cfs_error err;
	enum cfs_err rc;
	int eno;
	struct cfs_sql *db = db_of(fs, &eno);

	if (!db)
		return eno;
	rc = mirror_get(db, parent, &dir, &err);
	if (rc == CFS_OK) {
		rc = mirror_lookup(db, &dir, name, &e, &err);
		mirror_entry_release(&dir);
	}
	cache_db_release(fs->cache, db);
	if (rc)
		return errno_of(rc, &err);
	fill_entry(fs, &e, ep);
	mirror_entry_release(&e);
	return 0;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param ep;
	int e = do_lookup(fs_of(req), parent, name, &ep);

	/* Not found is not cached: the sync thread would otherwise have to
	 * invalidate every name that appears. */
	if (e)
		fuse_reply_err(req, e);
	else
		fuse_reply_entry(req, &ep);
}

/* The entry of ino, with a connection the caller releases. */
static int get_entry(struct fs *fs, fuse_ino_t ino, struct cfs_sql **db,
		     struct mirror_entry *e)
{
	struct cfs_error err;
	enum cfs_err rc;
	int eno;

	*db = db_of(fs, &eno);
	if (!*db)
		return eno;
	rc = mirror_get(*db, ino, e, &err);
	if (rc) {
		cache_db_release(fs->cache, *db);
		*db = NULL;
		return errno_of(rc, &err);
	}
	return 0;
}

/* The attributes of an open file whose entry is gone: it was deleted
 * elsewhere, and an unlinked file has no link left. */
static int open_file_stat(struct fs *fs, fuse_ino_t ino, struct stat *st)
{
	struct open_attr a;
	struct mirror_entry e = { .ino = ino, .kind = CFS_KIND_FILE };

	if (!openfiles_attr(fs->open, ino, &a))
		return ENOENT;
	e.size = a.size;
	e.mode = a.mode;
	e.mtime_ns = a.mtime_ns;
	fill_stat(fs, &e, st);
	st->st_nlink = 0;
	return 0;
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct mirror_entry e;
	struct cfs_sql *db;
	struct stat st;
	int eno = get_entry(fs, ino, &db, &e);

	(void)fi;
	if (eno == ENOENT)
		eno = open_file_stat(fs, ino, &st);
	else if (eno == 0) {
		cache_db_release(fs->cache, db);
		fill_stat(fs, &e, &st);
		mirror_entry_release(&e);
	}
	if (eno)
		fuse_reply_err(req, eno);
	else
		fuse_reply_attr(req, &st, CACHE_TIMEOUT_S);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct mirror_entry e;
	struct cfs_sql *db;
	int eno = get_entry(fs, ino, &db, &e);

	if (eno) {
		fuse_reply_err(req, eno);
		return;
	}
	cache_db_release(fs->cache, db);
	if (e.kind != CFS_KIND_SYMLINK || !e.target)
		fuse_reply_err(req, EINVAL);
	else
		fuse_reply_readlink(req, e.target);
	mirror_entry_release(&e);
}

/*
 * Directory offsets: "." is 1, ".." is 2, a child is its inode number plus
 * 2, so that a listing resumes after the last child it returned however
 * the directory changed meanwhile.
 */
struct dir_fill {
	struct fs *fs;
	fuse_req_t req;
	bool plus;
	char *buf;
	size_t size, used;
};

static bool add_dirent(struct dir_fill *d, const char *name,
		       const struct mirror_entry *e, off_t next)
{
	struct fuse_entry_param ep;
	size_t n;

	fill_entry(d->fs, e, &ep);
	if (d->plus)
		n = fuse_add_direntry_plus(d->req, d->buf + d->used,
					   d->size - d->used, name, &ep, next);
	else
		n = fuse_add_direntry(d->req, d->buf + d->used,
				      d->size - d->used, name, &ep.attr, next);
	if (n > d->size - d->used)
		return false;
	d->used += n;
	return true;
}

static bool add_child(void *arg, const struct mirror_entry *e)
{
	return add_dirent(arg, e->name, e, (off_t)e->ino + 2);
}

static int do_readdir(struct fs *fs, struct dir_fill *d, fuse_ino_t ino,
		      off_t off)
{
	struct mirror_entry dir, parent = { 0 };
	struct cfs_error err;
	struct cfs_sql *db;
	enum cfs_err rc = CFS_OK;
	uint64_t parent_ino;
	int eno = get_entry(fs, ino, &db, &dir);

	if (eno)
		return eno;
	if (off < 1 && !add_dirent(d, ".", &dir, 1))
		goto out;
	if (off < 2) {
		rc = mirror_parent(db, &dir, &parent_ino, &err);
		if (rc == CFS_OK)
			rc = mirror_get(db, parent_ino, &parent, &err);
		if (rc)
			goto out;
		if (!add_dirent(d, "..", &parent, 2))
			goto out;
	}
	rc = mirror_readdir(db, &dir, off > 2 ? (uint64_t)off - 2 : 0,
			    add_child, d, &err);
out:
	mirror_entry_release(&dir);
	mirror_entry_release(&parent);
	cache_db_release(fs->cache, db);
	return rc ? errno_of(rc, &err) : 0;
}

static void reply_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, bool plus)
{
	struct dir_fill d = {
		.fs = fs_of(req), .req = req, .plus = plus, .size = size
	};
	int eno;

	d.buf = malloc(size);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	eno = do_readdir(d.fs, &d, ino, off);
	if (eno)
		fuse_reply_err(req, eno);
	else
		fuse_reply_buf(req, d.buf, d.used);
	free(d.buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	reply_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	reply_readdir(req, ino, size, off, true);
}

static struct open_attr attr_of(const struct mirror_entry *e)
{
	return (struct open_attr){ e->size, e->mode, e->mtime_ns };
}

static int do_open(struct fs *fs, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct open_attr attr;
	struct mirror_entry e;
	struct open_file *fh;
	struct cfs_sql *db;
	int eno;

	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		return EROFS;
	eno = get_entry(fs, ino, &db, &e);
	if (eno)
		return eno;
	cache_db_release(fs->cache, db);
	if (e.kind != CFS_KIND_FILE) {
		mirror_entry_release(&e);
		return EISDIR;
	}
	attr = attr_of(&e);
	fh = openfiles_open(fs->open, ino, &attr, &e.blocks);
	mirror_entry_release(&e);
	if (!fh)
		return ENOMEM;
	fi->fh = (uintptr_t)fh;
	/* Content changes reach the page cache through explicit
	 * invalidation, and every handle follows them (fs/openfile.h). */
	fi->keep_cache = 1;
	return 0;
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	int eno = do_open(fs_of(req), ino, fi);

	if (eno)
		fuse_reply_err(req, eno);
	else
		fuse_reply_open(req, fi);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	(void)ino;
	openfiles_release(fs_of(req)->open, (struct open_file *)fi->fh);
	fuse_reply_err(req, 0);
}

/* Brings fh's block list up to date if the file changed (fh->lock held). */
static void refresh(struct fs *fs, struct open_file *fh)
{
	uint64_t version = openfiles_version(fs->open, fh);
	struct mirror_entry e;
	struct cfs_sql *db;

	if (version == fh->version)
		return;
	if (get_entry(fs, fh->ino, &db, &e) == 0) {
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
	refresh(fs, fh);
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

static void log_read_error(struct fs *fs, fuse_ino_t ino, uint64_t index,
			   const struct cfs_block_id *id,
			   const struct cfs_error *err)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1], *path = NULL;
	struct cfs_error perr;
	int eno;
	struct cfs_sql *db = db_of(fs, &eno);

	if (db) {
		mirror_path(db, ino, &path, &perr);
		cache_db_release(fs->cache, db);
	}
	cfs_block_id_to_hex(id, hex);
	cfs_log_error("cannot read block %llu of '%s' (%s): %s",
		      (unsigned long long)index, path ? path : "?", hex,
		      err->msg);
	free(path);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct open_file *fh = (struct open_file *)fi->fh;
	struct fuse_bufvec *bv = NULL;
	struct read_plan p;
	uint64_t pos = (uint64_t)off, n_bufs;
	int eno = plan_read(fs, fh, size, off, &p);

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
		fuse_reply_data(req, bv, FUSE_BUF_SPLICE_MOVE);
	for (size_t i = 0; i < bv->count; i++)
		close(bv->buf[i].fd);
	free(bv);
	free(p.ids);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs sv;

	(void)ino;
	/* What the cache's disk holds is what this machine can hold. */
	if (fstatvfs(fs->cache->dirfd, &sv)) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = CFS_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	(void)ino, (void)nlookup;
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	(void)count, (void)forgets;
	fuse_reply_none(req);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA)
		conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.statfs = op_statfs,
};
