/* The content of refused changes, kept under the cache (cache/refused.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/blockcache.h"
#include "cache/refused.h"

#define REFUSED "refused"

static enum cfs_err io_fail(struct cfs_error *err, int e, const char *what,
			    const char *name)
{
	return cfs_fail(err,
			e == ENOSPC ? CFS_ERR_STORAGE_FULL : CFS_ERR_INTERNAL,
			"cannot %s '%s': %s", what, name, strerror(e));
}

/* Opens directory name in dir, making it first if missing. */
static int open_dir(int dir, const char *name)
{
	if (mkdirat(dir, name, 0700) && errno != EEXIST)
		return -1;
	return openat(dir, name,
		      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Copies the content into fd, block by block, from the block files. */
static enum cfs_err copy_blocks(struct cache *c, int fd, uint64_t size,
				const struct cfs_blocklist *blocks,
				const char *name, struct cfs_error *err)
{
	char buf[64 * 1024];
	enum cfs_err rc = CFS_OK;

	for (size_t b = 0; rc == CFS_OK && b < blocks->n; b++) {
		uint32_t left = cfs_block_len(size, b);
		int in = blockcache_open(c, &blocks->ids[b]);

		if (in < 0) {
			rc = cfs_fail(err, CFS_ERR_NOT_FOUND,
				      "block %zu of '%s' is not in the cache",
				      b, name);
			break;
		}
		while (rc == CFS_OK && left > 0) {
			ssize_t n =
				read(in, buf,
				     left < sizeof(buf) ? left : sizeof(buf));

			if (n <= 0)
				rc = io_fail(err, n < 0 ? errno : EIO,
					     "read a block for", name);
			else if (write(fd, buf, (size_t)n) != n)
				rc = io_fail(err, errno ? errno : ENOSPC,
					     "write", name);
			else
				left -= (uint32_t)n;
		}
		close(in);
	}
	return rc;
}

/* Creates the last component of path in dir: name, or "name (N)". */
static int create_free(int dir, const char *name, char *made, size_t room)
{
	for (int n = 1; n < 1000; n++) {
		int fd, len = n == 1 ? snprintf(made, room, "%s", name)
				     : snprintf(made, room, "%s (%d)", name, n);

		if (len < 0 || (size_t)len >= room) {
			errno = ENAMETOOLONG;
			return -1;
		}
		fd = openat(dir, made,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC,
			    0600);
		if (fd >= 0 || errno != EEXIST)
			return fd;
	}
	errno = EEXIST;
	return -1;
}

enum cfs_err refused_keep(struct cache *c, int64_t ns, const char *path,
			  uint64_t size, const struct cfs_blocklist *blocks,
			  char saved[PATH_MAX], struct cfs_error *err)
{
	char when[64], rel[PATH_MAX], made[NAME_MAX + 1];
	time_t now = time(NULL);
	struct tm tm;
	enum cfs_err rc = CFS_OK;
	char *name, *slash;
	int dir, fd;

	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H-%M-%SZ", &tm);
	snprintf(when + strlen(when), sizeof(when) - strlen(when), "-ns%lld",
		 (long long)ns);
	if (snprintf(rel, sizeof(rel), "%s", path) >= (int)sizeof(rel))
		return cfs_fail(err, CFS_ERR_TOO_LONG, "'%s' is too long",
				path);
	dir = open_dir(c->dirfd, REFUSED);
	if (dir >= 0) {
		int sub = open_dir(dir, when);

		close(dir);
		dir = sub;
	}
	/* The folders of path, then its last name. */
	for (name = rel; dir >= 0 && (slash = strchr(name, '/'));
	     name = slash + 1) {
		int sub;

		*slash = '\0';
		sub = open_dir(dir, name);
		close(dir);
		dir = sub;
	}
	if (dir < 0)
		return io_fail(err, errno, "make a folder for", path);
	fd = create_free(dir, name, made, sizeof(made));
	if (fd < 0)
		rc = io_fail(err, errno, "create the kept copy of", path);
	if (rc == CFS_OK)
		rc = copy_blocks(c, fd, size, blocks, path, err);
	if (rc == CFS_OK && fsync(fd))
		rc = io_fail(err, errno, "sync the kept copy of", path);
	if (fd >= 0)
		close(fd);
	if (rc == CFS_OK && fsync(dir))
		rc = io_fail(err, errno, "sync the folder of", path);
	if (rc && fd >= 0)
		unlinkat(dir, made, 0); /* a part would pass for the whole */
	close(dir);
	if (rc == CFS_OK) {
		const char *last = strrchr(path, '/');
		int folders = last ? (int)(last - path + 1) : 0;

		if (snprintf(saved, PATH_MAX, "%s/%s/%s/%.*s%s", c->path,
			     REFUSED, when, folders, path,
			     made) >= PATH_MAX) /* shown, never opened */
			saved[PATH_MAX - 1] = '\0';
	}
	return rc;
}

/* Counts the regular files under dir (closed here). */
static int64_t count_files(int dir)
{
	DIR *d = fdopendir(dir);
	struct dirent *de;
	int64_t n = 0;

	if (!d) {
		close(dir);
		return 0;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		struct stat st;
		bool is_dir = de->d_type == DT_DIR;

		if (de->d_type == DT_UNKNOWN &&
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
			    0)
			is_dir = S_ISDIR(st.st_mode);
		if (is_dir) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);

			if (sub >= 0)
				n += count_files(sub);
		} else {
			n++;
		}
	}
	closedir(d);
	return n;
}

enum cfs_err refused_count(struct cache *c, int64_t *files,
			   struct cfs_error *err)
{
	int dir = openat(c->dirfd, REFUSED,
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	*files = 0;
	if (dir < 0)
		return errno == ENOENT ? CFS_OK
				       : io_fail(err, errno, "read", REFUSED);
	*files = count_files(dir);
	return CFS_OK;
}
