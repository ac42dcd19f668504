/* Block files of the cache (cache/blockcache.h). */
#include <assert.h>
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
	char made[32];
	int fd;

	do {
		/* Made aside and copied: GCC 12 with -O3 and UBSan sees a
		 * null destination in snprintf(name, ...). */
		snprintf(made, sizeof(made), "fetch-%d-%lu", (int)getpid(),
			 __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
		memcpy(name, made, sizeof(made));
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

/* Renames dirfd/name to DIR/blocks/path, making path's folder dir only
 * when it is missing (the first of its blocks): 0, or -1 and errno. */
static int rename_in(struct cache *c, int dirfd, const char *name,
		     const char *dir, const char *path)
{
	if (!renameat(dirfd, name, c->blocks_fd, path))
		return 0;
	if (errno != ENOENT ||
	    (mkdirat(c->blocks_fd, dir, 0700) && errno != EEXIST))
		return -1;
	return renameat(dirfd, name, c->blocks_fd, path);
}

enum cfs_err blockcache_place(struct cache *c, int dirfd, int fd,
			      const char *name, const struct cfs_block_id *id,
			      bool synced, struct cfs_error *err)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1], dir[3], path[68];
	enum cfs_err rc;

	cfs_block_id_to_hex(id, hex);
	snprintf(dir, sizeof(dir), "%.2s", hex);
	block_name(id, path);
	/* fsync (or the caller's syncfs) before rename: after a power cut a
	 * block file is whole or absent, never a renamed but empty file
	 * served as verified. */
	if ((!synced && fsync(fd)) || rename_in(c, dirfd, name, dir, path)) {
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
	return CFS_OK;
}

enum cfs_err blockcache_index(struct cache *c, struct cfs_sql *db,
			      const struct cfs_block_id *id, uint32_t size,
			      struct cfs_error *err)
{
	enum cfs_err rc;

	assert(size <= CFS_BLOCK_SIZE);
	rc = cfs_sql_exec(
		db,
		"INSERT OR REPLACE INTO blocks(id, size, stored, used)"
		" VALUES (?1, ?2, ?3, ?3)",
		err, "bii", id->b, (size_t)CFS_BLOCK_ID_LEN, (int64_t)size,
		(int64_t)time(NULL));

	if (rc == CFS_OK && c->on_store)
		c->on_store(c->on_store_arg, size);
	return rc;
}

enum cfs_err blockcache_adopt(struct cache *c, int dirfd, int fd,
			      const char *name, const struct cfs_block_id *id,
			      uint32_t size, bool synced, struct cfs_error *err)
{
	struct cfs_sql *db;
	enum cfs_err rc;

	/* Neither gc nor a measure (upkeep_measure) may find the file renamed
	 * but not yet indexed: the index may wait for SQLite's write lock. */
	blockcache_hold(c);
	rc = blockcache_place(c, dirfd, fd, name, id, synced, err);
	db = rc ? NULL : cache_db(c, err);
	if (rc == CFS_OK && !db)
		rc = err->code;
	if (db) {
		rc = blockcache_index(c, db, id, size, err);
		cache_db_release(c, db);
	}
	blockcache_unhold(c);
	return rc;
}

void blockcache_on_store(struct cache *c, void (*fn)(void *arg, uint32_t size),
			 void *arg)
{
	c->on_store = fn;
	c->on_store_arg = arg;
}

enum cfs_err blockcache_store(struct cache *c, int fd, const char *name,
			      const struct cfs_block_id *id, uint32_t size,
			      struct cfs_error *err)
{
	return blockcache_adopt(c, c->tmp_fd, fd, name, id, size, false, err);
}

void blockcache_hold(struct cache *c)
{
	pthread_rwlock_rdlock(&c->upkeep);
}

void blockcache_unhold(struct cache *c)
{
	pthread_rwlock_unlock(&c->upkeep);
}

/* Writes the n uses in batch (best effort: a lost use only makes eviction
 * a little unfair). */
static void write_uses(struct cache *c, const struct cache_touch *batch,
		       size_t n)
{
	struct cfs_error err;
	struct cfs_sql *db;
	enum cfs_err rc;

	if (!n || !(db = cache_db(c, &err)))
		return;
	rc = cfs_sql_begin(db, true, &err);
	for (size_t i = 0; rc == CFS_OK && i < n; i++)
		rc = cfs_sql_exec(db,
				  "UPDATE blocks SET used = ?2 WHERE id = ?1",
				  &err, "bi", batch[i].id.b,
				  (size_t)CFS_BLOCK_ID_LEN, batch[i].at);
	cfs_sql_end(db, rc, &err);
	cache_db_release(c, db);
}

/* Empties c->unwritten into batch (touch_lock held): how many. */
static size_t take_unwritten(struct cache *c, struct cache_touch *batch)
{
	size_t n = c->n_unwritten;

	memcpy(batch, c->unwritten, n * sizeof(batch[0]));
	c->n_unwritten = 0;
	return n;
}

void blockcache_touch(struct cache *c, const struct cfs_block_id *id)
{
	/* Readers come back to a block many times a second (a 4 MiB block
	 * in 128 KiB reads, or random reads all over a file): a block's use
	 * is noted once a minute, what was noted is remembered here, one
	 * slot a block by its first bytes.  A commit is an fsync, so the
	 * uses are written in batches, off the path of most reads. */
	struct cache_touch batch[CACHE_TOUCH_BATCH], *slot;
	int64_t now = (int64_t)time(NULL);
	size_t n = 0;
	uint32_t h;

	memcpy(&h, id->b, sizeof(h));
	slot = &c->touched[h % CACHE_TOUCH_SLOTS];
	pthread_mutex_lock(&c->touch_lock);
	if (!cfs_block_id_equal(&slot->id, id) || now - slot->at >= 60) {
		*slot = (struct cache_touch){ *id, now };
		c->unwritten[c->n_unwritten++] = *slot;
		if (c->n_unwritten == CACHE_TOUCH_BATCH)
			n = take_unwritten(c, batch);
	}
	pthread_mutex_unlock(&c->touch_lock);
	write_uses(c, batch, n);
}

void blockcache_write_touches(struct cache *c)
{
	struct cache_touch batch[CACHE_TOUCH_BATCH];
	size_t n;

	pthread_mutex_lock(&c->touch_lock);
	n = take_unwritten(c, batch);
	pthread_mutex_unlock(&c->touch_lock);
	write_uses(c, batch, n);
}

int blockcache_remove(struct cache *c, const struct cfs_block_id *id)
{
	char name[68];

	block_name(id, name);
	return unlinkat(c->blocks_fd, name, 0) ? -errno : 0;
}

bool blockcache_name_id(const char *name, struct cfs_block_id *id)
{
	return strlen(name) == CFS_BLOCK_ID_HEX_LEN &&
	       cfs_block_id_from_hex(name, CFS_BLOCK_ID_HEX_LEN, id);
}
