/*
 * A clean row given the server's state (rows_settle), and what a folder
 * takes with it when it goes or changes kind (rows_drop_contents): its
 * subtree, but for the entries with local changes and the folders that
 * lead to them (invariant 4 of cache/mirror.c).
 */
#include <assert.h>
#include <stdlib.h>

#include "cache/ino_set.h"
#include "cache/local.h"
#include "cache/repath.h"
#include "cache/rows.h"

/*
 * Invariant 4: of a deleted folder's subtree (below node top), the
 * entries to keep: those with local changes and the folders on their way
 * up to top.
 */
static enum cfs_err subtree_keep(struct cfs_sql *db, int64_t ns, int64_t top,
				 struct ino_set *keep, struct cfs_error *err)
{
	struct ino_set dirty = { 0 };
	enum cfs_err rc =
		ino_set_fill(db,
			     cfs_sql_stmt(db,
					  ROWS_SUBTREE_CTE
					  "SELECT e.ino FROM entries e JOIN sub"
					  " ON e.ns = ?1 AND e.node = sub.node"
					  " WHERE e.pending > 0",
					  err, "ii", ns, top),
			     &dirty, err);

	for (size_t i = 0; rc == CFS_OK && i < dirty.n; i++) {
		uint64_t ino = dirty.v[i];

		while (rc == CFS_OK && !ino_set_has(keep, ino)) {
			struct mirror_entry e;

			rc = ino_set_add(keep, ino, err);
			if (rc == CFS_OK)
				rc = rows_one(
					db,
					cfs_sql_stmt(db,
						     "SELECT " ROWS_ENTRY_COLS
						     " FROM entries"
						     " WHERE ino = ?1",
						     err, "i", (int64_t)ino),
					&e, err);
			if (rc)
				break;
			if (e.parent != top)
				rc = mirror_parent(db, &e, &ino, err);
			mirror_entry_release(&e);
			if (e.parent == top)
				break;
		}
	}
	free(dirty.v);
	return rc;
}

/* The folders kept of a deleted subtree are no longer on the server: they
 * take node ids of their own until they are created again. */
enum cfs_err rows_localize(struct cfs_sql *db, uint64_t ino,
			   struct cfs_error *err)
{
	struct mirror_entry e = { 0 };
	enum cfs_err rc = rows_by_ino(db, ino, &e, err);

	assert(cfs_sql_in_transaction(db));
	if (rc == CFS_OK && e.node > 0)
		rc = rows_set_node(db, &e, -(int64_t)ino, err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET jid = 0 WHERE ino = ?1",
				  err, "i", (int64_t)ino);
	mirror_entry_release(&e);
	return rc;
}

/* The subtree below node of ns: with some entries to keep, all its
 * inodes into *all (the caller sorts them out); without, it goes whole. */
static enum cfs_err subtree_all_or_drop(struct cfs_sql *db, int64_t ns,
					int64_t node, bool keep_some,
					struct ino_set *all,
					struct cfs_error *err)
{
	if (!keep_some)
		return cfs_sql_exec(
			db,
			"DELETE FROM entries WHERE ns = ?1 AND node IN"
			" (" ROWS_SUBTREE_CTE "SELECT node FROM sub)",
			err, "ii", ns, node);
	return ino_set_fill(db,
			    cfs_sql_stmt(db,
					 ROWS_SUBTREE_CTE
					 "SELECT e.ino FROM entries e JOIN sub"
					 " ON e.ns = ?1 AND e.node = sub.node",
					 err, "ii", ns, node),
			    all, err);
}

/* Invariant 4: removes the descendants of node, forgets the shared
 * namespaces mounted among them; *kept tells whether some stay.  A kept
 * leaf that was only moved in here keeps its node: the server has it
 * where it was moved from (its shadow), and there it goes back when its
 * move, which cannot be done now, is refused. */
static enum cfs_err drop_subtree(struct cfs_sql *db, int64_t ns, int64_t node,
				 bool *kept, struct cfs_error *err)
{
	struct ino_set keep = { 0 }, all = { 0 }, moved_in = { 0 };
	sqlite3_stmt *st;
	enum cfs_err rc = CFS_OK;
	bool row = true;

	/* One mount at a time: forgetting it changes what st reads. */
	while (rc == CFS_OK && row) {
		st = cfs_sql_stmt(db,
				  ROWS_SUBTREE_CTE
				  "SELECT e.mount_ns FROM entries e"
				  " JOIN sub ON e.ns = ?1"
				  " AND e.node = sub.node"
				  " WHERE e.kind = 4 LIMIT 1",
				  err, "ii", ns, node);
		rc = st ? cfs_sql_step(db, st, &row, err) : err->code;
		if (rc == CFS_OK && row)
			rc = rows_forget_ns(db, sqlite3_column_int64(st, 0),
					    err);
	}
	if (rc == CFS_OK)
		rc = subtree_keep(db, ns, node, &keep, err);
	if (rc == CFS_OK && keep.n)
		rc = ino_set_fill(
			db,
			cfs_sql_stmt(
				db,
				ROWS_SUBTREE_CTE
				"SELECT e.ino FROM entries e JOIN sub"
				" ON e.ns = ?1 AND e.node = sub.node"
				" JOIN shadow s ON s.ino = e.ino"
				" WHERE e.pending > 0 AND e.node > 0"
				" AND e.kind IN (1, 3, 5, 6, 7, 8)"
				" AND s.kind != 0 AND s.parent != ?2"
				" AND s.parent NOT IN (SELECT node FROM sub)"
				" AND NOT EXISTS (SELECT 1 FROM ops o"
				" WHERE o.ino = e.ino AND o.type != ?3)",
				err, "iii", ns, node, (int64_t)QUEUE_MOVE),
			&moved_in, err);
	*kept = keep.n > 0;
	/* Rare: local changes in a folder deleted elsewhere. */
	if (rc == CFS_OK)
		rc = subtree_all_or_drop(db, ns, node, *kept, &all, err);
	for (size_t i = 0; rc == CFS_OK && i < all.n; i++)
		rc = ino_set_has(&keep, all.v[i])
			     ? CFS_OK
			     : rows_delete(db, all.v[i], err);
	for (size_t i = 0; rc == CFS_OK && i < keep.n; i++)
		rc = ino_set_has(&moved_in, keep.v[i])
			     ? CFS_OK
			     : rows_localize(db, keep.v[i], err);
	free(keep.v);
	free(all.v);
	free(moved_in.v);
	return rc;
}

/*
 * Invariant 4: folder node of ns and those above it that were kept only
 * for what they held (local entries, node < 0, with nothing pending or
 * queued of their own) go once they hold nothing: the server has none
 * of them, and nothing queued would make it.  Kept, such a folder showed
 * for good in this mount alone.
 */
static enum cfs_err prune_kept(struct cfs_sql *db, int64_t ns, int64_t node,
			       struct mirror_changes *ch, struct cfs_error *err)
{
	enum cfs_err rc = CFS_OK;

	while (rc == CFS_OK && node < 0) {
		struct mirror_entry e, gone;
		int64_t busy = 1;
		bool found = false;

		if (rows_by_node(db, ns, node, &e, err) != CFS_OK)
			break;
		if (e.kind == CFS_KIND_DIR && e.pending == 0)
			rc = cfs_sql_int64(
				db,
				cfs_sql_stmt(
					db,
					"SELECT EXISTS(SELECT 1 FROM entries"
					" WHERE ns = ?1 AND parent = ?2)"
					" OR EXISTS(SELECT 1 FROM ops"
					" WHERE ino = ?3)",
					err, "iii", ns, node, (int64_t)e.ino),
				&busy, &found, err);
		gone = e;
		gone.kind = CFS_KIND_DELETED;
		if (rc == CFS_OK && !busy)
			rc = rows_note_change(db, &e, &gone, ch, err);
		if (rc == CFS_OK && !busy)
			rc = rows_delete(db, e.ino, err);
		node = busy ? 0 : e.parent;
		mirror_entry_release(&e);
	}
	return rc;
}

/* The files that folder node of ns holds further names of, wherever they
 * are: their link counts change when the folder goes or is shared away
 * (a link never crosses a namespace). */
static enum cfs_err note_links_within(struct cfs_sql *db, int64_t ns,
				      int64_t node, struct mirror_changes *ch,
				      struct cfs_error *err)
{
	struct ino_set set = { 0 };
	enum cfs_err rc = ino_set_fill(
		db,
		cfs_sql_stmt(db,
			     ROWS_SUBTREE_CTE
			     "SELECT n.ino FROM entries e JOIN sub"
			     " ON e.ns = ?1 AND e.node = sub.node"
			     " JOIN entries n ON n.ns = ?1"
			     " AND n.node = e.link_of WHERE e.kind = 9",
			     err, "ii", ns, node),
		&set, err);

	for (size_t i = 0; rc == CFS_OK && i < set.n; i++)
		rc = rows_note(ch, set.v[i], 0, NULL, err);
	free(set.v);
	return rc;
}

enum cfs_err rows_drop_contents(struct cfs_sql *db,
				const struct mirror_entry *old,
				const struct mirror_entry *e, bool *kept,
				struct mirror_changes *ch,
				struct cfs_error *err)
{
	enum cfs_err rc = CFS_OK;

	assert(cfs_sql_in_transaction(db));
	*kept = false;
	if (old->kind == CFS_KIND_DIR && e->kind != CFS_KIND_DIR) {
		rc = note_links_within(db, old->ns, old->node, ch, err);
		if (rc)
			return rc;
	}
	if (old->kind == CFS_KIND_DIR && e->kind == CFS_KIND_MOUNT &&
	    old->ns == e->ns && old->node == e->node && old->node > 0)
		return rows_follow_share(db, old, e, err);
	if (old->kind == CFS_KIND_DIR && e->kind != CFS_KIND_DIR)
		rc = drop_subtree(db, old->ns, old->node, kept, err);
	if (rc == CFS_OK && *kept)
		rc = rows_localize(db, old->ino, err);
	if (rc == CFS_OK && old->kind == CFS_KIND_MOUNT &&
	    (e->kind != CFS_KIND_MOUNT || e->mount_ns != old->mount_ns))
		rc = rows_forget_ns(db, old->mount_ns, err);
	return rc;
}

enum cfs_err rows_settle(struct cfs_sql *db, const struct mirror_entry *old,
			 const struct mirror_entry *e,
			 struct mirror_changes *ch, struct cfs_error *err)
{
	bool replaced = e->kind != old->kind, kept = false;
	bool new_mount = e->kind == CFS_KIND_MOUNT &&
			 (replaced || old->mount_ns != e->mount_ns);
	uint64_t ino = replaced ? 0 : old->ino;
	char *from = NULL;
	enum cfs_err rc = rows_note_change(db, old, e, ch, err);

	assert(cfs_sql_in_transaction(db));
	if (rc == CFS_OK)
		rc = rows_drop_contents(db, old, e, &kept, ch, err);
	if (rc == CFS_OK && kept)
		return CFS_OK; /* kept for its local changes (invariant 4) */
	if (rc == CFS_OK && (replaced || e->kind == CFS_KIND_DELETED))
		rc = rows_delete(db, old->ino, err);
	if (rc == CFS_OK && e->kind == CFS_KIND_DELETED)
		rc = prune_kept(db, old->ns, old->parent, ch, err);
	if (rc || e->kind == CFS_KIND_DELETED)
		return rc;
	rc = repath_folder_path(db, old, e, &from, err);
	if (rc == CFS_OK)
		rc = rows_write(db, &ino, e, err);
	if (rc == CFS_OK && old->parent != e->parent)
		rc = prune_kept(db, old->ns, old->parent, ch, err);
	if (rc == CFS_OK && from)
		rc = repath_moved(db, ino, e->ns, from, err);
	if (rc == CFS_OK && new_mount)
		rc = rows_follow_mount(db, ino, e, err);
	free(from);
	return rc;
}
