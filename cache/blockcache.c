/* Block files of the cache (cache/blockcache.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache/blockcache.h"

/* "XX/ID": the block's file relative to DIR/blocks. */
static void block_name(const struct cfs_block_id *id, char name[68])
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];

	cfs_block_id_to_hex(id, hex);
	snprintf(name, 68, "%.2s/%s", hex, hex);
}

int blockcache_open(struct cache *c, const struct cfs_block_id *id)
{
	char name[68];
	int fd;

	block_name(id, name);
	fd = openat(c->blocks_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

int blockcache_tmp_create(struct cache *c, char name[32])
{
	static unsigned long counter;
	int fd;

	do {
		snprintf(name, 32, "fetch-%d-%lu", (int)getpid(),
			 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
		fd = openat(c->tmp_fd, name,
			    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			    0600);
	} while (fd < 0 && errno == EEXIST);
	return fd < 0 ? -errno : fd;
}

void blockcache_tmp_discard(struct cache *c, int fd, const char *name)
{
	close(fd);
	unlinkat(c->tmp_fd, name, 0);
}

enum cfs_err blockcache_adopt(struct cache *c, int dirfd, int fd,
			      const char *name, const struct cfs_block_id *id,
			      uint32_t size, struct cfs_error *err)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1], dir[3], path[68];
	struct cfs_sql *db;
	enum cfs_err rc;

	cfs_block_id_to_hex(id, hex);
	snprintf(dir, sizeof(dir), "%.2s", hex);
	block_name(id, path);
	/* fsync before rename: after a power cut a block file is whole or
	 * absent, never a renamed but empty file served as verified. */
	if (fsync(fd) ||
	    (mkdirat(c->blocks_fd, dir, 0700) && errno != EEXIST) ||
	    renameat(dirfd, name, c->blocks_fd, path)) {
		rc = cfs_fail(err,
			      errno == ENOSPC ? CFS_ERR_STORAGE_FULL
					      : CFS_ERR_INTERNAL,
			      "cannot store block %s in '%s': %s", hex, c->path,
			      strerror(errno));
		close(fd);
		unlinkat(dirfd, name, 0);
		return rc;
	}
	close(fd);
	db = cache_db(c, err);
	if (!db)
		return err->code;
	rc = cfs_sql_exec(db,
			  "INSERT OR REPLACE INTO blocks(id, size, stored)"
			  " VALUES (?1, ?2, ?3)",
			  err, "bii", id->b, (size_t)CFS_BLOCK_ID_LEN,
			  (int64_t)size, (int64_t)time(NULL));
	cache_db_release(c, db);
	return rc;
}

enum cfs_err blockcache_store(struct cache *c, int fd, const char *name,
			      const struct cfs_block_id *id, uint32_t size,
			      struct cfs_error *err)
{
	return blockcache_adopt(c, c->tmp_fd, fd, name, id, size, err);
}
