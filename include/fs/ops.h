/*
 * The kernel-facing handlers of mount.cloudfs (FUSE low-level API), by
 * what they touch:
 *
 *	fs/ops_meta.c  reading the tree: lookup, getattr, readlink, readdir
 *	fs/ops_file.c  file content: open, create, read, write, fallocate,
 *	               copy_file_range, fsync, release (and fsyncdir)
 *	fs/ops_tree.c  changing the tree: mkdir, unlink, rename, setattr...
 *	fs/ops_xattr.c what the mount says of an entry: extended attributes
 *
 * fs/ops.c holds the handler table, init, statfs and the helpers below.
 * Each handler replies exactly once; helpers return 0 or a positive
 * errno.  Metadata is answered from the mirror, never with a network round
 * trip, and changes are made there first (cache/local.h), then sent by
 * the uploader.
 */
#ifndef FS_OPS_H
#define FS_OPS_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <sys/stat.h>

#include "cache/mirror.h"
#include "fs/fs.h"

/* The handlers the kernel calls (fs/ops.c). */
extern const struct fuse_lowlevel_ops fs_ops;

/* Safe to keep long: every change is invalidated explicitly. */
#define OPS_CACHE_TIMEOUT_S 86400.0

struct fs *ops_fs(fuse_req_t req);

/* A cache connection for this thread; NULL with *e = EIO (logged). */
struct cfs_sql *ops_db(struct fs *fs, int *e);

/* Makes every change made so far durable on this machine (cache_sync):
 * 0 or an errno (logged). */
int ops_sync(struct fs *fs);

/* A change to ino brings cost bytes into the cache: 0 once the keeper
 * admits them (keeper_written once they are), or ENOSPC (logged
 * once per file). */
int ops_admit(struct fs *fs, fuse_ino_t ino, uint64_t cost);

/* The errno of an error, logging the ones a user cannot explain. */
int ops_errno(enum cfs_err rc, const struct cfs_error *err);

/* The entry of ino, with its connection (*db, the caller releases it);
 * ESTALE when the mirror no longer has ino. */
int ops_get(struct fs *fs, fuse_ino_t ino, struct cfs_sql **db,
	    struct mirror_entry *e);

/* The attributes of e, read from the mirror when sessions_settled() was
 * seen: a file being written shows its session's size and mtime, and one
 * whose session settled since e was read shows what it committed. */
void ops_stat(struct fs *fs, const struct mirror_entry *e, uint64_t seen,
	      struct stat *st);
void ops_entry(struct fs *fs, const struct mirror_entry *e, uint64_t seen,
	       struct fuse_entry_param *ep);

/*
 * Special files between the kernel and the namespace: the kind of a file
 * type (S_IFIFO, S_IFSOCK, S_IFCHR, S_IFBLK; false for the others), and
 * back; a device's number from its target, and back.
 */
bool ops_special_kind(mode_t type, enum cfs_kind *kind);
mode_t ops_special_type(enum cfs_kind kind);
dev_t ops_device_number(const char *target);
void ops_device_target(dev_t rdev, char out[CFS_DEVICE_TARGET_MAX]);

struct local_new;

/* Creates name in parent (cache/local.h: local_mknode); *ep describes it.
 * With out, *out gets the new entry, which the caller releases. */
int ops_make(struct fs *fs, fuse_ino_t parent, const char *name,
	     const struct local_new *n, struct fuse_entry_param *ep,
	     struct mirror_entry *out);

/* fs/ops_meta.c */
/* The entry called name in parent, as a lookup answers it. */
int ops_lookup_entry(struct fs *fs, fuse_ino_t parent, const char *name,
		     struct fuse_entry_param *ep);
void ops_lookup(fuse_req_t req, fuse_ino_t parent, const char *name);
void ops_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ops_readlink(fuse_req_t req, fuse_ino_t ino);
void ops_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ops_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		 struct fuse_file_info *fi);
void ops_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		     struct fuse_file_info *fi);

/* fs/ops_file.c */
void ops_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void ops_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		mode_t mode, struct fuse_file_info *fi);
void ops_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	      struct fuse_file_info *fi);
void ops_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *bufv,
		   off_t off, struct fuse_file_info *fi);
void ops_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
		   off_t len, struct fuse_file_info *fi);
void ops_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			 struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			 off_t off_out, struct fuse_file_info *fi_out,
			 size_t len, int flags);
void ops_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
	       struct fuse_file_info *fi);
void ops_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
		  struct fuse_file_info *fi);
void ops_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Brings fh's block list up to date if the file changed (fh->lock held). */
void ops_refresh(struct fs *fs, struct open_file *fh);

/* fs/ops_seek.c */
void ops_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
	       struct fuse_file_info *fi);

/* fs/ops_tree.c */
void ops_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
	       mode_t mode);
void ops_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	       dev_t rdev);
void ops_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		 const char *name);
void ops_unlink(fuse_req_t req, fuse_ino_t parent, const char *name);
void ops_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name);
void ops_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		fuse_ino_t newparent, const char *newname, unsigned int flags);
void ops_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
	      const char *newname);
void ops_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		 struct fuse_file_info *fi);

/* fs/ops_xattr.c */
void ops_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		  size_t size);
void ops_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void ops_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
		  const char *value, size_t size, int flags);
void ops_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

#endif
