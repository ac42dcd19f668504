/*
 * What the cache holds, as people ask it: of one entry (how much of it is
 * local, whether it is pinned, synced or a conflicted copy) and of the
 * whole cache directory.  Read-only but for pins.  While a mount is live
 * it answers these on its control socket (fs/control.h), from its own
 * connections; cloudfs(1) opens cache.db itself only when none is.
 */
#ifndef CACHE_INSPECT_H
#define CACHE_INSPECT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "cache/cache.h"
#include "cache/mirror.h"

struct inspect_entry_state {
	uint64_t bytes;	       /* a file's size */
	uint64_t cached_bytes; /* of its blocks, those in the cache */
	uint64_t blocks, cached_blocks;
	bool pinned;	/* it, or a folder it is in, is pinned */
	bool pending;	/* local changes the server has not confirmed */
	bool conflict;	/* a conflicted copy this mount made */
	bool uploading; /* the caller's to set: being sent now */
};

/* The state of entry e. */
enum cfs_err inspect_entry_state(struct cfs_sql *db,
				 const struct mirror_entry *e,
				 struct inspect_entry_state *s,
				 struct cfs_error *err);

/* "uploading", "pending", "conflict" or "synced". */
const char *inspect_sync_word(const struct inspect_entry_state *s);

/* For files: "pinned", "cached" (every block local), "partial" or
 * "online-only"; for other entries "pinned" or "". */
const char *inspect_local_word(const struct inspect_entry_state *s,
			       enum cfs_kind kind);

struct inspect_usage {
	uint64_t bytes, blocks;	      /* block files indexed */
	uint64_t kept_bytes;	      /* of them, eviction must keep */
	uint64_t limit;		      /* 0: none recorded */
	uint64_t files, files_cached; /* files, and those wholly local */
	uint64_t files_partial;	      /* some blocks local */
	uint64_t pinned_bytes;	      /* of pinned files */
	uint64_t dirty_bytes;	      /* in DIR/dirty: being written */
	uint64_t pending_ops;	      /* queued for the server */
	uint64_t pending_bytes;	      /* of the queued files' blocks */
	uint64_t conflicts;	      /* conflicted copies still there */
};

/* The totals of cache c (db is one of its connections) but the files'. */
enum cfs_err inspect_usage(struct cache *c, struct cfs_sql *db,
			   struct inspect_usage *u, struct cfs_error *err);

/* Fills in u's files, files_cached, files_partial and pinned_bytes: a
 * look at every file, for cloudfs cache stat, not for a status poll. */
enum cfs_err inspect_file_usage(struct cfs_sql *db, struct inspect_usage *u,
				struct cfs_error *err);

/* Pins entry ino (a file or a whole folder), or unpins it. */
enum cfs_err inspect_pin(struct cfs_sql *db, uint64_t ino, bool pin,
			 struct cfs_error *err);

/*
 * What cloudfs cache stat prints with --json of cache c: bytes,
 * kept_bytes, limit,
 * blocks, files, files_cached, files_partial, pinned_bytes, dirty_bytes,
 * pending_ops, pending_bytes, conflicts.  NULL with err set when it
 * failed.  The mount answers it on its control socket; cloudfs reads it
 * itself only when no mount is live.
 */
json_t *inspect_stat_json(struct cache *c, struct cfs_error *err);

/* The inode of path ("" or NULL: the root) in the mirror, by its names;
 * CFS_ERR_NOT_FOUND ("no 'PATH' in the cache's tree") when there is none. */
enum cfs_err inspect_path_ino(struct cfs_sql *db, const char *path,
			      uint64_t *ino, struct cfs_error *err);

/*
 * What cloudfs cache ls prints with --json of entry ino: {"entries": [...]}
 * with the file itself, or a folder's entries, each with name, kind,
 * bytes, cached_bytes, blocks, cached_blocks, pinned, state and local.
 * uploading: the JSON array of the inodes a live mount is sending (NULL:
 * none).  NULL with err set when it failed.
 */
json_t *inspect_ls_json(struct cfs_sql *db, uint64_t ino, json_t *uploading,
			struct cfs_error *err);

/* Records the cache's size limit (0: none) where inspection finds it. */
enum cfs_err inspect_set_limit(struct cfs_sql *db, uint64_t limit,
			       struct cfs_error *err);

#endif
