/*
 * Reading the tree: lookup, getattr, readlink, readdir(plus), answered
 * from the mirror (fs/ops.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs/invalidate.h"
#include "fs/ops.h"
#include "fs/session.h"

int ops_lookup_entry(struct fs *fs, fuse_ino_t parent, const char *name,
		     struct fuse_entry_param *ep)
{
	struct mirror_entry dir, e;
	struct cfs_error err;
	enum cfs_err rc;
	int eno;
	uint64_t seen = sessions_settled(fs->sessions);
	struct cfs_sql *db = ops_db(fs, &eno);

	if (!db)
		return eno;
	rc = mirror_get(db, parent, &dir, &err);
	if (rc == CFS_OK) {
		rc = mirror_lookup(db, &dir, name, &e, &err);
		mirror_entry_release(&dir);
	}
	/* A further name is its node's inode, as on any disk. */
	if (rc == CFS_OK) {
		rc = mirror_named(db, &e, &err);
		if (rc)
			mirror_entry_release(&e);
	}
	cache_db_release(fs->cache, db);
	if (rc)
		return ops_errno(rc, &err);
	ops_entry(fs, &e, seen, ep);
	mirror_entry_release(&e);
	return 0;
}

void ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param ep;
	int e = ops_lookup_entry(ops_fs(req), parent, name, &ep);

	/* Not found is not cached: the sync thread would otherwise have to
	 * invalidate every name that appears. */
	if (e)
		fuse_reply_err(req, e);
	else
		fuse_reply_entry(req, &ep);
}

/* The attributes of an open file whose entry is gone: it was deleted
 * elsewhere, and an unlinked file has no link left. */
static int open_file_stat(struct fs *fs, fuse_ino_t ino, struct stat *st)
{
	struct open_attr a;
	struct mirror_entry e = { .ino = ino, .kind = CFS_KIND_FILE };

	if (!openfiles_attr(fs->open, ino, &a))
		return ESTALE; /* see ops_get() */
	e.size = a.size;
	e.mode = a.mode;
	e.atime_ns = a.atime_ns;
	e.mtime_ns = a.mtime_ns;
	e.ctime_ns = a.ctime_ns;
	ops_stat(fs, &e, sessions_settled(fs->sessions), st);
	st->st_nlink = 0;
	return 0;
}

void ops_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = ops_fs(req);
	struct mirror_entry e;
	struct cfs_sql *db;
	struct stat st;
	uint64_t seen = sessions_settled(fs->sessions);
	int eno = ops_get(fs, ino, &db, &e);

	(void)fi;
	if (eno == ESTALE)
		eno = open_file_stat(fs, ino, &st);
	else if (eno == 0) {
		cache_db_release(fs->cache, db);
		ops_stat(fs, &e, seen, &st);
		mirror_entry_release(&e);
	}
	if (eno)
		fuse_reply_err(req, eno);
	else
		fuse_reply_attr(req, &st, OPS_CACHE_TIMEOUT_S);
}

void ops_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = ops_fs(req);
	struct mirror_entry e;
	struct cfs_sql *db;
	int eno = ops_get(fs, ino, &db, &e);

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
	struct cfs_sql *db;
	fuse_req_t req;
	bool plus;
	char *buf;
	size_t size, used;
	uint64_t seen; /* sessions_settled() before the listing was read */
};

static bool add_dirent(struct dir_fill *d, const char *name,
		       const struct mirror_entry *e, off_t next)
{
	struct fuse_entry_param ep;
	size_t n;

	ops_entry(d->fs, e, d->seen, &ep);
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

/* A child's offset is its own row's, whatever node its name shows. */
static bool add_child(void *arg, const struct mirror_entry *e)
{
	struct dir_fill *d = arg;
	struct mirror_entry node;
	struct cfs_error err;
	bool more;

	if (e->kind != CFS_KIND_LINK)
		return add_dirent(d, e->name, e, (off_t)e->ino + 2);
	node = *e;
	node.blocks = (struct cfs_blocklist){ 0 };
	node.target = NULL;
	/* A name whose node is not shown is skipped, as lookup finds none. */
	if (mirror_named(d->db, &node, &err))
		return true;
	more = add_dirent(d, e->name, &node, (off_t)e->ino + 2);
	mirror_entry_release(&node);
	return more;
}

static int do_readdir(struct fs *fs, struct dir_fill *d, fuse_ino_t ino,
		      off_t off)
{
	struct mirror_entry dir, parent = { 0 };
	struct cfs_error err;
	struct cfs_sql *db;
	enum cfs_err rc = CFS_OK;
	uint64_t parent_ino;
	int eno;

	d->seen = sessions_settled(fs->sessions);
	eno = ops_get(fs, ino, &db, &dir);

	if (eno)
		return eno;
	d->db = db;
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
	return rc ? ops_errno(rc, &err) : 0;
}

static void reply_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off, bool plus)
{
	struct dir_fill d = {
		.fs = ops_fs(req), .req = req, .plus = plus, .size = size
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

void ops_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* The kernel keeps the listing until the folder changes
	 * (fs/invalidate.h): a walk of a listed tree costs no round trip. */
	listed_dirs_add(ops_fs(req)->listed, ino);
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

void ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	(void)fi;
	reply_readdir(req, ino, size, off, false);
}

void ops_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	(void)fi;
	reply_readdir(req, ino, size, off, true);
}
