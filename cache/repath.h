/*
 * The re-addressing of queued operations under a folder the server moved
 * (cache/repath.c), for the files that apply the server's states
 * (cache/rows_settle.c, cache/mirror_apply.c).  Every function runs
 * inside the caller's transaction.
 */
#ifndef CACHE_REPATH_H
#define CACHE_REPATH_H

#include "cache/mirror.h"

/*
 * The path of folder old, which the server moved to e's place, before the
 * move is written: NULL when it is not such a move, or nothing is queued
 * in its namespace to re-address, or old was not placed itself (an
 * orphan, whose move, if any, is in repaths already).
 */
enum cfs_err repath_folder_path(struct cfs_sql *db,
				const struct mirror_entry *old,
				const struct mirror_entry *e, char **path,
				struct cfs_error *err);

/* Folder ino of ns, whose queued operations name it by from, moved
 * (invariant 11); a move already waiting keeps its older from. */
enum cfs_err repath_moved(struct cfs_sql *db, uint64_t ino, int64_t ns,
			  const char *from, struct cfs_error *err);

/* Invariant 11: the queued operations under the folders of repaths go
 * to the folders' paths, for those placed now; orphans wait. */
enum cfs_err repath_resolve(struct cfs_sql *db, struct cfs_error *err);

#endif
