/*
 * The platform layer: every call the three programs make that POSIX does
 * not define, or that one kernel spells differently, goes through here.
 * Meson compiles one file of lib/platform/ (-Dplatform=, README):
 *
 *	linux.c    Linux and glibc: splice, copy_file_range, accept4, pipe2,
 *	           <linux/fs.h>'s rename flags, fallocate's FALLOC_FL_*,
 *	           SEEK_DATA, lgetxattr, /proc/self/mounts, POLLRDHUP,
 *	           malloc_trim.
 *	generic.c  POSIX.1-2008 (XSI) and the libfuse3 API only: what macOS
 *	           (macFUSE, FUSE-T) and the BSDs share.  No splice, no
 *	           epoll, no /proc; what it cannot do it says it cannot do
 *	           (ENOTSUP, an empty list) rather than pretend.
 *
 * Outside lib/platform/ no file includes a Linux-only header or calls a
 * Linux-only function: tests/check-platform fails the unit suite if one
 * does, and a generic build compiles every file without _GNU_SOURCE, so
 * glibc hides its extensions from it.
 *
 * Functions that return int return 0 or an errno (positive), unless they
 * say they return a file descriptor.
 */
#ifndef CLOUDFS_PLATFORM_H
#define CLOUDFS_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#if defined(__GLIBC__) && !defined(_GNU_SOURCE)
/* POSIX.1-2024 functions that macOS and the BSDs declare by default but
 * glibc 2.36 only under _GNU_SOURCE, which a generic build leaves out. */
int asprintf(char **out, const char *fmt, ...);
int mkostemp(char *tmpl, int flags);
#endif

/* --- File descriptors, all close-on-exec from their first instant (no
 * fork of another thread can inherit them: the mount and the server
 * start helpers). --- */

/* A pipe; -1 and errno on failure, as pipe(2). */
int platform_pipe(int fds[2]);

/* A socket of domain, type and protocol; -1 and errno on failure. */
int platform_socket(int domain, int type, int protocol);

/* The next connection on listening socket fd; -1 and errno on failure. */
int platform_accept(int fd);

/* Copies n bytes of src from offset 0 to dst at offset 0 (a dirty block's
 * staging copy: the kernel may share the extents where it can); 0 or an
 * errno, EIO when src ends before n bytes. */
int platform_copy_file(int src, int dst, size_t n);

/* Asks the kernel to drop its cached pages of fd (cloudfs cache warm
 * reads through the mount, not from pages it already holds); best effort. */
void platform_drop_cached_pages(int fd);

/* --- What the kernel asks of the mount, in this platform's encoding. --- */

/* fallocate(2)'s modes the mount implements, decoded. */
struct platform_fallocate {
	bool keep_size; /* the file's size stays as it is */
	bool zero;	/* the range reads as zeros after (punch, zero range) */
};

/* Decodes the kernel's fallocate mode; EOPNOTSUPP for a mode the mount
 * does not implement (collapse, insert, unshare). */
int platform_fallocate_mode(int mode, struct platform_fallocate *out);

/* Decodes rename(2)'s flags; EINVAL for any but "do not replace"
 * (RENAME_NOREPLACE on Linux), which sets *noreplace. */
int platform_rename_flags(unsigned flags, bool *noreplace);

/* lseek(2)'s whence for what the mount answers itself. */
enum platform_seek {
	PLATFORM_SEEK_OTHER, /* SEEK_SET/CUR/END: the kernel's business */
	PLATFORM_SEEK_DATA,
	PLATFORM_SEEK_HOLE,
};
enum platform_seek platform_seek_whence(int whence);

/* The errno of getxattr for a name a file does not have (ENODATA on
 * Linux, ENOATTR where it exists). */
extern const int platform_no_xattr;

/* Whether the mount asks libfuse to splice replies from cache files. */
extern const bool platform_splice;

/* A device number from its major and minor, and back; on a platform
 * without makedev() devices are kept as 0,0 (metadata only anyway). */
dev_t platform_makedev(uint32_t major, uint32_t minor);
void platform_device_split(dev_t dev, uint32_t *major, uint32_t *minor);

/* --- What the command line asks of the system. --- */

/* The value of extended attribute name of path itself (not of what a
 * symlink points to): its length, or -1 and errno (ENOTSUP where the
 * platform has no extended attributes). */
ssize_t platform_lgetxattr(const char *path, const char *name, void *value,
			   size_t size);

/* The mount points of file systems of type fstype ("fuse.cloudfs"), as a
 * NULL-terminated array of malloc'ed strings (free each, then the array);
 * NULL only when out of memory.  Where the platform cannot list mounts
 * the array is empty and *listed is false, so callers say so. */
char **platform_mounts(const char *fstype, bool *listed);

/* Where platform_mounts() reads, for messages ("/proc/self/mounts"). */
extern const char platform_mount_table[];

/* --- What the server asks of the system. --- */

/* poll(2) events that report a peer's hang-up on an idle socket, beyond
 * POLLHUP (POLLRDHUP on Linux; 0 elsewhere, where only POLLHUP does). */
extern const short platform_poll_peer_closed;

/* Hands the allocator's free lists back to the kernel where it can. */
void platform_trim_heap(void);

/* Makes durable everything written to the file system that holds fd
 * (syncfs(2) on Linux); -1 with errno ENOSYS where the platform has no
 * such call: the caller then makes each of its files durable itself. */
int platform_syncfs(int fd);

/* With on, makes writes to fd bypass the page cache (O_DIRECT on Linux):
 * each must then start at an offset, and come from an address, aligned
 * to PLATFORM_DIRECT_ALIGN, and be a multiple of it long; with !on, goes
 * back to writing through the cache.  0, or -1 with errno (ENOSYS where
 * the platform has no such mode; EINVAL where the file system refuses
 * it, which some do only at the first write). */
#define PLATFORM_DIRECT_ALIGN 4096
int platform_write_direct(int fd, bool on);

/* Opens path only to hold on to its inode (O_PATH on Linux: no read
 * access needed, nothing read); -1 and errno on failure. */
int platform_open_inode(const char *path);

#endif
