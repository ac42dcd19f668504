/*
 * bench-passthrough SOURCE MOUNTPOINT [FUSE OPTIONS]: shows the directory
 * SOURCE at MOUNTPOINT through FUSE and nothing else, so that bench/run can
 * tell what FUSE itself costs (the ceiling any FUSE filesystem, cloudfs
 * among them, can reach on this machine).  libfuse's high-level API, with
 * file descriptors kept open per handle; no caching beyond the kernel's
 * defaults but the page cache kept across opens (as cloudfs does).
 */
#define FUSE_USE_VERSION 312
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int source_fd = -1;

/* The path of a FUSE path under SOURCE, relative to source_fd. */
static const char *rel(const char *path)
{
	return path[1] ? path + 1 : ".";
}

static int err(int rc)
{
	return rc < 0 ? -errno : 0;
}

static void *pt_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->use_ino = 1;
	cfg->kernel_cache = 1;
	cfg->entry_timeout = cfg->attr_timeout = 1.0;
	return NULL;
}

static int pt_getattr(const char *path, struct stat *st,
		      struct fuse_file_info *fi)
{
	if (fi)
		return err(fstat((int)fi->fh, st));
	return err(fstatat(source_fd, rel(path), st, AT_SYMLINK_NOFOLLOW));
}

static int pt_readdir(const char *path, void *buf, fuse_fill_dir_t fill,
		      off_t off, struct fuse_file_info *fi,
		      enum fuse_readdir_flags flags)
{
	int fd = openat(source_fd, rel(path), O_RDONLY | O_DIRECTORY);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;

	(void)off, (void)fi, (void)flags;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct stat st = { .st_ino = de->d_ino,
				   .st_mode = (mode_t)de->d_type << 12 };

		if (fill(buf, de->d_name, &st, 0, 0))
			break;
	}
	closedir(d);
	return 0;
}

static int pt_open(const char *path, struct fuse_file_info *fi)
{
	int fd = openat(source_fd, rel(path), fi->flags & ~O_NOFOLLOW);

	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	fi->keep_cache = 1;
	return 0;
}

static int pt_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int fd = openat(source_fd, rel(path), fi->flags | O_CREAT, mode);

	if (fd < 0)
		return -errno;
	fi->fh = (uint64_t)fd;
	return 0;
}

static int pt_read(const char *path, char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	ssize_t n = pread((int)fi->fh, buf, size, off);

	(void)path;
	return n < 0 ? -errno : (int)n;
}

static int pt_write(const char *path, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	ssize_t n = pwrite((int)fi->fh, buf, size, off);

	(void)path;
	return n < 0 ? -errno : (int)n;
}

static int pt_release(const char *path, struct fuse_file_info *fi)
{
	(void)path;
	close((int)fi->fh);
	return 0;
}

static int pt_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	(void)path;
	return err(datasync ? fdatasync((int)fi->fh) : fsync((int)fi->fh));
}

static int pt_mkdir(const char *path, mode_t mode)
{
	return err(mkdirat(source_fd, rel(path), mode));
}

static int pt_unlink(const char *path)
{
	return err(unlinkat(source_fd, rel(path), 0));
}

static int pt_rmdir(const char *path)
{
	return err(unlinkat(source_fd, rel(path), AT_REMOVEDIR));
}

static int pt_rename(const char *from, const char *to, unsigned int flags)
{
	return err(renameat2(source_fd, rel(from), source_fd, rel(to), flags));
}

static int pt_symlink(const char *target, const char *path)
{
	return err(symlinkat(target, source_fd, rel(path)));
}

static int pt_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n = readlinkat(source_fd, rel(path), buf, size - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int pt_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	if (fi)
		return err(fchmod((int)fi->fh, mode));
	return err(fchmodat(source_fd, rel(path), mode, 0));
}

static int pt_chown(const char *path, uid_t uid, gid_t gid,
		    struct fuse_file_info *fi)
{
	if (fi)
		return err(fchown((int)fi->fh, uid, gid));
	return err(
		fchownat(source_fd, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW));
}

static int pt_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	int fd, rc;

	if (fi)
		return err(ftruncate((int)fi->fh, size));
	fd = openat(source_fd, rel(path), O_WRONLY);
	if (fd < 0)
		return -errno;
	rc = err(ftruncate(fd, size));
	close(fd);
	return rc;
}

static int pt_utimens(const char *path, const struct timespec tv[2],
		      struct fuse_file_info *fi)
{
	if (fi)
		return err(futimens((int)fi->fh, tv));
	return err(utimensat(source_fd, rel(path), tv, AT_SYMLINK_NOFOLLOW));
}

static int pt_statfs(const char *path, struct statvfs *sv)
{
	(void)path;
	return err(fstatvfs(source_fd, sv));
}

static const struct fuse_operations ops = {
	.init = pt_init,
	.getattr = pt_getattr,
	.readdir = pt_readdir,
	.open = pt_open,
	.create = pt_create,
	.read = pt_read,
	.write = pt_write,
	.release = pt_release,
	.fsync = pt_fsync,
	.mkdir = pt_mkdir,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.rename = pt_rename,
	.symlink = pt_symlink,
	.readlink = pt_readlink,
	.chmod = pt_chmod,
	.chown = pt_chown,
	.truncate = pt_truncate,
	.utimens = pt_utimens,
	.statfs = pt_statfs,
};

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr,
			"usage: bench-passthrough SOURCE MOUNTPOINT [FUSE OPTIONS]\n");
		return 2;
	}
	source_fd = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (source_fd < 0) {
		fprintf(stderr, "bench-passthrough: cannot open '%s': %s\n",
			argv[1], strerror(errno));
		return 1;
	}
	/* fuse_main sees: PROGRAM MOUNTPOINT [OPTIONS]. */
	argv[1] = argv[0];
	return fuse_main(argc - 1, argv + 1, &ops, NULL);
}
