/*
 * Block files of the cache.  A block file exists only whole and verified:
 * it is written to DIR/tmp, hashed as it is written, fsync'ed and renamed
 * into DIR/blocks, so a reader that opens one may serve it without hashing
 * it again, and a crash leaves it whole or absent.  An open block file
 * stays readable even if it is removed meanwhile.
 */
#ifndef CACHE_BLOCKCACHE_H
#define CACHE_BLOCKCACHE_H

#include "cache/cache.h"
#include "cloudfs/block.h"

/* Opens block id for reading: a descriptor, or -ENOENT when it is not
 * cached (or another negative errno). */
int blockcache_open(struct cache *c, const struct cfs_block_id *id);

/* A new temporary file for a block being fetched, its name in name. */
int blockcache_tmp_create(struct cache *c, char name[32]);

/*
 * Makes the complete, verified temporary file (fd, name) the cached copy
 * of block id, and indexes it.  Consumes fd and name either way.
 */
enum cfs_err blockcache_store(struct cache *c, int fd, const char *name,
			      const struct cfs_block_id *id, uint32_t size,
			      struct cfs_error *err);

/*
 * Makes the file name of directory dirfd (complete, fd open on it) the
 * cached copy of block id, whose hash the caller computed from its bytes:
 * fsync'ed, renamed into place (or dropped when the block is cached
 * already), indexed.  synced: the caller made the file's bytes durable
 * already (a syncfs(2) of the cache's file system since they were last
 * written, for many files at once), so no fsync of its own.  Consumes fd
 * and the file either way.
 */
enum cfs_err blockcache_adopt(struct cache *c, int dirfd, int fd,
			      const char *name, const struct cfs_block_id *id,
			      uint32_t size, bool synced,
			      struct cfs_error *err);

/*
 * blockcache_adopt() in two steps, for a caller that indexes many blocks
 * in one transaction of its own, holding the cache (blockcache_hold())
 * from the first step to that transaction's end: blockcache_place() makes
 * the file the cached copy of block id (fsync'ed unless synced, renamed
 * into place; consumes fd and the file either way), blockcache_index()
 * records it in the index through db.
 */
enum cfs_err blockcache_place(struct cache *c, int dirfd, int fd,
			      const char *name, const struct cfs_block_id *id,
			      bool synced, struct cfs_error *err);
enum cfs_err blockcache_index(struct cache *c, struct cfs_sql *db,
			      const struct cfs_block_id *id, uint32_t size,
			      struct cfs_error *err);

/* fn(arg, size) is told of each block indexed from now on, by any path
 * (written, fetched, warmed), with no lock held; set it before the
 * threads that store blocks start. */
void blockcache_on_store(struct cache *c, void (*fn)(void *arg, uint32_t size),
			 void *arg);

/* Between the first block adopted for a commit and the commit's entry in
 * the index, the committer holds the cache: eviction waits. */
void blockcache_hold(struct cache *c);
void blockcache_unhold(struct cache *c);

/* Removes block id's file (not its index row): 0 or a negative errno. */
int blockcache_remove(struct cache *c, const struct cfs_block_id *id);

/* The block id a file of DIR/blocks/XX is named for, if it is one. */
bool blockcache_name_id(const char *name, struct cfs_block_id *id);

/*
 * Notes that block id was read now (least recently used goes first).  The
 * index learns of it in batches: before eviction, at cache_close, or with
 * the next CACHE_TOUCH_BATCH blocks read.
 */
void blockcache_touch(struct cache *c, const struct cfs_block_id *id);

/* Writes the uses blockcache_touch noted to the index, in one transaction. */
void blockcache_write_touches(struct cache *c);

/* Drops a temporary file. */
void blockcache_tmp_discard(struct cache *c, int fd, const char *name);

#endif
