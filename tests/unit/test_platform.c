/*
 * The platform layer (include/cloudfs/platform.h), in whichever file meson
 * compiled: the promises every platform keeps, so that a generic build's
 * stand-ins (tests/run builds one) are held to what Linux's calls do.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "check.h"
#include "cloudfs/platform.h"

static bool cloexec(int fd)
{
	int flags = fcntl(fd, F_GETFD);

	return flags >= 0 && (flags & FD_CLOEXEC);
}

/* A file in a fresh folder under /tmp; removed by the caller. */
static char dir[] = "/tmp/cfs-test-platform-XXXXXX";

static int file_with(const char *name, const char *bytes, size_t n)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0 && n && write(fd, bytes, n) != (ssize_t)n) {
		close(fd);
		return -1;
	}
	return fd;
}

static void test_pipes_sockets_and_connections_are_close_on_exec(void)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int p[2], s, c, a;

	CHECK(platform_pipe(p) == 0);
	CHECK(cloexec(p[0]) && cloexec(p[1]));
	CHECK(write(p[1], "x", 1) == 1);
	close(p[0]);
	close(p[1]);

	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/sock", dir);
	s = platform_socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(s >= 0 && cloexec(s));
	CHECK(bind(s, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	CHECK(listen(s, 1) == 0);
	c = platform_socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&addr, sizeof(addr)) == 0);
	a = platform_accept(s);
	CHECK(a >= 0 && cloexec(a));
	close(a);
	close(c);
	close(s);
	unlink(addr.sun_path);
}

static void test_a_copy_holds_the_source_bytes_and_a_short_source_is_eio(void)
{
	/* More than one buffer of the generic copy, and not a multiple. */
	size_t n = 200 * 1024 + 7;
	char *bytes = malloc(n), *back = malloc(n);
	int src, dst;

	for (size_t i = 0; i < n; i++)
		bytes[i] = (char)(i * 31 + i / 4096);
	src = file_with("src", bytes, n);
	dst = file_with("dst", NULL, 0);
	CHECK(src >= 0 && dst >= 0);
	CHECK(platform_copy_file(src, dst, n) == 0);
	CHECK(pread(dst, back, n, 0) == (ssize_t)n);
	CHECK(memcmp(bytes, back, n) == 0);
	CHECK(lseek(dst, 0, SEEK_END) == (off_t)n);
	CHECK(platform_copy_file(src, dst, n + 1) == EIO);
	close(src);
	close(dst);
	free(bytes);
	free(back);
}

static void test_kernel_flags_beyond_the_known_are_refused(void)
{
	struct platform_fallocate how = { .keep_size = true, .zero = true };
	bool noreplace = true;

	/* Mode 0 means "allocate, growing the file" on every kernel. */
	CHECK(platform_fallocate_mode(0, &how) == 0);
	CHECK(!how.keep_size && !how.zero);
	CHECK(platform_fallocate_mode(1 << 30, &how) == EOPNOTSUPP);

	CHECK(platform_rename_flags(0, &noreplace) == 0 && !noreplace);
	CHECK(platform_rename_flags(1u << 30, &noreplace) == EINVAL);

	CHECK(platform_seek_whence(SEEK_SET) == PLATFORM_SEEK_OTHER);
	CHECK(platform_seek_whence(SEEK_CUR) == PLATFORM_SEEK_OTHER);
	CHECK(platform_seek_whence(SEEK_END) == PLATFORM_SEEK_OTHER);
}

static void test_a_device_number_splits_into_what_made_it(void)
{
	dev_t d = platform_makedev(8, 17);
	uint32_t major = 1, minor = 1;

	platform_device_split(d, &major, &minor);
	/* 0,0 where the platform has no makedev(); never a wrong pair. */
	CHECK((major == 8 && minor == 17) || (d == 0 && !major && !minor));
}

static void test_mounts_of_an_unknown_type_are_none(void)
{
	bool listed = false;
	char **list = platform_mounts("no-such-type.cloudfs-test", &listed);

	CHECK(list != NULL);
	CHECK(list && list[0] == NULL);
	CHECK(platform_mount_table[0] != '\0');
	free(list);
}

static void test_an_inode_is_held_and_a_missing_one_is_enoent(void)
{
	char path[128];
	int fd = file_with("held", "x", 1), held;

	close(fd);
	snprintf(path, sizeof(path), "%s/held", dir);
	held = platform_open_inode(path);
	CHECK(held >= 0 && cloexec(held));
	CHECK(unlink(path) == 0);
	close(held);
	errno = 0;
	CHECK(platform_open_inode(path) == -1 && errno == ENOENT);
}

static void test_syncfs_syncs_or_says_it_cannot(void)
{
	int fd = file_with("synced", "x", 1), r;

	errno = 0;
	r = platform_syncfs(fd);
	CHECK(r == 0 || (r == -1 && errno == ENOSYS));
	close(fd);
	errno = 0;
	CHECK(platform_syncfs(-1) == -1 && errno != 0);
}

static void test_a_missing_attribute_is_an_error(void)
{
	char path[128], value[16];
	int fd = file_with("attrs", NULL, 0);

	close(fd);
	snprintf(path, sizeof(path), "%s/attrs", dir);
	errno = 0;
	CHECK(platform_lgetxattr(path, "user.cloudfs.none", value,
				 sizeof(value)) == -1);
	CHECK(errno == platform_no_xattr || errno == ENOTSUP);
	unlink(path);
}

int main(void)
{
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	RUN(test_pipes_sockets_and_connections_are_close_on_exec);
	RUN(test_a_copy_holds_the_source_bytes_and_a_short_source_is_eio);
	RUN(test_kernel_flags_beyond_the_known_are_refused);
	RUN(test_a_device_number_splits_into_what_made_it);
	RUN(test_mounts_of_an_unknown_type_are_none);
	RUN(test_an_inode_is_held_and_a_missing_one_is_enoent);
	RUN(test_syncfs_syncs_or_says_it_cannot);
	RUN(test_a_missing_attribute_is_an_error);
	for (const char **name =
		     (const char *[]){ "src", "dst", "synced", NULL };
	     *name; name++) {
		char path[128];

		snprintf(path, sizeof(path), "%s/%s", dir, *name);
		unlink(path);
	}
	rmdir(dir);
	return CHECK_DONE();
}
