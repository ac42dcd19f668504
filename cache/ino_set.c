/*
 * Small sets of inode numbers (cache/ino_set.h), for the rare walks of a
 * subtree that the mirror's files make.
 */
#include <stdlib.h>

#include "cache/ino_set.h"

bool ino_set_has(const struct ino_set *set, uint64_t ino)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->v[i] == ino)
			return true;
	return false;
}

enum cfs_err ino_set_add(struct ino_set *set, uint64_t ino,
			 struct cfs_error *err)
{
	if (set->n == set->cap) {
		void *p = realloc(set->v, (set->cap = 2 * set->cap + 16) *
						  sizeof(set->v[0]));

		if (!p)
			return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		set->v = p;
	}
	set->v[set->n++] = ino;
	return CFS_OK;
}

enum cfs_err ino_set_fill(struct cfs_sql *db, sqlite3_stmt *st,
			  struct ino_set *set, struct cfs_error *err)
{
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = true;

	while (rc == CFS_OK &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row)
		rc = ino_set_add(set, (uint64_t)sqlite3_column_int64(st, 0),
				 err);
	return rc;
}
