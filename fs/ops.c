/*
 * The handler table of mount.cloudfs, init and statfs, and what the
 * handlers share (fs/ops.h).
 *
 * forget needs no bookkeeping: inode numbers are the mirror's, stable and
 * never reused, so the kernel may hold one as long as it likes.  There is
 * no flush: a file's commit comes at its last close (release), after the
 * settling delay, so close(2) needs no round trip.
 */
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>

#include "cloudfs/log.h"
#include "cloudfs/platform.h"
#include "fs/kernel.h"
#include "fs/ops.h"
#include "fs/session.h"

struct fs *ops_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

int ops_inval_entry(struct fs *fs, uint64_t parent, const char *name)
{
	return -fuse_lowlevel_notify_inval_entry(fs->se, parent, name,
						 strlen(name));
}

int ops_inval_inode(struct fs *fs, uint64_t ino)
{
	return -fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0);
}

struct cfs_sql *ops_db(struct fs *fs, int *e)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);

	*e = db ? 0 : EIO;
	if (!db)
		cfs_log_error("%s", err.msg);
	return db;
}

int ops_sync(struct fs *fs)
{
	struct cfs_error err;
	enum cfs_err rc = cache_sync(fs->cache, &err);

	if (rc)
		cfs_log_error(
			"cannot make the changes queued in '%s' durable: %s",
			fs->cache->path, err.msg);
	return rc ? cfs_err_errno(rc) : 0;
}

int ops_errno(enum cfs_err rc, const struct cfs_error *err)
{
	if (rc == CFS_ERR_INTERNAL || rc == CFS_ERR_STORAGE_FULL)
		cfs_log_error("%s", err->msg);
	return cfs_err_errno(rc);
}

int ops_get(struct fs *fs, fuse_ino_t ino, struct cfs_sql **db,
	    struct mirror_entry *e)
{
	struct cfs_error err;
	enum cfs_err rc;
	int eno;

	*db = ops_db(fs, &eno);
	if (!*db)
		return eno;
	rc = mirror_get(*db, ino, e, &err);
	if (rc) {
		cache_db_release(fs->cache, *db);
		*db = NULL;
		/* The kernel reached ino through an entry the mirror has
		 * replaced since (a file saved elsewhere by rename), and is
		 * told to invalidate a moment later.  ESTALE, as NFS answers,
		 * makes open(2) and stat(2) look the name up again and find
		 * what is there now; ENOENT said a file that exists was
		 * missing (harness seed 436). */
		return rc == CFS_ERR_NOT_FOUND ? ESTALE : ops_errno(rc, &err);
	}
	return 0;
}

/* The size and times the mirror holds for ino now, if it still has it. */
static void current_attr(struct fs *fs, uint64_t ino, struct session_attr *a)
{
	struct mirror_entry e;
	struct cfs_sql *db;

	if (ops_get(fs, ino, &db, &e))
		return;
	cache_db_release(fs->cache, db);
	*a = (struct session_attr){ .size = e.size,
				    .atime_ns = e.atime_ns,
				    .mtime_ns = e.mtime_ns,
				    .ctime_ns = e.ctime_ns,
				    .mode = SESSION_MODE_SET | e.mode };
	mirror_entry_release(&e);
}

static struct timespec timespec_of(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000,
			       .tv_nsec = ns % 1000000000 };

	/* Before 1970: the remainder is negative, tv_nsec never is. */
	if (ts.tv_nsec < 0) {
		ts.tv_sec--;
		ts.tv_nsec += 1000000000;
	}
	return ts;
}

static const struct {
	mode_t type;
	enum cfs_kind kind;
} special_kinds[] = {
	{ S_IFIFO, CFS_KIND_FIFO },
	{ S_IFSOCK, CFS_KIND_SOCKET },
	{ S_IFCHR, CFS_KIND_CHARDEV },
	{ S_IFBLK, CFS_KIND_BLOCKDEV },
};

#define N_SPECIAL (sizeof(special_kinds) / sizeof(special_kinds[0]))

bool ops_special_kind(mode_t type, enum cfs_kind *kind)
{
	for (size_t i = 0; i < N_SPECIAL; i++) {
		if (special_kinds[i].type == (type & S_IFMT)) {
			*kind = special_kinds[i].kind;
			return true;
		}
	}
	return false;
}

mode_t ops_special_type(enum cfs_kind kind)
{
	for (size_t i = 0; i < N_SPECIAL; i++)
		if (special_kinds[i].kind == kind)
			return special_kinds[i].type;
	return 0;
}

dev_t ops_device_number(const char *target)
{
	uint32_t major, minor;

	return target && cfs_device_parse(target, &major, &minor)
		       ? platform_makedev(major, minor)
		       : 0;
}

void ops_device_target(dev_t rdev, char out[CFS_DEVICE_TARGET_MAX])
{
	uint32_t major, minor;

	platform_device_split(rdev, &major, &minor);
	cfs_device_format(out, major, minor);
}

/* How many folders e holds, for its link count (find(1) and ls count on
 * it); 0 when the mirror cannot say. */
static nlink_t subdirs(struct fs *fs, const struct mirror_entry *e)
{
	struct cfs_error err;
	int64_t n = 0;
	int eno;
	struct cfs_sql *db = ops_db(fs, &eno);

	if (db) {
		if (mirror_subdirs(db, e, &n, &err))
			n = 0;
		cache_db_release(fs->cache, db);
	}
	return (nlink_t)n;
}

/* How many names node e has (1 + its hard links); 1 when the mirror
 * cannot say. */
static nlink_t names(struct fs *fs, const struct mirror_entry *e)
{
	struct cfs_error err;
	int64_t n = 1;
	int eno;
	struct cfs_sql *db = ops_db(fs, &eno);

	if (db) {
		if (mirror_names(db, e, &n, &err))
			n = 1;
		cache_db_release(fs->cache, db);
	}
	return (nlink_t)n;
}

void ops_stat(struct fs *fs, const struct mirror_entry *e, uint64_t seen,
	      struct stat *st)
{
	struct session_attr a = { .size = e->size,
				  .atime_ns = e->atime_ns,
				  .mtime_ns = e->mtime_ns,
				  .ctime_ns = e->ctime_ns };

	if (e->kind == CFS_KIND_FILE && fs->sessions &&
	    !session_stat(fs->sessions, e->ino, &a) &&
	    sessions_settled(fs->sessions) != seen)
		current_attr(fs, e->ino, &a);
	if (!(a.mode & SESSION_MODE_SET))
		a.mode = e->mode;
	memset(st, 0, sizeof(*st));
	st->st_ino = e->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_nlink = 1;
	if (e->node != 0 && e->kind != CFS_KIND_DIR &&
	    e->kind != CFS_KIND_MOUNT)
		st->st_nlink = names(fs, e);
	st->st_blksize = 128 * 1024;
	switch (e->kind) {
	case CFS_KIND_FILE:
		st->st_mode = S_IFREG | (a.mode & 07777);
		st->st_size = (off_t)a.size;
		break;
	case CFS_KIND_SYMLINK:
		st->st_mode = S_IFLNK | 0777;
		st->st_size = (off_t)a.size;
		break;
	case CFS_KIND_FIFO:
	case CFS_KIND_SOCKET:
	case CFS_KIND_CHARDEV:
	case CFS_KIND_BLOCKDEV:
		st->st_mode = ops_special_type(e->kind) | (e->mode & 07777);
		st->st_rdev = ops_device_number(e->target);
		break;
	default: /* directories and shared folders' mounts */
		st->st_mode = S_IFDIR | (e->mode & 07777);
		st->st_size = 4096;
		st->st_nlink = 2 + subdirs(fs, e);
		break;
	}
	st->st_blocks = (st->st_size + 511) / 512;
	st->st_atim = timespec_of(a.atime_ns);
	st->st_mtim = timespec_of(a.mtime_ns);
	st->st_ctim = timespec_of(a.ctime_ns);
}

void ops_entry(struct fs *fs, const struct mirror_entry *e, uint64_t seen,
	       struct fuse_entry_param *ep)
{
	memset(ep, 0, sizeof(*ep));
	ep->ino = e->ino;
	ep->attr_timeout = OPS_CACHE_TIMEOUT_S;
	ep->entry_timeout = OPS_CACHE_TIMEOUT_S;
	ops_stat(fs, e, seen, &ep->attr);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = ops_fs(req);
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
	/* Replies are spliced from cache files where the platform can
	 * (platform_splice), but never moved: a moved page leaves the cache
	 * file's page cache, so every read of a cached block went to the
	 * disk again (warm reads at half speed). */
	if (platform_splice && conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_EXPLICIT_INVAL_DATA)
		conn->want |= FUSE_CAP_EXPLICIT_INVAL_DATA;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.statfs = op_statfs,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.lookup = ops_lookup,
	.getattr = ops_getattr,
	.readlink = ops_readlink,
	.opendir = ops_opendir,
	.readdir = ops_readdir,
	.readdirplus = ops_readdirplus,
	.open = ops_open,
	.create = ops_create,
	.read = ops_read,
	.write_buf = ops_write_buf,
	.fallocate = ops_fallocate,
	.copy_file_range = ops_copy_file_range,
	.lseek = ops_lseek,
	.fsync = ops_fsync,
	.fsyncdir = ops_fsyncdir,
	.release = ops_release,
	.mkdir = ops_mkdir,
	.mknod = ops_mknod,
	.symlink = ops_symlink,
	.unlink = ops_unlink,
	.rmdir = ops_rmdir,
	.rename = ops_rename,
	.link = ops_link,
	.setattr = ops_setattr,
	.getxattr = ops_getxattr,
	.listxattr = ops_listxattr,
	.setxattr = ops_setxattr,
	.removexattr = ops_removexattr,
};
