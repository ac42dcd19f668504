/*
 * Small sets of inode numbers, shared by the files of the mirror that walk
 * a subtree (cache/rows_settle.c, rows_share.c, repath.c, mirror_apply.c).
 * The caller frees v.
 */
#ifndef CACHE_INO_SET_H
#define CACHE_INO_SET_H

#include "cache/mirror.h"

/* A small set of inode numbers, for the rare subtree walks. */
struct ino_set {
	uint64_t *v;
	size_t n, cap;
};

bool ino_set_has(const struct ino_set *set, uint64_t ino);
enum cfs_err ino_set_add(struct ino_set *set, uint64_t ino,
			 struct cfs_error *err);

/* The inodes selected by st (first column) into set. */
enum cfs_err ino_set_fill(struct cfs_sql *db, sqlite3_stmt *st,
			  struct ino_set *set, struct cfs_error *err);

#endif
