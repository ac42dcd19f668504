/*
 * The cache directory of a mount: the mirror of its namespaces and the
 * verified blocks it has fetched.
 *
 *	DIR/lock           held (flock) by the mount using DIR; holds its pid
 *	DIR/cache.db       SQLite (WAL): the mirror and the block index
 *	DIR/blocks/XX/ID   block files, each whole and verified
 *	DIR/tmp/           fetches in flight, emptied at open
 *	DIR/dirty/         blocks of files being written, emptied at open
 *	                   (what a crashed mount never committed)
 *	DIR/refused/       content the server refused for good, kept for
 *	                   the user (cache/refused.h)
 *
 * DIR is created 0700, must belong to the user, and is opened without
 * following symlinks; block files are reached relative to it.
 */
#ifndef CACHE_CACHE_H
#define CACHE_CACHE_H

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cloudfs/block.h"
#include "cloudfs/error.h"
#include "cloudfs/sql.h"

#define CACHE_TOUCH_SLOTS 1024
#define CACHE_TOUCH_BATCH 64

struct cache {
	int dirfd;
	int blocks_fd;
	int tmp_fd;
	int dirty_fd;
	int lock_fd;
	char path[PATH_MAX];
	struct cfs_sql_pool db;
	/* Read side: blocks adopted that no entry or queued operation lists
	 * yet (a file being committed).  Write side: eviction and gc, which
	 * must not drop them (cache/blockcache.h). */
	pthread_rwlock_t upkeep;
	bool mounted; /* CACHE_LOOK: a mount had it when it was opened */
	/* The last use noted of recently read blocks, and the uses not yet
	 * written to the index (blockcache_touch), under touch_lock. */
	pthread_mutex_t touch_lock;
	struct cache_touch {
		struct cfs_block_id id;
		int64_t at;
	} touched[CACHE_TOUCH_SLOTS], unwritten[CACHE_TOUCH_BATCH];
	size_t n_unwritten;
	/* Told of each block indexed (blockcache_on_store). */
	void (*on_store)(void *arg, uint32_t size);
	void *on_store_arg;
	/* Blocks fetched ahead for another device's file whose journal row
	 * has not come yet (streaming sync), until when (unix seconds) the
	 * sweep of unlisted blocks keeps them; under streamed_lock
	 * (upkeep_streamed_keep, cache/upkeep.h), taken after any other
	 * lock and held briefly. */
	pthread_mutex_t streamed_lock;
	struct cache_streamed {
		struct cfs_block_id id;
		int64_t until;
	} * streamed;
	size_t n_streamed;
};

enum cache_use {
	CACHE_MOUNT, /* a mount's: created if missing, locked, and what the
		      * last mount left in flight dropped */
	CACHE_LOOK,  /* beside a live mount, or none: never locked, and
		      * cache.db only read (cfs_sql_open_reader()) */
	CACHE_TEND,  /* upkeep with no mount: locked, nothing dropped */
};

/*
 * Opens (creating) the cache directory dir and locks it for this process:
 * a second mount on the same directory gets CFS_ERR_EXISTS.
 */
enum cfs_err cache_open(const char *dir, struct cache **out,
			struct cfs_error *err);

/* Opens the existing cache directory dir for use (CACHE_LOOK and
 * CACHE_TEND: CFS_ERR_NOT_FOUND when it is not one; CACHE_TEND:
 * CFS_ERR_EXISTS while a mount has it). */
enum cfs_err cache_open_as(const char *dir, enum cache_use use,
			   struct cache **out, struct cfs_error *err);

void cache_close(struct cache *c);

/* Whether a process (a mount, or cloudfs tending the cache) holds the lock
 * of cache directory dir now.  Opens nothing but DIR/lock: no database. */
bool cache_in_use(const char *dir);

#define CACHE_CLIENT_ID_SIZE 33 /* 32 hex digits and a NUL */

/*
 * Ties the cache to one server and root namespace the first time, and
 * refuses (CFS_ERR_CONFLICT) a cache that holds another one's mirror.
 * Gives the cache's client id: its commits carry it, with each queued
 * operation's seq, so that the server answers one it applied before as
 * it did then (cloudfs-protocol(7)).  token_id (a hash of the token, never
 * the token; NULL: keep the one known) is remembered for
 * cache_offline_root.
 */
#define CACHE_TOKEN_ID_SIZE 65 /* hex SHA-256 and its NUL */
enum cfs_err cache_bind(struct cache *c, const char *url, int64_t root_ns,
			const char *token_id, char client[CACHE_CLIENT_ID_SIZE],
			struct cfs_error *err);

/*
 * For a mount that starts while the server cannot be reached: the root
 * namespace whose mirror the cache holds for url, when a mount with the
 * token of token_id bound it and listed that namespace whole.
 * CFS_ERR_NOT_FOUND otherwise (err says why).
 */
enum cfs_err cache_offline_root(struct cache *c, const char *url,
				const char *token_id, int64_t *root_ns,
				struct cfs_error *err);

/*
 * A directory stream of its own over the folder dirfd names (one of the
 * cache's subfolders), for one walk; NULL with errno set.  Not dup(): a
 * duplicate shares the open folder's offset, so every walk after the first
 * found the folder empty, and two threads walking at once skipped each
 * other's entries.
 */
DIR *cache_opendir(int dirfd);

/* A connection to cache.db for the calling thread. */
struct cfs_sql *cache_db(struct cache *c, struct cfs_error *err);
void cache_db_release(struct cache *c, struct cfs_sql *db);

/* cache.db's write-ahead log is checkpointed by fn's thread, told by
 * fn(arg), with cache_checkpoint(); fn NULL: by the commits themselves
 * (cfs_sql_pool_checkpoint_by()). */
void cache_checkpoint_by(struct cache *c, void (*fn)(void *arg), void *arg);
enum cfs_err cache_checkpoint(struct cache *c, struct cfs_error *err);

/*
 * Makes every change committed to cache.db so far durable (cfs_sql_sync).
 * Commits are not fsync'ed one by one: the mount calls this where it
 * promises durability (fsync of a file or folder, a settled file's commit,
 * before the uploader sends the queue).
 */
enum cfs_err cache_sync(struct cache *c, struct cfs_error *err);

#endif
