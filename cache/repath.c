/*
 * Queued operations name entries by path: a folder the server moved takes
 * those under it to its new path, at once or, when its new folder is yet
 * to be listed, once the path is known (invariant 11 of cache/mirror.c,
 * table repaths).
 */
#include <stdlib.h>
#include <string.h>

#include "cache/ino_set.h"
#include "cache/repath.h"
#include "cache/rows.h"

/*
 * Queued operations name entries by path as the server will have them
 * when they arrive; a folder the server moved takes them along (its
 * entries' paths from old_path on are now new_path's).
 */
static enum cfs_err repath_queued(struct cfs_sql *db, int64_t ns,
				  const char *old_path, const char *new_path,
				  struct cfs_error *err)
{
	static const char *const sql[] = {
		"UPDATE ops SET path = ?3 || substr(path, length(?2) + 1)"
		" WHERE ns = ?1 AND (path = ?2"
		" OR substr(path, 1, length(?2) + 1) = ?2 || '/')",
		"UPDATE ops SET to_path = ?3 || substr(to_path, length(?2) + 1)"
		" WHERE ns = ?1 AND (to_path = ?2"
		" OR substr(to_path, 1, length(?2) + 1) = ?2 || '/')",
	};
	enum cfs_err rc = CFS_OK;

	for (size_t i = 0; rc == CFS_OK && i < 2; i++)
		rc = cfs_sql_exec(db, sql[i], err, "itt", ns, old_path,
				  new_path);
	return rc;
}

enum cfs_err repath_folder_path(struct cfs_sql *db,
				const struct mirror_entry *old,
				const struct mirror_entry *e, char **path,
				struct cfs_error *err)
{
	int64_t queued = 0;
	bool found;
	enum cfs_err rc;

	*path = NULL;
	if (old->kind != CFS_KIND_DIR || e->kind != CFS_KIND_DIR ||
	    (old->parent == e->parent && strcmp(old->name, e->name) == 0))
		return CFS_OK;
	rc = cfs_sql_int64(db,
			   cfs_sql_stmt(db,
					"SELECT EXISTS (SELECT 1 FROM ops"
					" WHERE ns = ?1)",
					err, "i", old->ns),
			   &queued, &found, err);
	if (rc || !queued)
		return rc;
	rc = rows_ns_path(db, old, path, err);
	return rc == CFS_ERR_NOT_FOUND ? CFS_OK : rc;
}

/* The queued operations of ns that name folder ino by its path before
 * a move it waited for (invariant 11) now name it by to. */
static enum cfs_err repath_waited(struct cfs_sql *db, uint64_t ino, int64_t ns,
				  const char *to, struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(db,
					"SELECT from_path FROM repaths"
					" WHERE ino = ?1 AND ns = ?2",
					err, "ii", (int64_t)ino, ns);
	enum cfs_err rc = st ? CFS_OK : err->code;
	char *from = NULL;
	bool row = false;

	if (rc == CFS_OK)
		rc = cfs_sql_step(db, st, &row, err);
	if (rc == CFS_OK && row &&
	    !(from = strdup((const char *)sqlite3_column_text(st, 0))))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	if (st)
		sqlite3_reset(st);
	/* Not of ns: a share moved the folder, and its operations with it
	 * (rows_follow_share). */
	if (rc == CFS_OK && from)
		rc = repath_queued(db, ns, from, to, err);
	free(from);
	return rc;
}

enum cfs_err repath_resolve(struct cfs_sql *db, struct cfs_error *err)
{
	struct ino_set all = { 0 };
	enum cfs_err rc = ino_set_fill(
		db, cfs_sql_stmt(db, "SELECT ino FROM repaths", err, ""), &all,
		err);

	for (size_t i = 0; rc == CFS_OK && i < all.n; i++) {
		struct mirror_entry e;
		char *to = NULL;

		rc = rows_by_ino(db, all.v[i], &e, err);
		if (rc == CFS_OK) {
			rc = rows_ns_path(db, &e, &to, err);
			if (rc == CFS_ERR_NOT_FOUND) {
				mirror_entry_release(&e);
				rc = CFS_OK; /* still an orphan */
				continue;
			}
			if (rc == CFS_OK)
				rc = repath_waited(db, e.ino, e.ns, to, err);
			mirror_entry_release(&e);
			free(to);
		} else if (rc == CFS_ERR_NOT_FOUND) {
			rc = CFS_OK; /* gone: nothing left to re-address */
		}
		if (rc == CFS_OK)
			rc = cfs_sql_exec(db,
					  "DELETE FROM repaths WHERE ino = ?1",
					  err, "i", (int64_t)all.v[i]);
	}
	free(all.v);
	return rc;
}

enum cfs_err repath_moved(struct cfs_sql *db, uint64_t ino, int64_t ns,
			  const char *from, struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_exec(db,
				       "INSERT OR IGNORE INTO repaths(ino, ns,"
				       " from_path) VALUES (?1, ?2, ?3)",
				       err, "iit", (int64_t)ino, ns, from);

	return rc ? rc : repath_resolve(db, err);
}
