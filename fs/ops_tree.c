/*
 * Changing the tree: mkdir, mknod, symlink, unlink, rmdir, rename, link,
 * setattr (fs/ops.h).  Each change is made to the mirror and queued in one
 * transaction (cache/local.h); the uploader sends it.
 *
 * POSIX behaviours a user should know: hard links stay within one
 * namespace (EXDEV across a shared folder's boundary, EPERM for a folder);
 * changing the owner is EPERM; RENAME_EXCHANGE is EINVAL; renaming across
 * a shared folder's boundary is EXDEV.  A change naming an inode that the
 * mirror replaced since the kernel looked it up is ESTALE, and the kernel
 * looks the path up again (cache/local.h).
 */
#include <errno.h>
#include <string.h>

#include "cache/local.h"
#include "cloudfs/clock.h"
#include "cloudfs/platform.h"
#include "fs/keeper.h"
#include "fs/ops.h"
#include "fs/session.h"
#include "fs/upload.h"

int ops_make(struct fs *fs, fuse_ino_t parent, const char *name,
	     const struct local_new *n, struct fuse_entry_param *ep,
	     struct mirror_entry *out)
{
	struct mirror_entry e;
	struct cfs_error err;
	enum cfs_err rc;
	int eno;
	uint64_t seen = sessions_settled(fs->sessions);
	struct cfs_sql *db = ops_db(fs, &eno);

	if (!db)
		return eno;
	rc = local_mknode(db, parent, name, n, &e, &err);
	cache_db_release(fs->cache, db);
	if (rc)
		return ops_errno(rc, &err);
	ops_entry(fs, &e, seen, ep);
	if (out)
		*out = e;
	else
		mirror_entry_release(&e);
	return 0;
}

static void reply_made(fuse_req_t req, int eno,
		       const struct fuse_entry_param *ep)
{
	if (eno) {
		fuse_reply_err(req, eno);
		return;
	}
	uploader_wake(ops_fs(req)->upload);
	fuse_reply_entry(req, ep);
}

void ops_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct local_new n = { .kind = CFS_KIND_DIR,
			       .mode = mode & 07777,
			       .time_ns = cfs_now_ns() };
	struct fuse_entry_param ep;

	reply_made(req, ops_make(ops_fs(req), parent, name, &n, &ep, NULL),
		   &ep);
}

void ops_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		 const char *name)
{
	struct local_new n = { .kind = CFS_KIND_SYMLINK,
			       .mode = 0777,
			       .time_ns = cfs_now_ns(),
			       .target = link };
	struct fuse_entry_param ep;
	int eno = strlen(link) > CFS_MAX_SYMLINK_TARGET
			  ? ENAMETOOLONG
			  : ops_make(ops_fs(req), parent, name, &n, &ep, NULL);

	reply_made(req, eno, &ep);
}

void ops_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       dev_t rdev)
{
	struct local_new n = { .kind = CFS_KIND_FILE,
			       .mode = mode & 07777,
			       .time_ns = cfs_now_ns() };
	struct fs *fs = ops_fs(req);
	struct fuse_entry_param ep;
	char device[CFS_DEVICE_TARGET_MAX];
	struct session *s;
	int eno;

	/* FIFOs, sockets and devices are entries like symlinks; opening
	 * one is the kernel's business, never ours. */
	if (ops_special_kind(mode, &n.kind)) {
		if (cfs_kind_has_target(n.kind)) {
			ops_device_target(rdev, device);
			n.target = device;
		}
		reply_made(req, ops_make(fs, parent, name, &n, &ep, NULL), &ep);
		return;
	}
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	eno = ops_make(fs, parent, name, &n, &ep, NULL);
	/* An empty file: its session (opened by the creation) commits it
	 * after the settling delay, as for a closed file. */
	if (!eno)
		eno = session_open(fs->sessions, ep.ino, true, &s);
	if (!eno)
		session_release(fs->sessions, s);
	reply_made(req, eno, &ep);
}

static void remove_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
			 bool dir)
{
	struct fs *fs = ops_fs(req);
	struct cfs_error err;
	uint64_t ino;
	enum cfs_err rc;
	int eno;
	struct cfs_sql *db = ops_db(fs, &eno);

	if (db) {
		rc = local_remove(db, parent, name, dir, &ino, &err);
		cache_db_release(fs->cache, db);
		eno = rc ? ops_errno(rc, &err) : 0;
	}
	if (!eno)
		uploader_wake_removed(fs->upload);
	fuse_reply_err(req, eno);
}

void ops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, false);
}

void ops_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_entry(req, parent, name, true);
}

void ops_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct fs *fs = ops_fs(req);
	struct cfs_error err;
	enum cfs_err rc;
	int eno;
	struct cfs_sql *db;
	int64_t now = cfs_now_ns();
	uint64_t moved = 0;
	bool noreplace;

	eno = platform_rename_flags(flags, &noreplace);
	if (eno) {
		fuse_reply_err(req, eno);
		return;
	}
	db = ops_db(fs, &eno);
	if (db) {
		rc = local_rename(db, parent, name, newparent, newname,
				  noreplace, now, &moved, &err);
		cache_db_release(fs->cache, db);
		eno = rc ? ops_errno(rc, &err) : 0;
	}
	if (!eno && moved && fs->sessions)
		session_ctime(fs->sessions, moved, now);
	if (!eno)
		uploader_wake(fs->upload);
	fuse_reply_err(req, eno);
}

/* What file ino's open write session holds goes to the queue now, so
 * that the link, queued next, is sent after the file's creation. */
static int commit_session(struct fs *fs, fuse_ino_t ino)
{
	struct session_attr a;
	struct session *s;
	int eno;

	if (!fs->sessions || !session_stat(fs->sessions, ino, &a))
		return 0;
	eno = session_open(fs->sessions, ino, false, &s);
	if (eno)
		return eno;
	eno = session_commit(s);
	session_release(fs->sessions, s);
	return eno;
}

static int do_link(struct fs *fs, fuse_ino_t ino, fuse_ino_t newparent,
		   const char *newname, struct fuse_entry_param *ep)
{
	struct mirror_entry e;
	struct cfs_error err;
	enum cfs_err rc;
	uint64_t seen = sessions_settled(fs->sessions);
	int eno = commit_session(fs, ino);
	struct cfs_sql *db = eno ? NULL : ops_db(fs, &eno);

	if (!db)
		return eno;
	rc = local_link(db, ino, newparent, newname, &e, &err);
	cache_db_release(fs->cache, db);
	if (rc)
		return ops_errno(rc, &err);
	ops_entry(fs, &e, seen, ep);
	mirror_entry_release(&e);
	return 0;
}

void ops_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	      const char *newname)
{
	struct fs *fs = ops_fs(req);
	struct fuse_entry_param ep;
	int eno = do_link(fs, ino, newparent, newname, &ep);

	if (eno) {
		fuse_reply_err(req, eno);
		return;
	}
	uploader_wake(fs->upload);
	fuse_reply_entry(req, &ep);
}

/* The new size, through the file's session (one for the occasion if no
 * handle has one). */
static int set_size(struct fs *fs, fuse_ino_t ino, uint64_t size,
		    struct fuse_file_info *fi)
{
	struct open_file *fh = fi ? (struct open_file *)fi->fh : NULL;
	struct session *s = fh ? fh->session : NULL;
	uint64_t cost = 0;
	int eno = 0;

	if (!s)
		eno = session_open(fs->sessions, ino, false, &s);
	if (!eno) {
		cost = session_truncate_cost(s, size);
		eno = ops_admit(fs, ino, cost);
	}
	if (!eno) {
		eno = session_truncate(s, size);
		keeper_written(fs->keeper, cost);
	}
	if (!fh || !fh->session)
		session_release(fs->sessions, s);
	return eno;
}

/* The new attributes, and a ctime of now; a file being written takes
 * them with its session's commit. */
static int set_attrs(struct fs *fs, fuse_ino_t ino, const struct local_attrs *a,
		     int64_t now)
{
	struct cfs_error err;
	enum cfs_err rc;
	int eno;
	bool in_session =
		fs->sessions && session_touch(fs->sessions, ino, a, now);
	struct cfs_sql *db;

	/* The mode, times and ctime are the session's until its commit
	 * writes them (stat shows them from it meanwhile): tar(1) sets
	 * them, and the owner, on each file it writes, and a transaction
	 * each was half of its SQLite commits. */
	if (in_session)
		return 0;
	db = ops_db(fs, &eno);
	if (!db)
		return eno;
	rc = local_setattr(db, ino, a, now, in_session, &err);
	cache_db_release(fs->cache, db);
	return rc ? ops_errno(rc, &err) : 0;
}

/* A time utimensat(2) sets: *ns, now (UTIME_NOW: the kernel says so
 * with a flag), or none (UTIME_OMIT: no flag). */
static const int64_t *time_set(int to_set, int flag, int now_flag,
			       const struct timespec *ts, int64_t now,
			       int64_t *ns)
{
	if (to_set & now_flag)
		*ns = now;
	else if (to_set & flag)
		*ns = (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
	else
		return NULL;
	return ns;
}

static int do_setattr(struct fs *fs, fuse_ino_t ino, const struct stat *attr,
		      int to_set, struct fuse_file_info *fi)
{
	uint32_t mode = (uint32_t)attr->st_mode & 07777;
	/* One now for all the times a call sets, as a local disk has. */
	int64_t atime_ns, mtime_ns, now = cfs_now_ns();
	struct local_attrs a = {
		.mode = to_set & FUSE_SET_ATTR_MODE ? &mode : NULL,
		.atime_ns = time_set(to_set, FUSE_SET_ATTR_ATIME,
				     FUSE_SET_ATTR_ATIME_NOW, &attr->st_atim,
				     now, &atime_ns),
		.mtime_ns = time_set(to_set, FUSE_SET_ATTR_MTIME,
				     FUSE_SET_ATTR_MTIME_NOW, &attr->st_mtim,
				     now, &mtime_ns),
	};
	int eno = 0;

	/* Every entry belongs to the user who mounted. */
	if (((to_set & FUSE_SET_ATTR_UID) && attr->st_uid != fs->uid) ||
	    ((to_set & FUSE_SET_ATTR_GID) && attr->st_gid != fs->gid))
		return EPERM;
	if (to_set & FUSE_SET_ATTR_SIZE)
		eno = set_size(fs, ino, (uint64_t)attr->st_size, fi);
	/* A chown to the owner it has changes the ctime too, as on a
	 * local disk. */
	if (!eno && (a.mode || a.atime_ns || a.mtime_ns ||
		     (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))))
		eno = set_attrs(fs, ino, &a, now);
	return eno;
}

void ops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		 struct fuse_file_info *fi)
{
	struct fs *fs = ops_fs(req);
	struct mirror_entry e;
	struct cfs_sql *db;
	struct stat st;
	uint64_t seen = 0;
	int eno = do_setattr(fs, ino, attr, to_set, fi);

	if (!eno) {
		seen = sessions_settled(fs->sessions);
		eno = ops_get(fs, ino, &db, &e);
	}
	if (eno) {
		fuse_reply_err(req, eno);
		return;
	}
	cache_db_release(fs->cache, db);
	ops_stat(fs, &e, seen, &st);
	mirror_entry_release(&e);
	uploader_wake(fs->upload);
	fuse_reply_attr(req, &st, OPS_CACHE_TIMEOUT_S);
}
