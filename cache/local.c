/*
 * Local changes (cache/local.h): each is one transaction that changes the
 * entries the kernel sees and queues the operation that repeats it on the
 * server, keeping the invariants in cache/pending.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/local.h"
#include "cache/pending.h"
#include "cache/rows.h"
#include "cloudfs/clock.h"

/*
 * The entry of inode ino, which the kernel names (a folder to change, a
 * file to link).  Not in the mirror, it was replaced or removed since the
 * kernel looked it up (inode numbers are never reused): CFS_ERR_STALE,
 * ESTALE, makes the kernel look the path up again, where ENOENT said that
 * a name which exists is missing (harness seed 1907: a link into a folder
 * whose share by another mount had just given it a new inode).
 */
static enum cfs_err kernel_get(struct cfs_sql *db, uint64_t ino,
			       struct mirror_entry *e, struct cfs_error *err)
{
	enum cfs_err rc = mirror_get(db, ino, e, err);

	if (rc == CFS_ERR_NOT_FOUND)
		rc = cfs_fail(
			err, CFS_ERR_STALE,
			"inode %llu was replaced or removed since the kernel looked it up",
			(unsigned long long)ino);
	return rc;
}

/* Whether the server has, or will have, entry e. */
static enum cfs_err known(struct cfs_sql *db, const struct mirror_entry *e,
			  bool *yes, struct cfs_error *err)
{
	int64_t one;

	*yes = e->node > 0;
	if (*yes)
		return CFS_OK;
	return cfs_sql_int64(db,
			     cfs_sql_stmt(db,
					  "SELECT 1 FROM ops WHERE ino = ?1"
					  " LIMIT 1",
					  err, "i", (int64_t)e->ino),
			     &one, yes, err);
}

/* The longest path below entry e, relative to it (0 without children):
 * what a move of e adds to the length of its new path. */
static enum cfs_err depth_below(struct cfs_sql *db,
				const struct mirror_entry *e, int64_t *len,
				struct cfs_error *err)
{
	bool found;

	*len = 0;
	if (e->kind != CFS_KIND_DIR)
		return CFS_OK;
	return cfs_sql_int64(
		db,
		cfs_sql_stmt(db,
			     "WITH RECURSIVE sub(node, len) AS ("
			     " SELECT ?2, 0 UNION ALL"
			     " SELECT c.node, sub.len + 1 +"
			     "  length(CAST(c.name AS BLOB))"
			     " FROM entries c JOIN sub ON c.parent = sub.node"
			     " WHERE c.ns = ?1 AND c.kind != 0)"
			     " SELECT MAX(len) FROM sub",
			     err, "ii", e->ns, e->node),
		len, &found, err);
}

/*
 * Whether name, as a child of dir with paths reaching below bytes further
 * down, stays within what the server takes (cloudfs/path.h): an entry the
 * server refuses would be accepted here and its bytes lost later, so the
 * system call fails now, with ENAMETOOLONG (CFS_ERR_TOO_LONG).
 */
static enum cfs_err check_fits(struct cfs_sql *db,
			       const struct mirror_entry *dir, const char *name,
			       int64_t below, struct cfs_error *err)
{
	size_t len = strlen(name);
	int64_t ns, node;
	char *path = NULL;
	enum cfs_err rc;

	if (len > CFS_NAME_MAX)
		return cfs_fail(err, CFS_ERR_TOO_LONG,
				"the name '%.32s...' has %zu bytes, over %d",
				name, len, CFS_NAME_MAX);
	rc = rows_dir_key(dir, &ns, &node, err);
	/* A namespace's root, or a shared folder's, is its paths' start. */
	if (rc == CFS_OK && node != 0 && dir->kind != CFS_KIND_MOUNT) {
		rc = rows_ns_path(db, dir, &path, err);
		if (rc == CFS_OK)
			len += strlen(path) + 1;
		free(path);
	}
	if (rc == CFS_OK && len + (uint64_t)below > CFS_PATH_MAX)
		rc = cfs_fail(
			err, CFS_ERR_TOO_LONG,
			"'%.32s...' would make a path of %llu bytes in its namespace, over %d",
			name, (unsigned long long)(len + (uint64_t)below),
			CFS_PATH_MAX);
	return rc;
}

static enum cfs_err mknode(struct cfs_sql *db, uint64_t dir_ino,
			   const char *name, const struct local_new *n,
			   struct mirror_entry *out, struct cfs_error *err)
{
	struct mirror_entry dir, taken;
	bool found;
	enum cfs_err rc = kernel_get(db, dir_ino, &dir, err);

	if (rc)
		return rc;
	rc = check_fits(db, &dir, name, 0, err);
	if (rc == CFS_OK)
		rc = cfs_name_check(name, strlen(name), "the new name", err);
	if (rc == CFS_OK)
		rc = rows_dir_key(&dir, &out->ns, &out->parent, err);
	if (rc == CFS_OK)
		rc = rows_child(db, &dir, name, &taken, &found, err);
	mirror_entry_release(&dir);
	if (rc)
		return rc;
	if (found) {
		mirror_entry_release(&taken);
		return cfs_fail(err, CFS_ERR_EXISTS, "'%s' exists", name);
	}
	snprintf(out->name, sizeof(out->name), "%s", name);
	out->kind = n->kind;
	out->mode = n->mode & CFS_MODE_MASK;
	out->atime_ns = out->mtime_ns = out->ctime_ns = n->time_ns;
	out->size = n->kind == CFS_KIND_SYMLINK ? strlen(n->target) : 0;
	if (n->target && !(out->target = strdup(n->target)))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	/* Counted as it is inserted: a file for its write session, the
	 * others for their state, queued now with the count passed to it.
	 * Marked again instead, a new folder's shadow "none" (invariant 2)
	 * became the folder, and a refused mkdir settled to a folder the
	 * server does not have. */
	out->pending = 1;
	rc = pending_insert_new(db, out, err);
	if (rc == CFS_OK && n->kind != CFS_KIND_FILE)
		rc = pending_pass_state(db, out, err);
	return rc;
}

enum cfs_err local_mknode(struct cfs_sql *db, uint64_t dir_ino,
			  const char *name, const struct local_new *n,
			  struct mirror_entry *out, struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	memset(out, 0, sizeof(*out));
	if (rc == CFS_OK)
		rc = mknode(db, dir_ino, name, n, out, err);
	if (rc == CFS_OK)
		rc = mirror_touch_dirs(db, dir_ino, dir_ino, err);
	rc = cfs_sql_end(db, rc, err);
	if (rc)
		mirror_entry_release(out);
	return rc;
}

/* Whether directory entry dir shows any child. */
static enum cfs_err has_children(struct cfs_sql *db,
				 const struct mirror_entry *dir, bool *yes,
				 struct cfs_error *err)
{
	int64_t ns, node, one;
	enum cfs_err rc = rows_dir_key(dir, &ns, &node, err);

	return rc ? rc
		  : cfs_sql_int64(
			    db,
			    cfs_sql_stmt(db,
					 "SELECT 1 FROM entries WHERE ns = ?1"
					 " AND parent = ?2 AND kind != 0"
					 " LIMIT 1",
					 err, "ii", ns, node),
			    &one, yes, err);
}

/* Hides e (invariant 3) and queues its delete, or drops it outright when
 * the server never had it. */
static enum cfs_err delete_entry(struct cfs_sql *db,
				 const struct mirror_entry *e,
				 struct cfs_error *err)
{
	struct queued_op op = { .type = QUEUE_DELETE, .kind = e->kind };
	bool on_server;
	enum cfs_err rc = known(db, e, &on_server, err);

	if (rc)
		return rc;
	if (!on_server)
		return rows_delete(db, e->ino, err);
	rc = rows_ns_path(db, e, &op.path, err);
	if (rc == CFS_OK)
		rc = pending_queue(db, e, &op, err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET kind = 0 WHERE ino = ?1",
				  err, "i", (int64_t)e->ino);
	free(op.path);
	return rc;
}

static enum cfs_err take_a_links_place(struct cfs_sql *db,
				       struct mirror_entry *e, int64_t ctime_ns,
				       bool *took, struct cfs_error *err);

static enum cfs_err remove_one(struct cfs_sql *db, uint64_t dir_ino,
			       const char *name, bool dir, uint64_t *ino,
			       struct cfs_error *err)
{
	struct mirror_entry parent, e;
	bool found = false, full = false, is_dir, took = false;
	enum cfs_err rc = kernel_get(db, dir_ino, &parent, err);

	if (rc)
		return rc;
	rc = rows_child(db, &parent, name, &e, &found, err);
	mirror_entry_release(&parent);
	if (rc)
		return rc;
	if (!found)
		return cfs_fail(err, CFS_ERR_NOT_FOUND, "no entry '%s'", name);
	*ino = e.ino;
	is_dir = e.kind == CFS_KIND_DIR || e.kind == CFS_KIND_MOUNT;
	if (dir && !is_dir)
		rc = cfs_fail(err, CFS_ERR_NOT_DIR, "'%s' is not a directory",
			      name);
	else if (!dir && is_dir)
		rc = cfs_fail(err, CFS_ERR_IS_DIR, "'%s' is a directory", name);
	else if (dir)
		rc = has_children(db, &e, &full, err);
	if (rc == CFS_OK && full)
		rc = cfs_fail(err, CFS_ERR_NOT_EMPTY,
			      "'%s' is a directory that is not empty", name);
	if (rc == CFS_OK && !dir)
		rc = take_a_links_place(db, &e, cfs_now_ns(), &took, err);
	if (rc == CFS_OK && !took)
		rc = delete_entry(db, &e, err);
	mirror_entry_release(&e);
	return rc;
}

enum cfs_err local_remove(struct cfs_sql *db, uint64_t dir_ino,
			  const char *name, bool dir, uint64_t *ino,
			  struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	if (rc == CFS_OK)
		rc = remove_one(db, dir_ino, name, dir, ino, err);
	if (rc == CFS_OK)
		rc = mirror_touch_dirs(db, dir_ino, dir_ino, err);
	return cfs_sql_end(db, rc, err);
}

/* Whether directory entry dir is e or lies below it (within e's ns). */
static enum cfs_err within(struct cfs_sql *db, const struct mirror_entry *dir,
			   const struct mirror_entry *e, bool *yes,
			   struct cfs_error *err)
{
	uint64_t ino = dir->ino;
	enum cfs_err rc = CFS_OK;

	*yes = false;
	while (rc == CFS_OK && !*yes && ino != MIRROR_ROOT_INO) {
		struct mirror_entry cur;

		*yes = ino == e->ino;
		rc = rows_by_ino(db, ino, &cur, err);
		if (rc)
			break;
		rc = mirror_parent(db, &cur, &ino, err);
		mirror_entry_release(&cur);
	}
	return rc;
}

/* The node entry e's name shows: its own, or a LINK's node. */
static int64_t shown_node(const struct mirror_entry *e)
{
	return e->kind == CFS_KIND_LINK ? e->link_of : e->node;
}

/* What rename(2) says when e would replace t. */
static enum cfs_err check_replace(struct cfs_sql *db,
				  const struct mirror_entry *e,
				  const struct mirror_entry *t,
				  struct cfs_error *err)
{
	bool e_dir = e->kind == CFS_KIND_DIR || e->kind == CFS_KIND_MOUNT;
	bool full = false;
	enum cfs_err rc;

	if (t->kind == CFS_KIND_MOUNT || e->kind == CFS_KIND_MOUNT)
		return cfs_fail(
			err, CFS_ERR_EXISTS,
			"'%s' exists and a shared folder is never replaced",
			t->name);
	if (!e_dir)
		return t->kind == CFS_KIND_DIR
			       ? cfs_fail(err, CFS_ERR_IS_DIR,
					  "'%s' is a directory", t->name)
			       : CFS_OK;
	if (t->kind != CFS_KIND_DIR)
		return cfs_fail(err, CFS_ERR_NOT_DIR, "'%s' is not a directory",
				t->name);
	rc = has_children(db, t, &full, err);
	if (rc == CFS_OK && full)
		rc = cfs_fail(err, CFS_ERR_NOT_EMPTY,
			      "'%s' is a directory that is not empty", t->name);
	return rc;
}

struct rename_args {
	uint64_t dir_ino, newdir_ino;
	const char *name, *newname;
	bool noreplace;
	int64_t ctime_ns;
	uint64_t *ino;
};

/*
 * Moves e, and sets its ctime, on the server too.  Queued (and so
 * shadowed) before it moves: the shadow is the server's state, where a
 * refused move puts the entry back; shadowed at its new place, the entry
 * stayed there for good, a name the server never had (a folder moved
 * elsewhere meanwhile made the server refuse it).
 */
static enum cfs_err rename_move(struct cfs_sql *db, struct mirror_entry *e,
				int64_t new_parent, const char *newname,
				int64_t ctime_ns, struct cfs_error *err)
{
	struct queued_op op = { .type = QUEUE_MOVE, .kind = e->kind };
	struct mirror_entry moved = *e; /* borrows e's blocks and target */
	bool on_server;
	enum cfs_err rc = known(db, e, &on_server, err);

	moved.parent = new_parent;
	snprintf(moved.name, sizeof(moved.name), "%s", newname);
	moved.ctime_ns = op.ctime_ns = ctime_ns;
	if (rc == CFS_OK && on_server)
		rc = rows_ns_path(db, e, &op.path, err);
	if (rc == CFS_OK && on_server)
		rc = rows_ns_path(db, &moved, &op.to, err);
	if (rc == CFS_OK && on_server)
		rc = pending_queue(db, e, &op, err);
	e->parent = moved.parent;
	memcpy(e->name, moved.name, sizeof(e->name));
	e->ctime_ns = moved.ctime_ns;
	if (rc == CFS_OK)
		rc = rows_write(db, &e->ino, e, err);
	free(op.path);
	free(op.to);
	return rc;
}

/*
 * Hard links: when node e's own name goes (unlinked, or replaced by a
 * rename) while it has further names, the server keeps the node at one of
 * them (cloudfs-protocol(7), "hard links").  The mount does the same at
 * once, as the two operations the server already knows, that name's
 * delete and the node's move to its place: the node stays shown, and open
 * and written through its other names, with no moment without it, and
 * the move's answer gives the node's new JID (a later write's base).
 * *took: whether e had a further name (and moved there; e is updated).
 */
static enum cfs_err take_a_links_place(struct cfs_sql *db,
				       struct mirror_entry *e, int64_t ctime_ns,
				       bool *took, struct cfs_error *err)
{
	struct mirror_entry l;
	enum cfs_err rc;

	*took = false;
	if (e->kind == CFS_KIND_DIR || e->kind == CFS_KIND_MOUNT ||
	    e->kind == CFS_KIND_LINK || e->kind == CFS_KIND_DELETED)
		return CFS_OK;
	rc = rows_one(db,
		      cfs_sql_stmt(db,
				   "SELECT " ROWS_ENTRY_COLS " FROM entries"
				   " WHERE ns = ?1 AND link_of = ?2"
				   " AND kind = 9 ORDER BY ino LIMIT 1",
				   err, "ii", e->ns, e->node),
		      &l, err);
	if (rc == CFS_ERR_NOT_FOUND)
		return CFS_OK;
	if (rc)
		return rc;
	rc = delete_entry(db, &l, err);
	if (rc == CFS_OK)
		rc = rename_move(db, e, l.parent, l.name, ctime_ns, err);
	*took = rc == CFS_OK;
	mirror_entry_release(&l);
	return rc;
}

static enum cfs_err do_rename(struct cfs_sql *db, const struct rename_args *a,
			      struct cfs_error *err)
{
	bool took = false;
	struct mirror_entry dir, newdir, e, t;
	int64_t ns, node, new_ns, new_node, below = 0;
	bool found_e = false, found_t = false, inside = false;
	enum cfs_err rc = kernel_get(db, a->dir_ino, &dir, err);

	if (rc)
		return rc;
	rc = kernel_get(db, a->newdir_ino, &newdir, err);
	if (rc) {
		mirror_entry_release(&dir);
		return rc;
	}
	rc = rows_dir_key(&dir, &ns, &node, err);
	if (rc == CFS_OK)
		rc = rows_dir_key(&newdir, &new_ns, &new_node, err);
	if (rc == CFS_OK && ns != new_ns)
		rc = cfs_fail(
			err, CFS_ERR_CROSS_NS,
			"'%s' and its new place are in different namespaces",
			a->name);
	if (rc == CFS_OK)
		rc = rows_child(db, &dir, a->name, &e, &found_e, err);
	if (rc == CFS_OK && !found_e)
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "no entry '%s'", a->name);
	if (rc == CFS_OK)
		rc = depth_below(db, &e, &below, err);
	if (rc == CFS_OK)
		rc = check_fits(db, &newdir, a->newname, below, err);
	if (rc == CFS_OK)
		rc = cfs_name_check(a->newname, strlen(a->newname),
				    "the new name", err);
	if (rc == CFS_OK)
		rc = rows_child(db, &newdir, a->newname, &t, &found_t, err);
	/* Onto itself, or onto another name of its node (rename(2) then
	 * does nothing, nor does the server's move): nothing to do. */
	if (rc == CFS_OK && found_t &&
	    (t.ino == e.ino || shown_node(&t) == shown_node(&e))) {
		found_t = false;
		mirror_entry_release(&t);
		goto out;
	}
	if (rc == CFS_OK && found_t && a->noreplace)
		rc = cfs_fail(err, CFS_ERR_EXISTS, "'%s' exists", a->newname);
	if (rc == CFS_OK && found_t)
		rc = check_replace(db, &e, &t, err);
	if (rc == CFS_OK && e.kind == CFS_KIND_DIR)
		rc = within(db, &newdir, &e, &inside, err);
	if (rc == CFS_OK && inside)
		rc = cfs_fail(err, CFS_ERR_BAD_FIELD,
			      "cannot move '%s' into itself", a->name);
	/*
	 * The target goes first, as if unlinked: its delete is queued with
	 * the version this mount last saw as its base.  Saving by renaming
	 * over a file (git, sed -i, rsync, editors) then replaces our own
	 * version whether or not the new file reached the server yet, and
	 * only another device's edit of the target is a conflict.
	 */
	if (rc == CFS_OK && found_t)
		rc = take_a_links_place(db, &t, a->ctime_ns, &took, err);
	if (rc == CFS_OK && found_t && !took)
		rc = delete_entry(db, &t, err);
	if (rc == CFS_OK)
		rc = rename_move(db, &e, new_node, a->newname, a->ctime_ns,
				 err);
	if (rc == CFS_OK)
		*a->ino = e.ino;
out:
	if (found_e)
		mirror_entry_release(&e);
	if (found_t)
		mirror_entry_release(&t);
	mirror_entry_release(&dir);
	mirror_entry_release(&newdir);
	return rc;
}

enum cfs_err local_rename(struct cfs_sql *db, uint64_t dir_ino,
			  const char *name, uint64_t newdir_ino,
			  const char *newname, bool noreplace, int64_t ctime_ns,
			  uint64_t *ino, struct cfs_error *err)
{
	struct rename_args a = { .dir_ino = dir_ino,
				 .newdir_ino = newdir_ino,
				 .name = name,
				 .newname = newname,
				 .noreplace = noreplace,
				 .ctime_ns = ctime_ns,
				 .ino = ino };
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	*ino = 0;
	if (rc == CFS_OK)
		rc = do_rename(db, &a, err);
	if (rc == CFS_OK)
		rc = mirror_touch_dirs(db, dir_ino, newdir_ino, err);
	return cfs_sql_end(db, rc, err);
}

static enum cfs_err do_link(struct cfs_sql *db, uint64_t ino,
			    uint64_t newdir_ino, const char *newname,
			    struct mirror_entry *out, struct cfs_error *err)
{
	struct mirror_entry dir, l = { 0 };
	struct queued_op op = { .type = QUEUE_LINK, .kind = CFS_KIND_LINK };
	int64_t ns, node;
	bool found = false;
	enum cfs_err rc = kernel_get(db, ino, out, err);

	if (rc)
		return rc;
	if (out->kind == CFS_KIND_DIR || out->kind == CFS_KIND_MOUNT)
		return cfs_fail(err, CFS_ERR_FORBIDDEN,
				"'%s' is a folder, which has one name",
				out->name);
	rc = kernel_get(db, newdir_ino, &dir, err);
	if (rc)
		return rc;
	rc = rows_dir_key(&dir, &ns, &node, err);
	if (rc == CFS_OK && ns != out->ns)
		rc = cfs_fail(
			err, CFS_ERR_CROSS_NS,
			"'%s' and its new name are in different namespaces",
			out->name);
	if (rc == CFS_OK)
		rc = check_fits(db, &dir, newname, 0, err);
	if (rc == CFS_OK)
		rc = cfs_name_check(newname, strlen(newname), "the new name",
				    err);
	if (rc == CFS_OK)
		rc = rows_child(db, &dir, newname, &l, &found, err);
	mirror_entry_release(&dir);
	if (rc == CFS_OK && found) {
		mirror_entry_release(&l);
		return cfs_fail(err, CFS_ERR_EXISTS, "'%s' exists", newname);
	}
	if (rc)
		return rc;
	l = (struct mirror_entry){ .ns = ns,
				   .parent = node,
				   .kind = CFS_KIND_LINK,
				   .link_of = out->node,
				   .atime_ns = out->atime_ns,
				   .mtime_ns = out->mtime_ns,
				   .ctime_ns = out->ctime_ns };
	snprintf(l.name, sizeof(l.name), "%s", newname);
	rc = rows_ns_path(db, out, &op.path, err);
	if (rc == CFS_OK)
		rc = pending_insert_new(db, &l, err);
	/* Its shadow stays the one pending_insert_new() gave, the server's
	 * state (none): refused, the name goes (pending_mark() takes an
	 * entry without changes for the server's state). */
	l.pending = 1;
	if (rc == CFS_OK)
		rc = rows_ns_path(db, &l, &op.to, err);
	if (rc == CFS_OK)
		rc = pending_queue(db, &l, &op, err);
	free(op.path);
	free(op.to);
	return rc;
}

enum cfs_err local_link(struct cfs_sql *db, uint64_t ino, uint64_t newdir_ino,
			const char *newname, struct mirror_entry *out,
			struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	memset(out, 0, sizeof(*out));
	if (rc == CFS_OK)
		rc = do_link(db, ino, newdir_ino, newname, out, err);
	if (rc == CFS_OK)
		rc = mirror_touch_dirs(db, newdir_ino, newdir_ino, err);
	rc = cfs_sql_end(db, rc, err);
	if (rc)
		mirror_entry_release(out);
	return rc;
}

enum cfs_err local_link_waits(struct cfs_sql *db, const struct queued_op *op,
			      bool *waits, struct cfs_error *err)
{
	int64_t one;

	*waits = false;
	return cfs_sql_int64(
		db,
		cfs_sql_stmt(db,
			     "SELECT 1 FROM entries l JOIN entries n"
			     " ON n.ns = l.ns AND n.node = l.link_of"
			     " WHERE l.ino = ?1 AND (n.node < 0 OR EXISTS"
			     " (SELECT 1 FROM ops o WHERE o.ino = n.ino"
			     " AND o.ord < (SELECT ord FROM ops"
			     "  WHERE seq = ?2)))",
			     err, "ii", (int64_t)op->ino, op->seq),
		&one, waits, err);
}

/*
 * Whether e's write session is still open: its pending count holds one
 * more than its queued operations (invariant 1).  The caller's belief may
 * be stale: a session that settled since would never send a change
 * written into the entry alone.
 */
static enum cfs_err in_write_session(struct cfs_sql *db,
				     const struct mirror_entry *e, bool *open,
				     struct cfs_error *err)
{
	int64_t queued = 0;
	bool found;
	enum cfs_err rc = cfs_sql_int64(
		db,
		cfs_sql_stmt(db, "SELECT COUNT(*) FROM ops WHERE ino = ?1", err,
			     "i", (int64_t)e->ino),
		&queued, &found, err);

	*open = rc == CFS_OK && e->pending > queued;
	return rc;
}

enum cfs_err local_setattr(struct cfs_sql *db, uint64_t ino,
			   const struct local_attrs *a, int64_t ctime_ns,
			   bool in_session, struct cfs_error *err)
{
	struct mirror_entry e;
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	if (rc == CFS_OK)
		rc = mirror_get(db, ino, &e, err);
	if (rc) {
		cfs_sql_end(db, rc, err);
		return rc;
	}
	if (in_session)
		rc = in_write_session(db, &e, &in_session, err);
	if (rc == CFS_OK && e.kind == CFS_KIND_MOUNT)
		rc = cfs_fail(
			err, CFS_ERR_FORBIDDEN,
			"'%s' is a shared folder, whose mode and times are the server's",
			e.name);
	/* Invariant 1: the shadow is the server's state, taken before the
	 * change (the queueing below would take the changed one). */
	if (rc == CFS_OK && !in_session && e.pending == 0) {
		rc = rows_shadow_put(db, e.ino, &e, err);
		e.pending = 1; /* the shadow is there; the count comes next */
	}
	if (a->mode)
		e.mode = *a->mode & CFS_MODE_MASK;
	if (a->atime_ns)
		e.atime_ns = *a->atime_ns;
	if (a->mtime_ns)
		e.mtime_ns = *a->mtime_ns;
	e.ctime_ns = ctime_ns;
	if (rc == CFS_OK)
		rc = rows_write(db, &e.ino, &e, err);
	if (rc == CFS_OK && !in_session)
		rc = pending_queue_state(db, &e, err);
	mirror_entry_release(&e);
	return cfs_sql_end(db, rc, err);
}

enum cfs_err local_write_begin(struct cfs_sql *db, uint64_t ino,
			       struct cfs_error *err)
{
	struct mirror_entry e;
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	if (rc == CFS_OK)
		rc = mirror_get(db, ino, &e, err);
	if (rc == CFS_OK) {
		if (e.kind != CFS_KIND_FILE)
			rc = cfs_fail(err, CFS_ERR_IS_DIR,
				      "inode %llu is not a file",
				      (unsigned long long)ino);
		else
			rc = pending_mark(db, &e, 1, err);
		mirror_entry_release(&e);
	}
	return cfs_sql_end(db, rc, err);
}

enum cfs_err local_write_end(struct cfs_sql *db, uint64_t ino,
			     const struct local_content *c,
			     struct mirror_changes *ch, struct cfs_error *err)
{
	struct mirror_entry e;
	enum cfs_err rc = cfs_sql_begin(db, true, err);

	if (rc == CFS_OK)
		rc = rows_by_ino(db, ino, &e, err);
	if (rc == CFS_ERR_NOT_FOUND)
		return cfs_sql_end(db, CFS_OK,
				   err); /* never on the server, gone */
	if (rc) {
		cfs_sql_end(db, rc, err);
		return rc;
	}
	if (c && e.kind == CFS_KIND_FILE) {
		cfs_blocklist_release(&e.blocks);
		e.blocks = *c->blocks;
		e.size = c->size;
		e.atime_ns = c->atime_ns;
		e.mtime_ns = c->mtime_ns;
		if (c->has_mode)
			e.mode = c->mode & CFS_MODE_MASK;
		if (c->ctime_ns > e.ctime_ns)
			e.ctime_ns = c->ctime_ns;
		rc = rows_write(db, &e.ino, &e, err);
		/* The session's count passes to the queued commit. */
		if (rc == CFS_OK)
			rc = pending_pass_state(db, &e, err);
		e.blocks = (struct cfs_blocklist){ 0 };
	} else {
		rc = pending_done(db, ino, ch, err);
	}
	mirror_entry_release(&e);
	return cfs_sql_end(db, rc, err);
}
