/*
 * The platform layer's calls that POSIX.1-2008 has (include/cloudfs/
 * platform.h), shared by the generic build and macOS (generic.c,
 * darwin.c), which add only what differs between them: error numbers,
 * flags and names a POSIX header does not fix.
 */
#include "cloudfs/platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* Replies are read from cache files into memory by libfuse. */
const bool platform_splice = false;
const short platform_poll_peer_closed = 0;

/* POSIX.1-2008 has no atomic close-on-exec for pipes, sockets and
 * accepted connections: set it right after.  A fork() of another thread
 * in between would inherit the descriptor; the programs fork only while
 * single-threaded (daemonizing), so none does. */
static int cloexec(int fd)
{
	if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC)) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int platform_pipe(int fds[2])
{
	if (pipe(fds))
		return -1;
	if (cloexec(fds[0]) < 0) {
		close(fds[1]);
		return -1;
	}
	if (cloexec(fds[1]) < 0) {
		close(fds[0]);
		return -1;
	}
	return 0;
}

int platform_socket(int domain, int type, int protocol)
{
	return cloexec(socket(domain, type, protocol));
}

int platform_accept(int fd)
{
	return cloexec(accept(fd, NULL, NULL));
}

int platform_copy_file(int src, int dst, size_t n)
{
	char buf[64 * 1024];
	off_t at = 0;

	while (n) {
		size_t want = n < sizeof(buf) ? n : sizeof(buf);
		ssize_t k = pread(src, buf, want, at);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? errno : EIO;
		for (ssize_t done = 0; done < k;) {
			ssize_t w = pwrite(dst, buf + done, (size_t)(k - done),
					   at + done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return w < 0 ? errno : EIO;
			done += w;
		}
		at += k;
		n -= (size_t)k;
	}
	return 0;
}

void platform_drop_cached_pages(int fd)
{
#ifdef POSIX_FADV_DONTNEED
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
#else
	(void)fd; /* macOS has no posix_fadvise: warm may read cached pages */
#endif
}

/* The kernel's mode bits are its own: only 0 (allocate, growing the
 * file) means the same everywhere. */
int platform_fallocate_mode(int mode, struct platform_fallocate *out)
{
	if (mode)
		return EOPNOTSUPP;
	out->keep_size = false;
	out->zero = false;
	return 0;
}

enum platform_seek platform_seek_whence(int whence)
{
#if defined(SEEK_DATA) && defined(SEEK_HOLE)
	return whence == SEEK_DATA   ? PLATFORM_SEEK_DATA
	       : whence == SEEK_HOLE ? PLATFORM_SEEK_HOLE
				     : PLATFORM_SEEK_OTHER;
#else
	(void)whence;
	return PLATFORM_SEEK_OTHER;
#endif
}

dev_t platform_makedev(uint32_t major, uint32_t minor)
{
#ifdef makedev /* <sys/types.h> of macOS and the BSDs */
	return makedev(major, minor);
#else
	(void)major, (void)minor;
	return 0;
#endif
}

void platform_device_split(dev_t dev, uint32_t *major, uint32_t *minor)
{
#if defined(major) && defined(minor)
	*major = (uint32_t)major(dev);
	*minor = (uint32_t)minor(dev);
#else
	(void)dev;
	*major = *minor = 0;
#endif
}

ssize_t platform_lgetxattr(const char *path, const char *name, void *value,
			   size_t size)
{
	(void)path, (void)name, (void)value, (void)size;
	errno = ENOTSUP; /* POSIX has no extended attributes */
	return -1;
}

char **platform_mounts(const char *fstype, bool *listed)
{
	(void)fstype;
	*listed = false; /* POSIX has no list of mounts */
	return calloc(1, sizeof(char *));
}

void platform_trim_heap(void)
{
}

/* POSIX sync() may return before the writes are done: no promise from
 * it, so the callers' per-file fsync path. */
int platform_syncfs(int fd)
{
	(void)fd;
	errno = ENOSYS;
	return -1;
}

int platform_write_direct(int fd, bool on)
{
	(void)fd, (void)on;
	errno = ENOSYS;
	return -1;
}

int platform_open_inode(const char *path)
{
	return open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
}
