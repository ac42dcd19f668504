/*
 * The embedded block store: one file per block.
 *
 *	DATA/blocks/ab/abcdef...   the bytes of block abcdef... (64 hex digits)
 *	DATA/tmp/upload-XXXXXX     uploads in flight (emptied at open)
 *
 * A block file appears only by rename(2) of a complete, fsync'ed temporary
 * file, followed by an fsync of its directory, so after a crash a block
 * file is either absent or whole.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloudfs/log.h"
#include "server/blockstore.h"

struct dir_store {
	struct blockstore base;
	char blocks[4096];
	char tmp[4096];
};

static int mkdir_private(const char *path)
{
	if (mkdir(path, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static int fsync_dir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd))
		rc = -errno;
	close(fd);
	return rc;
}

static void block_path(const struct dir_store *s, const struct cfs_block_id *id,
		       char *dir, size_t dir_len, char *file, size_t file_len)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];

	cfs_block_id_to_hex(id, hex);
	snprintf(dir, dir_len, "%s/%.2s", s->blocks, hex);
	snprintf(file, file_len, "%s/%.2s/%s", s->blocks, hex, hex);
}

static int dir_tmp_create(struct blockstore *bs, struct blockstore_tmp *tmp)
{
	struct dir_store *s = (struct dir_store *)bs;

	if ((size_t)snprintf(tmp->path, sizeof(tmp->path), "%s/upload-XXXXXX",
			     s->tmp) >= sizeof(tmp->path))
		return -ENAMETOOLONG;
	tmp->fd = mkostemp(tmp->path, O_CLOEXEC);
	return tmp->fd < 0 ? -errno : 0;
}

static void dir_tmp_discard(struct blockstore *bs, struct blockstore_tmp *tmp)
{
	(void)bs;
	if (tmp->fd >= 0) {
		close(tmp->fd);
		unlink(tmp->path);
		tmp->fd = -1;
	}
}

static int dir_tmp_store(struct blockstore *bs, struct blockstore_tmp *tmp,
			 const struct cfs_block_id *id)
{
	struct dir_store *s = (struct dir_store *)bs;
	char dir[4200], file[4300];
	struct stat st;
	int rc = 0;

	block_path(s, id, dir, sizeof(dir), file, sizeof(file));
	if (stat(file, &st) == 0)
		goto out; /* stored before: this copy was only hashed */
	if (fsync(tmp->fd)) {
		rc = -errno;
		goto out;
	}
	rc = mkdir_private(dir);
	if (rc)
		goto out;
	if (rename(tmp->path, file)) {
		rc = -errno;
		goto out;
	}
	rc = fsync_dir(dir);
out:
	dir_tmp_discard(bs, tmp);
	return rc;
}

static int dir_open(struct blockstore *bs, const struct cfs_block_id *id,
		    int *fd, uint64_t *size)
{
	struct dir_store *s = (struct dir_store *)bs;
	char dir[4200], file[4300];
	struct stat st;

	block_path(s, id, dir, sizeof(dir), file, sizeof(file));
	*fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (*fd < 0)
		return -errno;
	if (fstat(*fd, &st)) {
		int rc = -errno;

		close(*fd);
		*fd = -1;
		return rc;
	}
	*size = (uint64_t)st.st_size;
	return 0;
}

static int dir_remove(struct blockstore *bs, const struct cfs_block_id *id)
{
	struct dir_store *s = (struct dir_store *)bs;
	char dir[4200], file[4300];

	block_path(s, id, dir, sizeof(dir), file, sizeof(file));
	return unlink(file) && errno != ENOENT ? -errno : 0;
}

static void dir_close(struct blockstore *bs)
{
	free(bs);
}

static const struct blockstore_ops dir_ops = {
	.close = dir_close,
	.tmp_create = dir_tmp_create,
	.tmp_store = dir_tmp_store,
	.tmp_discard = dir_tmp_discard,
	.open = dir_open,
	.remove = dir_remove,
};

/* Uploads that were in flight when the server last stopped are garbage. */
static void empty_tmp(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "upload-", 7) == 0 &&
		    unlinkat(dirfd(d), de->d_name, 0))
			cfs_log_warn("cannot remove stale upload '%s/%s': %s",
				     path, de->d_name, strerror(errno));
	}
	closedir(d);
}

int blockstore_dir_open(const char *data_dir, struct blockstore **out)
{
	struct dir_store *s = calloc(1, sizeof(*s));
	int rc;

	if (!s)
		return -ENOMEM;
	s->base.ops = &dir_ops;
	if ((size_t)snprintf(s->blocks, sizeof(s->blocks), "%s/blocks",
			     data_dir) >= sizeof(s->blocks) ||
	    (size_t)snprintf(s->tmp, sizeof(s->tmp), "%s/tmp", data_dir) >=
		    sizeof(s->tmp)) {
		free(s);
		return -ENAMETOOLONG;
	}
	rc = mkdir_private(s->blocks);
	if (rc == 0)
		rc = mkdir_private(s->tmp);
	if (rc) {
		free(s);
		return rc;
	}
	empty_tmp(s->tmp);
	*out = &s->base;
	return 0;
}
