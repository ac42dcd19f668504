/*
 * Upkeep of the block files: eviction, verification and garbage
 * collection.  Each takes the cache's upkeep lock exclusively, so a file
 * being committed keeps its new blocks (cache/cache.h); a reader that has
 * a block file open keeps reading it even if it is removed meanwhile
 * (cache/blockcache.h).  Never removed by eviction: blocks of queued
 * commits, of entries with local changes, and of pinned files.
 */
#ifndef CACHE_UPKEEP_H
#define CACHE_UPKEEP_H

#include <stdint.h>

#include <jansson.h>

#include "cache/cache.h"
#include "cloudfs/block.h"

struct upkeep_tally {
	uint64_t blocks, bytes; /* looked at (verify), dropped (the others) */
	uint64_t bad;		/* verify: corrupt or unreadable, removed */
	uint64_t kept;		/* evict: skipped as pinned or pending */
	uint64_t rows;		/* gc: index rows without a file, removed */
};

/* Told of each block verify finds bad (what: why), or gc removes. */
typedef void (*upkeep_report_fn)(void *arg, const struct cfs_block_id *id,
				 const char *what);

/*
 * Drops clean blocks, least recently used first, until the blocks left
 * take at most keep_bytes; with under (an inode, 0: all), only blocks of
 * the files at or below it, all of them.
 */
enum cfs_err upkeep_evict(struct cache *c, uint64_t under, uint64_t keep_bytes,
			  struct upkeep_tally *t, struct cfs_error *err);

/*
 * Drops the clean blocks no file, shadow or queued operation lists any
 * more (deleted, overwritten, replaced on the server): nobody reads them
 * again but through a file that lists them, so they need not wait for
 * their turn in eviction.
 */
enum cfs_err upkeep_evict_unlisted(struct cache *c, struct upkeep_tally *t,
				   struct cfs_error *err);

/* The most blocks upkeep_streamed_keep() remembers at once. */
#define CACHE_STREAMED_MAX 4096

/*
 * Keeps block id from the unlisted sweep until unix second until: it was
 * fetched ahead for a file of a pending list (streaming sync), which no
 * entry lists before its journal row lands.  Eviction to stay within the
 * limit may still drop it, as any clean block; past until, it is an
 * ordinary unlisted block.  Beyond CACHE_STREAMED_MAX live ones, the
 * soonest to end is forgotten.
 */
void upkeep_streamed_keep(struct cache *c, const struct cfs_block_id *id,
			  int64_t until);

/* Forgets the blocks upkeep_streamed_keep() kept whose time has passed;
 * whether there were any (the unlisted sweep may drop them now). */
bool upkeep_streamed_expire(struct cache *c);

/* The bytes of the block files eviction must keep (queued, of local
 * changes, pinned); db is one of the cache's connections. */
enum cfs_err upkeep_kept_bytes(struct cfs_sql *db, uint64_t *bytes,
			       struct cfs_error *err);

/*
 * What the cache holds: its indexed block files (how many, their bytes)
 * and the disk bytes of the staging files (DIR/dirty: files being
 * written), measured together under the upkeep lock: no block is then
 * between the staging folder and the index (blockcache_adopt holds the
 * cache), so none is counted twice or missed.  Waits for a file being
 * committed.
 */
struct upkeep_size {
	uint64_t blocks, bytes, staged;
};
enum cfs_err upkeep_measure(struct cache *c, struct upkeep_size *out,
			    struct cfs_error *err);

/* Re-hashes every cached block; a bad one is removed, never served. */
enum cfs_err upkeep_verify(struct cache *c, upkeep_report_fn fn, void *arg,
			   struct upkeep_tally *t, struct cfs_error *err);

/* Removes block files no index row lists, rows whose file is gone, and
 * pins and conflict notes of entries that are gone. */
enum cfs_err upkeep_gc(struct cache *c, upkeep_report_fn fn, void *arg,
		       struct upkeep_tally *t, struct cfs_error *err);

/*
 * Runs cmd, "evict" (below inode under, 0: all; down to keep bytes),
 * "verify" or "gc", and answers what cloudfs(1) prints with --json: the
 * tally and "problems", the blocks found bad or removed.  NULL with err
 * set when it failed, or when cmd is none of the three (CFS_ERR_BAD_FIELD,
 * nothing run).
 */
json_t *upkeep_json(struct cache *c, const char *cmd, uint64_t under,
		    uint64_t keep, struct cfs_error *err);

#endif
