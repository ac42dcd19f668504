/*
 * A folder shared since the mount listed it (invariant 10 of
 * cache/mirror.c): its subtree and the operations queued under it move
 * into the shared namespace; a queued move across the folder's edge
 * becomes a create and a delete.
 */
#include <stdlib.h>
#include <string.h>

#include "cache/ino_set.h"
#include "cache/pending.h"
#include "cache/rows.h"

/* Moves kept entry ino of the subtree below node top into namespace ns,
 * whose root top becomes (invariant 10). */
static enum cfs_err rehome(struct cfs_sql *db, uint64_t ino, int64_t top,
			   int64_t ns, struct cfs_error *err)
{
	enum cfs_err rc;

	rc = cfs_sql_exec(db,
			  "UPDATE entries SET ns = ?2, jid = 0,"
			  " parent = CASE parent WHEN ?3 THEN 0"
			  " ELSE parent END WHERE ino = ?1",
			  err, "iii", (int64_t)ino, ns, top);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE shadow SET jid = 0,"
				  " parent = CASE parent WHEN ?2 THEN 0"
				  " ELSE parent END WHERE ino = ?1",
				  err, "ii", (int64_t)ino, top);
	return rc;
}

/*
 * Invariant 9: the queued operations of namespace ns under folder path
 * (both paths, for a move) now go to namespace to, relative to its root.
 * A move with one side outside the folder stays: it crosses namespaces
 * now, and the server refuses it.
 */
static enum cfs_err requeue_into(struct cfs_sql *db, int64_t ns,
				 const char *path, int64_t to,
				 struct cfs_error *err)
{
	return cfs_sql_exec(
		db,
		"UPDATE ops SET ns = ?3, path = substr(path, length(?2) + 2),"
		" to_path = substr(to_path, length(?2) + 2)"
		" WHERE ns = ?1 AND substr(path, 1, length(?2) + 1) = ?2 || '/'"
		" AND (to_path IS NULL"
		" OR substr(to_path, 1, length(?2) + 1) = ?2 || '/')",
		err, "iti", ns, path, to);
}

/* The one queued operation of entry ino in ns that crosses the edge of
 * folder path (one side under it, the other not): *seq, 0 when there is
 * none, or more than one (then nothing is split: left as it was). */
static enum cfs_err crossing_op(struct cfs_sql *db, uint64_t ino, int64_t ns,
				const char *path, int64_t *seq,
				struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db,
		"SELECT seq, type FROM ops WHERE ino = ?1 AND ns = ?2"
		" AND to_path IS NOT NULL"
		" AND (substr(path, 1, length(?3) + 1) = ?3 || '/')"
		" != (substr(to_path, 1, length(?3) + 1) = ?3 || '/')",
		err, "iit", (int64_t)ino, ns, path);
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = false;
	int n = 0;

	*seq = 0;
	while (rc == CFS_OK &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row) {
		n++;
		if (sqlite3_column_int(st, 1) == QUEUE_MOVE)
			*seq = sqlite3_column_int64(st, 0);
	}
	if (st)
		sqlite3_reset(st);
	if (n != 1)
		*seq = 0;
	return rc;
}

/* The ord of the first queued operation after ord (ord + 1 when none). */
static enum cfs_err ord_after(struct cfs_sql *db, double ord, double *next,
			      struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db, "SELECT COALESCE(MIN(ord), ?1 + 2) FROM ops WHERE ord > ?1",
		err, "d", ord);
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = false;

	if (rc == CFS_OK)
		rc = cfs_sql_step(db, st, &row, err);
	*next = rc == CFS_OK && row ? sqlite3_column_double(st, 0) : ord + 2;
	if (st)
		sqlite3_reset(st);
	return rc;
}

/*
 * Invariant 10, a move into the folder or out of it: leaf entry ino (a
 * file, a symlink) was moved into folder path (node top) of ns locally,
 * or out of it, and that move, still queued, would cross between ns and
 * shared namespace to, which no move can do (the server refuses it as
 * cross_namespace).  The user moved the entry: it must end there, with
 * its name, and never as a conflicted copy of its own change.  So the
 * move becomes what the server can do: the entry, as it was when moved,
 * created at its place (in to for a move in, in ns for a move out; the
 * server holds its blocks already), where it goes from now on as a new
 * entry; then, if the server has the original, its delete where the
 * server has it now (in ns for a move in, in to for a move out), based on
 * the version this mount last saw, as a removed entry of its own.
 * Another device's edit of the original since is kept: the delete is
 * then refused, and the original shows again.  All in the listing's
 * transaction: a crash leaves the queue as it was or as it is now.  A
 * folder moved in or out is left as it was (refused, it stays where the
 * server has it).
 */
static enum cfs_err split_crossing_move(struct cfs_sql *db, uint64_t ino,
					int64_t ns, const char *path,
					int64_t top, int64_t to,
					struct cfs_error *err)
{
	struct mirror_entry x, s = { 0 }, g = { 0 };
	struct queued_op del = { .type = QUEUE_DELETE };
	int64_t seq = 0, leaf_seq = 0, others = 0, k = 0, made = 0;
	uint64_t g_ino = 0;
	double ord = 0, next = 0;
	bool found = false, on_server, out = false;
	char *first = NULL, *to_path = NULL;
	sqlite3_stmt *st;
	enum cfs_err rc = rows_by_ino(db, ino, &x, err);

	if (rc)
		return rc;
	if (x.kind != CFS_KIND_FILE && x.kind != CFS_KIND_SYMLINK &&
	    !cfs_kind_is_special(x.kind)) {
		mirror_entry_release(&x);
		return CFS_OK;
	}
	rc = crossing_op(db, ino, ns, path, &seq, err);
	if (rc || !seq) {
		mirror_entry_release(&x);
		return rc;
	}
	/* Its target, relative to the namespace it lands in. */
	st = cfs_sql_stmt(
		db,
		"SELECT ord, substr(path, 1, length(?2) + 1) = ?2 || '/',"
		" CASE WHEN substr(path, 1, length(?2) + 1) = ?2 || '/'"
		" THEN to_path ELSE substr(to_path, length(?2) + 2) END"
		" FROM ops WHERE seq = ?1",
		err, "it", seq, path);
	rc = st ? CFS_OK : err->code;
	if (rc == CFS_OK)
		rc = cfs_sql_step(db, st, &found, err);
	if (rc == CFS_OK && found) {
		ord = sqlite3_column_double(st, 0);
		out = sqlite3_column_int(st, 1) != 0;
		to_path = strdup((const char *)sqlite3_column_text(st, 2));
		if (!to_path)
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	if (st)
		sqlite3_reset(st);
	if (rc || !to_path) {
		mirror_entry_release(&x);
		return rc;
	}
	/* Only leaf changes and moves before it (a link waits its turn). */
	rc = cfs_sql_int64(
		db,
		cfs_sql_stmt(db,
			     "SELECT COUNT(*) FROM ops WHERE ino = ?1"
			     " AND ns = ?2 AND ord < ?3"
			     " AND type NOT IN (?4, ?5, ?6, ?7)",
			     err, "iidiiii", (int64_t)ino, ns, ord,
			     (int64_t)QUEUE_FILE, (int64_t)QUEUE_SYMLINK,
			     (int64_t)QUEUE_SPECIAL, (int64_t)QUEUE_MOVE),
		&others, &found, err);
	if (rc == CFS_OK && others == 0)
		rc = cfs_sql_int64(
			db,
			cfs_sql_stmt(
				db,
				"SELECT seq FROM ops WHERE ino = ?1"
				" AND ns = ?2 AND ord < ?3"
				" AND type != ?4 ORDER BY ord DESC LIMIT 1",
				err, "iidi", (int64_t)ino, ns, ord,
				(int64_t)QUEUE_MOVE),
			&leaf_seq, &found, err);
	if (rc == CFS_OK && others == 0) {
		st = cfs_sql_stmt(db,
				  "SELECT path FROM ops WHERE ino = ?1"
				  " AND ns = ?2 ORDER BY ord LIMIT 1",
				  err, "ii", (int64_t)ino, ns);
		rc = st ? CFS_OK : err->code;
		if (rc == CFS_OK)
			rc = cfs_sql_step(db, st, &found, err);
		if (rc == CFS_OK && found &&
		    !(first = strdup((const char *)sqlite3_column_text(st, 0))))
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		if (st)
			sqlite3_reset(st);
	}
	if (rc == CFS_OK && others == 0)
		rc = cfs_sql_int64(
			db,
			cfs_sql_stmt(db,
				     "SELECT COUNT(*) FROM ops WHERE ino = ?1"
				     " AND ns = ?2 AND ord <= ?3",
				     err, "iid", (int64_t)ino, ns, ord),
			&k, &found, err);
	if (rc || others || !first)
		goto out;
	/* Moved out, the original is in to now, at first below the folder. */
	if (out && (strncmp(first, path, strlen(path)) != 0 ||
		    first[strlen(path)] != '/'))
		goto out;
	if (out)
		memmove(first, first + strlen(path) + 1,
			strlen(first + strlen(path) + 1) + 1);
	/* The server's state of the original, which its delete is based on. */
	on_server = x.node > 0;
	if (on_server) {
		rc = rows_shadow_get(db, ino, &s, err);
		if (rc == CFS_ERR_NOT_FOUND) {
			rc = CFS_OK;
			on_server = false;
		}
		on_server = on_server && s.kind != CFS_KIND_DELETED;
	}
	/* The create, in the move's turn, as the entry was then. */
	if (rc == CFS_OK && leaf_seq)
		rc = cfs_sql_exec(
			db,
			"INSERT INTO ops(ord, ino, ns, type, kind, path, size,"
			" mtime_ns, mode, blocks, target, atime_ns, ctime_ns)"
			" SELECT ?2, ino, ?3, type, kind, ?4, size, mtime_ns,"
			" mode, blocks, target, atime_ns, ctime_ns FROM ops"
			" WHERE seq = ?1",
			err, "idit", leaf_seq, ord, out ? ns : to, to_path);
	if (rc == CFS_OK && !leaf_seq) {
		struct queued_op c = {
			.ino = ino,
			.ns = out ? ns : to,
			.type = s.kind == CFS_KIND_SYMLINK    ? QUEUE_SYMLINK
				: cfs_kind_is_special(s.kind) ? QUEUE_SPECIAL
							      : QUEUE_FILE,
			.kind = s.kind,
			.path = to_path,
			.size = s.size,
			.mtime_ns = s.mtime_ns,
			.mode = s.mode,
			.blocks = s.blocks,
			.target = s.target,
			.atime_ns = x.atime_ns,
			.ctime_ns = x.ctime_ns,
		};
		/* Nothing queued changed it: the server's state it has. */
		if (!on_server)
			goto out;
		rc = pending_enqueue(db, &c, ord, err);
	}
	/* What it replaces goes; not itself, in ns for a move out. */
	made = sqlite3_last_insert_rowid(db->db);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "DELETE FROM ops WHERE ino = ?1 AND ns = ?2"
				  " AND ord <= ?3 AND seq != ?4",
				  err, "iidi", (int64_t)ino, ns, ord, made);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET pending = pending - ?2"
				  " WHERE ino = ?1",
				  err, "ii", (int64_t)ino, k - 1);
	/* The entry is new in the shared namespace: the server has nothing
	 * of it there (refused, it goes; its content is kept). */
	if (rc == CFS_OK)
		rc = rows_localize(db, ino, err);
	if (rc == CFS_OK) {
		struct mirror_entry gone = x;

		gone.kind = CFS_KIND_DELETED;
		gone.jid = 0;
		gone.blocks = (struct cfs_blocklist){ 0 };
		gone.target = NULL;
		rc = rows_shadow_put(db, ino, &gone, err);
	}
	if (rc || !on_server)
		goto out;
	/* The original's delete, right after, on an entry of its own that
	 * holds the original's node and the server's state of it. */
	g = s;
	g.ino = 0;
	g.ns = out ? to : ns;
	g.node = x.node;
	g.jid = x.jid;
	g.pending = 0;
	/* In to, the folder is the root, and ns's JIDs mean nothing: the
	 * first listing of to gives the original's (invariant 10). */
	if (out) {
		g.parent = g.parent == top ? 0 : g.parent;
		g.jid = 0;
	}
	g.atime_ns = x.atime_ns;
	g.ctime_ns = x.ctime_ns;
	rc = ord_after(db, ord, &next, err);
	if (rc == CFS_OK)
		rc = rows_write(db, &g_ino, &g, err);
	g.ino = g_ino;
	del.ino = g_ino;
	del.ns = g.ns;
	del.kind = g.kind;
	del.path = first;
	if (rc == CFS_OK)
		rc = pending_enqueue(db, &del, (ord + next) / 2, err);
	if (rc == CFS_OK)
		rc = pending_mark(db, &g, 1, err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET kind = 0 WHERE ino = ?1",
				  err, "i", (int64_t)g_ino);
out:
	mirror_entry_release(&s);
	mirror_entry_release(&x);
	free(first);
	free(to_path);
	return rc;
}

enum cfs_err rows_follow_share(struct cfs_sql *db,
			       const struct mirror_entry *old,
			       const struct mirror_entry *e,
			       struct cfs_error *err)
{
	struct ino_set all = { 0 }, moved_out = { 0 };
	char *path = NULL;
	enum cfs_err rc = rows_ns_path(db, old, &path, err);

	if (rc == CFS_OK)
		rc = ino_set_fill(db,
				  cfs_sql_stmt(db,
					       ROWS_SUBTREE_CTE
					       "SELECT e.ino FROM entries e"
					       " JOIN sub ON e.ns = ?1"
					       " AND e.node = sub.node",
					       err, "ii", old->ns, old->node),
				  &all, err);
	for (size_t i = 0; rc == CFS_OK && i < all.n; i++)
		rc = split_crossing_move(db, all.v[i], old->ns, path, old->node,
					 e->mount_ns, err);
	for (size_t i = 0; rc == CFS_OK && i < all.n; i++)
		rc = rehome(db, all.v[i], old->node, e->mount_ns, err);
	/* The entries moved out of the folder stay in old's namespace. */
	if (rc == CFS_OK)
		rc = ino_set_fill(
			db,
			cfs_sql_stmt(db,
				     "SELECT DISTINCT ino FROM ops"
				     " WHERE ns = ?1 AND type = ?3"
				     " AND substr(path, 1, length(?2) + 1)"
				     " = ?2 || '/'"
				     " AND substr(to_path, 1, length(?2) + 1)"
				     " != ?2 || '/'",
				     err, "iti", old->ns, path,
				     (int64_t)QUEUE_MOVE),
			&moved_out, err);
	for (size_t i = 0; rc == CFS_OK && i < moved_out.n; i++)
		if (!ino_set_has(&all, moved_out.v[i]))
			rc = split_crossing_move(db, moved_out.v[i], old->ns,
						 path, old->node, e->mount_ns,
						 err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "DELETE FROM entries WHERE ns = ?1"
				  " AND kind = 0 AND pending = 0 AND jid = 0",
				  err, "i", e->mount_ns);
	if (rc == CFS_OK)
		rc = requeue_into(db, old->ns, path, e->mount_ns, err);
	free(all.v);
	free(moved_out.v);
	free(path);
	return rc;
}
