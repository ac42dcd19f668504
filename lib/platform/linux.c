/*
 * The platform layer on Linux with glibc (include/cloudfs/platform.h):
 * the kernel's own calls where they save a copy, a system call or a race.
 */
#include "cloudfs/platform.h"

#include <errno.h>
#include <fcntl.h>    /* FALLOC_FL_*, O_PATH, O_DIRECT */
#include <linux/fs.h> /* RENAME_NOREPLACE */
#include <malloc.h>   /* malloc_trim */
#include <mntent.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/sysmacros.h> /* makedev(), major(), minor() */
#include <sys/xattr.h>
#include <unistd.h>

const char platform_mount_table[] = "/proc/self/mounts";
const int platform_no_xattr = ENODATA;
/* Replies are spliced from cache files: no copy through the mount. */
const bool platform_splice = true;
const short platform_poll_peer_closed = POLLRDHUP;

int platform_pipe(int fds[2])
{
	return pipe2(fds, O_CLOEXEC);
}

int platform_socket(int domain, int type, int protocol)
{
	return socket(domain, type | SOCK_CLOEXEC, protocol);
}

int platform_accept(int fd)
{
	return accept4(fd, NULL, NULL, SOCK_CLOEXEC);
}

int platform_copy_file(int src, int dst, size_t n)
{
	off_t in = 0, out = 0;

	while (n) {
		ssize_t k = copy_file_range(src, &in, dst, &out, n, 0);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? errno : EIO;
		n -= (size_t)k;
	}
	return 0;
}

void platform_drop_cached_pages(int fd)
{
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

int platform_fallocate_mode(int mode, struct platform_fallocate *out)
{
	const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE |
			  FALLOC_FL_ZERO_RANGE;

	if (mode & ~known)
		return EOPNOTSUPP;
	out->keep_size = mode & FALLOC_FL_KEEP_SIZE;
	out->zero = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE);
	return 0;
}

int platform_rename_flags(unsigned flags, bool *noreplace)
{
	/* RENAME_EXCHANGE swaps two entries in one journal operation: not
	 * in the protocol. */
	if (flags & ~(unsigned)RENAME_NOREPLACE)
		return EINVAL;
	*noreplace = flags & RENAME_NOREPLACE;
	return 0;
}

enum platform_seek platform_seek_whence(int whence)
{
	return whence == SEEK_DATA   ? PLATFORM_SEEK_DATA
	       : whence == SEEK_HOLE ? PLATFORM_SEEK_HOLE
				     : PLATFORM_SEEK_OTHER;
}

dev_t platform_makedev(uint32_t major, uint32_t minor)
{
	return makedev(major, minor);
}

void platform_device_split(dev_t dev, uint32_t *major, uint32_t *minor)
{
	*major = (uint32_t)major(dev);
	*minor = (uint32_t)minor(dev);
}

ssize_t platform_lgetxattr(const char *path, const char *name, void *value,
			   size_t size)
{
	return lgetxattr(path, name, value, size);
}

char **platform_mounts(const char *fstype, bool *listed)
{
	FILE *f = setmntent(platform_mount_table, "r");
	char **list = calloc(1, sizeof(*list));
	size_t n = 0;
	struct mntent *m;

	*listed = f != NULL;
	while (f && list && (m = getmntent(f))) {
		char **grown;

		if (strcmp(m->mnt_type, fstype) != 0)
			continue;
		grown = realloc(list, (n + 2) * sizeof(*list));
		if (!grown)
			break;
		list = grown;
		list[n] = strdup(m->mnt_dir);
		list[n + 1] = NULL;
		n += list[n] != NULL;
	}
	if (f)
		endmntent(f);
	return list;
}

void platform_trim_heap(void)
{
	malloc_trim(0);
}

int platform_syncfs(int fd)
{
	return syncfs(fd);
}

int platform_write_direct(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT);
}

int platform_open_inode(const char *path)
{
	return open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}
