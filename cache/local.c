/*
 * Local changes and the queue of operations (cache/local.h).
 *
 * Invariants, on top of the mirror's (cache/mirror.c):
 *  1. pending of an entry is the number of its queued operations, plus one
 *     while a write session is open on it.  pending > 0 exactly when the
 *     entry has a shadow row.
 *  2. An entry the server does not have has node -ino, and jid 0; its
 *     shadow says DELETED.  Its children name it by that node id until the
 *     server assigns one (local_confirm).
 *  3. An entry removed locally stays, hidden (kind DELETED), until the
 *     server confirms the delete: a listing must not bring it back.
 *  4. jid of an entry with local changes is the server's version they are
 *     based on (the last one confirmed); a file's commit carries it as its
 *     base, so a newer version on the server is a conflict, never lost.
 *  5. Operations are sent in ord order; a batch never holds two of one
 *     entry, so every base is read after the previous answer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/local.h"
#include "cache/rows.h"

void queued_op_release(struct queued_op *op)
{
	free(op->path);
	free(op->to);
	free(op->target);
	cfs_blocklist_release(&op->blocks);
	memset(op, 0, sizeof(*op));
}

static enum cfs_err begin(struct cfs_sql *db, struct cfs_error *err)
{
	return cfs_sql_script(db, "BEGIN IMMEDIATE", err);
}

static enum cfs_err end(struct cfs_sql *db, enum cfs_err rc,
			struct cfs_error *err)
{
	if (rc == CFS_OK)
		rc = cfs_sql_script(db, "COMMIT", err);
	if (rc)
		sqlite3_exec(db->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* A visible entry by inode (NOT_FOUND with a message). */
static enum cfs_err visible(struct cfs_sql *db, uint64_t ino,
			    struct mirror_entry *e, struct cfs_error *err)
{
	return mirror_get(db, ino, e, err);
}

/* The visible child name of directory entry dir, if any (*found). */
static enum cfs_err child(struct cfs_sql *db, const struct mirror_entry *dir,
			  const char *name, struct mirror_entry *e, bool *found,
			  struct cfs_error *err)
{
	enum cfs_err rc = mirror_lookup(db, dir, name, e, err);

	*found = rc == CFS_OK;
	return rc == CFS_ERR_NOT_FOUND ? CFS_OK : rc;
}

/* Invariant 1: the entry's first local change keeps the server's state. */
static enum cfs_err mark_dirty(struct cfs_sql *db, const struct mirror_entry *e,
			       int delta, struct cfs_error *err)
{
	enum cfs_err rc = CFS_OK;

	if (e->pending == 0)
		rc = rows_shadow_put(db, e->ino, e, err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET pending = pending + ?2"
				  " WHERE ino = ?1",
				  err, "ii", (int64_t)e->ino, (int64_t)delta);
	return rc;
}

/* Puts an operation at the end of the queue. */
static enum cfs_err enqueue(struct cfs_sql *db, const struct queued_op *op,
			    double ord, struct cfs_error *err)
{
	return cfs_sql_exec(
		db,
		"INSERT INTO ops(ord, ino, ns, type, kind, path, to_path, size,"
		" mtime_ns, mode, blocks, target, replace) VALUES (?1, ?2, ?3,"
		" ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
		err, "diiiittiiibti", ord, (int64_t)op->ino, op->ns,
		(int64_t)op->type, (int64_t)op->kind, op->path, op->to,
		(int64_t)op->size, op->mtime_ns, (int64_t)op->mode,
		(const void *)op->blocks.ids, op->blocks.n * CFS_BLOCK_ID_LEN,
		op->target, (int64_t)op->replace);
}

/* The ord after every queued operation. */
static enum cfs_err next_ord(struct cfs_sql *db, double *ord,
			     struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db, "SELECT COALESCE(MAX(ord), 0) + 1 FROM ops", err, "");
	enum cfs_err rc;
	bool row;

	if (!st)
		return err->code;
	rc = cfs_sql_step(db, st, &row, err);
	if (rc == CFS_OK)
		*ord = sqlite3_column_double(st, 0);
	return rc;
}

/* Queues an operation on entry e (marking it dirty). */
static enum cfs_err queue(struct cfs_sql *db, const struct mirror_entry *e,
			  struct queued_op *op, struct cfs_error *err)
{
	double ord = 0;
	enum cfs_err rc = next_ord(db, &ord, err);

	op->ino = e->ino;
	op->ns = e->ns;
	if (rc == CFS_OK)
		rc = enqueue(db, op, ord, err);
	return rc ? rc : mark_dirty(db, e, 1, err);
}

/* An operation that carries e's whole state (file, folder, symlink). */
static enum cfs_err queue_state(struct cfs_sql *db,
				const struct mirror_entry *e,
				struct cfs_error *err)
{
	struct queued_op op = {
		.type = e->kind == CFS_KIND_DIR	      ? QUEUE_DIR
			: e->kind == CFS_KIND_SYMLINK ? QUEUE_SYMLINK
						      : QUEUE_FILE,
		.kind = e->kind,
		.size = e->size,
		.mtime_ns = e->mtime_ns,
		.mode = e->mode,
		.blocks = e->blocks,
		.target = e->target,
	};
	enum cfs_err rc = rows_ns_path(db, e, &op.path, err);

	if (rc == CFS_OK)
		rc = queue(db, e, &op, err);
	free(op.path);
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

/*
 * An entry whose changes are all settled shows the server's state again
 * when that is newer than what it committed, or when one of its changes
 * was refused (the local-changes invariants 1 and 4).
 */
static enum cfs_err settle(struct cfs_sql *db, uint64_t ino,
			   struct mirror_changes *ch, struct cfs_error *err)
{
	struct mirror_entry e, s;
	int64_t refused = 0;
	bool found;
	enum cfs_err rc = rows_by_ino(db, ino, &e, err);

	if (rc == CFS_ERR_NOT_FOUND)
		return CFS_OK;
	if (rc)
		return rc;
	if (e.pending > 0) {
		mirror_entry_release(&e);
		return CFS_OK;
	}
	rc = cfs_sql_int64(db,
			   cfs_sql_stmt(db,
					"SELECT refused FROM shadow"
					" WHERE ino = ?1",
					err, "i", (int64_t)ino),
			   &refused, &found, err);
	if (rc == CFS_OK && found)
		rc = rows_shadow_get(db, ino, &s, err);
	if (rc == CFS_OK && found) {
		if (refused || s.jid > e.jid || e.kind == CFS_KIND_DELETED)
			rc = rows_settle(db, &e, &s, ch, err);
		mirror_entry_release(&s);
	}
	if (rc == CFS_OK)
		rc = rows_shadow_delete(db, ino, err);
	mirror_entry_release(&e);
	return rc;
}

/* Changes pending of ino by delta and settles it. */
static enum cfs_err unpend(struct cfs_sql *db, uint64_t ino,
			   struct mirror_changes *ch, struct cfs_error *err)
{
	enum cfs_err rc =
		cfs_sql_exec(db,
			     "UPDATE entries SET pending = pending - 1"
			     " WHERE ino = ?1 AND pending > 0",
			     err, "i", (int64_t)ino);

	return rc ? rc : settle(db, ino, ch, err);
}

/* Inserts e (its node and jid set here: invariant 2) with its shadow. */
static enum cfs_err insert_new(struct cfs_sql *db, struct mirror_entry *e,
			       struct cfs_error *err)
{
	struct mirror_entry s;
	enum cfs_err rc;
	int64_t top;
	bool found;

	/* A node id no entry has, until the row's own -ino is known. */
	rc = cfs_sql_int64(
		db,
		cfs_sql_stmt(db, "SELECT COALESCE(MAX(ino), 0) FROM entries",
			     err, ""),
		&top, &found, err);
	e->node = -(top + 1);
	e->jid = 0;
	e->ino = 0;
	if (rc == CFS_OK)
		rc = rows_write(db, &e->ino, e, err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET node = ?2 WHERE ino = ?1",
				  err, "ii", (int64_t)e->ino, -(int64_t)e->ino);
	e->node = -(int64_t)e->ino;
	s = *e;
	s.kind = CFS_KIND_DELETED;
	s.blocks = (struct cfs_blocklist){ 0 };
	s.target = NULL;
	if (rc == CFS_OK)
		rc = rows_shadow_put(db, e->ino, &s, err);
	return rc;
}

static enum cfs_err mknode(struct cfs_sql *db, uint64_t dir_ino,
			   const char *name, const struct local_new *n,
			   struct mirror_entry *out, struct cfs_error *err)
{
	struct mirror_entry dir, taken;
	bool found;
	enum cfs_err rc =
		cfs_name_check(name, strlen(name), "the new name", err);

	if (rc)
		return rc;
	rc = visible(db, dir_ino, &dir, err);
	if (rc)
		return rc;
	rc = rows_dir_key(&dir, &out->ns, &out->parent, err);
	if (rc == CFS_OK)
		rc = child(db, &dir, name, &taken, &found, err);
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
	out->mtime_ns = n->mtime_ns;
	out->size = n->target ? strlen(n->target) : 0;
	if (n->target && !(out->target = strdup(n->target)))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	rc = insert_new(db, out, err);
	/* A file starts in a write session; the others are queued now. */
	if (rc == CFS_OK && n->kind == CFS_KIND_FILE)
		rc = cfs_sql_exec(
			db, "UPDATE entries SET pending = 1 WHERE ino = ?1",
			err, "i", (int64_t)out->ino);
	else if (rc == CFS_OK)
		rc = queue_state(db, out, err);
	out->pending = 1;
	return rc;
}

enum cfs_err local_mknode(struct cfs_sql *db, uint64_t dir_ino,
			  const char *name, const struct local_new *n,
			  struct mirror_entry *out, struct cfs_error *err)
{
	enum cfs_err rc = begin(db, err);

	memset(out, 0, sizeof(*out));
	if (rc == CFS_OK)
		rc = mknode(db, dir_ino, name, n, out, err);
	rc = end(db, rc, err);
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
		rc = queue(db, e, &op, err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET kind = 0 WHERE ino = ?1",
				  err, "i", (int64_t)e->ino);
	free(op.path);
	return rc;
}

static enum cfs_err remove_one(struct cfs_sql *db, uint64_t dir_ino,
			       const char *name, bool dir, uint64_t *ino,
			       struct cfs_error *err)
{
	struct mirror_entry parent, e;
	bool found = false, full = false, is_dir;
	enum cfs_err rc = visible(db, dir_ino, &parent, err);

	if (rc)
		return rc;
	rc = child(db, &parent, name, &e, &found, err);
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
	if (rc == CFS_OK)
		rc = delete_entry(db, &e, err);
	mirror_entry_release(&e);
	return rc;
}

enum cfs_err local_remove(struct cfs_sql *db, uint64_t dir_ino,
			  const char *name, bool dir, uint64_t *ino,
			  struct cfs_error *err)
{
	enum cfs_err rc = begin(db, err);

	if (rc == CFS_OK)
		rc = remove_one(db, dir_ino, name, dir, ino, err);
	return end(db, rc, err);
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
};

static enum cfs_err rename_move(struct cfs_sql *db, struct mirror_entry *e,
				const struct mirror_entry *newdir,
				int64_t new_parent, const char *newname,
				bool replaced_on_server, struct cfs_error *err)
{
	struct queued_op op = { .type = QUEUE_MOVE,
				.kind = e->kind,
				.replace = replaced_on_server };
	bool on_server;
	enum cfs_err rc = known(db, e, &on_server, err);

	(void)newdir;
	if (rc == CFS_OK && on_server)
		rc = rows_ns_path(db, e, &op.path, err);
	e->parent = new_parent;
	snprintf(e->name, sizeof(e->name), "%s", newname);
	if (rc == CFS_OK && on_server)
		rc = rows_ns_path(db, e, &op.to, err);
	if (rc == CFS_OK && on_server)
		rc = queue(db, e, &op, err);
	if (rc == CFS_OK)
		rc = rows_write(db, &e->ino, e, err);
	free(op.path);
	free(op.to);
	return rc;
}

static enum cfs_err do_rename(struct cfs_sql *db, const struct rename_args *a,
			      struct mirror_changes *ch, struct cfs_error *err)
{
	struct mirror_entry dir, newdir, e, t;
	int64_t ns, node, new_ns, new_node;
	bool found_e = false, found_t = false, inside = false, t_known = false;
	enum cfs_err rc = visible(db, a->dir_ino, &dir, err);

	(void)ch;
	if (rc)
		return rc;
	rc = visible(db, a->newdir_ino, &newdir, err);
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
		rc = cfs_name_check(a->newname, strlen(a->newname),
				    "the new name", err);
	if (rc == CFS_OK)
		rc = child(db, &dir, a->name, &e, &found_e, err);
	if (rc == CFS_OK && !found_e)
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "no entry '%s'", a->name);
	if (rc == CFS_OK)
		rc = child(db, &newdir, a->newname, &t, &found_t, err);
	if (rc == CFS_OK && found_t && t.ino == e.ino) {
		found_t = false; /* onto itself: nothing to do */
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
	if (rc == CFS_OK && found_t)
		rc = known(db, &t, &t_known, err);
	/* A target the server has goes with the move (replace); one it
	 * never had only goes here. */
	if (rc == CFS_OK && found_t && !t_known)
		rc = rows_delete(db, t.ino, err);
	if (rc == CFS_OK && found_t && t_known)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET kind = 0 WHERE ino = ?1",
				  err, "i", (int64_t)t.ino);
	if (rc == CFS_OK && found_t && t_known)
		rc = mark_dirty(db, &t, 0, err);
	if (rc == CFS_OK)
		rc = rename_move(db, &e, &newdir, new_node, a->newname,
				 found_t && t_known, err);
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
			  const char *newname, bool noreplace,
			  struct mirror_changes *ch, struct cfs_error *err)
{
	struct rename_args a = { dir_ino, newdir_ino, name, newname,
				 noreplace };
	enum cfs_err rc = begin(db, err);

	if (rc == CFS_OK)
		rc = do_rename(db, &a, ch, err);
	return end(db, rc, err);
}

enum cfs_err local_setattr(struct cfs_sql *db, uint64_t ino,
			   const uint32_t *mode, const int64_t *mtime_ns,
			   bool in_session, struct cfs_error *err)
{
	struct mirror_entry e;
	enum cfs_err rc = begin(db, err);

	if (rc == CFS_OK)
		rc = visible(db, ino, &e, err);
	if (rc) {
		end(db, rc, err);
		return rc;
	}
	if (e.kind == CFS_KIND_MOUNT)
		rc = cfs_fail(
			err, CFS_ERR_FORBIDDEN,
			"'%s' is a shared folder, whose mode and times are the server's",
			e.name);
	if (mode)
		e.mode = *mode & CFS_MODE_MASK;
	if (mtime_ns)
		e.mtime_ns = *mtime_ns;
	if (rc == CFS_OK)
		rc = rows_write(db, &e.ino, &e, err);
	if (rc == CFS_OK && !in_session)
		rc = queue_state(db, &e, err);
	mirror_entry_release(&e);
	return end(db, rc, err);
}

enum cfs_err local_write_begin(struct cfs_sql *db, uint64_t ino,
			       struct cfs_error *err)
{
	struct mirror_entry e;
	enum cfs_err rc = begin(db, err);

	if (rc == CFS_OK)
		rc = visible(db, ino, &e, err);
	if (rc == CFS_OK) {
		if (e.kind != CFS_KIND_FILE)
			rc = cfs_fail(err, CFS_ERR_IS_DIR,
				      "inode %llu is not a file",
				      (unsigned long long)ino);
		else
			rc = mark_dirty(db, &e, 1, err);
		mirror_entry_release(&e);
	}
	return end(db, rc, err);
}

enum cfs_err local_write_end(struct cfs_sql *db, uint64_t ino,
			     const struct local_content *c,
			     struct mirror_changes *ch, struct cfs_error *err)
{
	struct mirror_entry e;
	enum cfs_err rc = begin(db, err);

	if (rc == CFS_OK)
		rc = rows_by_ino(db, ino, &e, err);
	if (rc == CFS_ERR_NOT_FOUND)
		return end(db, CFS_OK, err); /* never on the server, gone */
	if (rc) {
		end(db, rc, err);
		return rc;
	}
	if (c && e.kind == CFS_KIND_FILE) {
		cfs_blocklist_release(&e.blocks);
		e.blocks = *c->blocks;
		e.size = c->size;
		e.mtime_ns = c->mtime_ns;
		rc = rows_write(db, &e.ino, &e, err);
		/* The session's count passes to the queued commit. */
		if (rc == CFS_OK)
			rc = queue_state(db, &e, err);
		if (rc == CFS_OK)
			rc = cfs_sql_exec(db,
					  "UPDATE entries SET pending ="
					  " pending - 1 WHERE ino = ?1",
					  err, "i", (int64_t)ino);
		e.blocks = (struct cfs_blocklist){ 0 };
	} else {
		rc = unpend(db, ino, ch, err);
	}
	mirror_entry_release(&e);
	return end(db, rc, err);
}

enum cfs_err queue_length(struct cfs_sql *db, int64_t *n, struct cfs_error *err)
{
	bool found;

	return cfs_sql_int64(
		db, cfs_sql_stmt(db, "SELECT COUNT(*) FROM ops", err, ""), n,
		&found, err);
}

static enum cfs_err op_from_row(sqlite3_stmt *st, struct queued_op *op,
				struct cfs_error *err)
{
	const char *to = (const char *)sqlite3_column_text(st, 6);
	const char *target = (const char *)sqlite3_column_text(st, 11);

	*op = (struct queued_op){
		.seq = sqlite3_column_int64(st, 0),
		.ino = (uint64_t)sqlite3_column_int64(st, 1),
		.ns = sqlite3_column_int64(st, 2),
		.type = (enum queue_type)sqlite3_column_int(st, 3),
		.kind = (enum cfs_kind)sqlite3_column_int(st, 4),
		.size = (uint64_t)sqlite3_column_int64(st, 7),
		.mtime_ns = sqlite3_column_int64(st, 8),
		.mode = (uint32_t)sqlite3_column_int(st, 9),
		.replace = sqlite3_column_int(st, 12) != 0,
		.tries = (unsigned)sqlite3_column_int(st, 13),
		.base_jid = sqlite3_column_int64(st, 14),
	};
	op->path = strdup((const char *)sqlite3_column_text(st, 5));
	op->to = to ? strdup(to) : NULL;
	op->target = target ? strdup(target) : NULL;
	if (!op->path || (to && !op->to) || (target && !op->target) ||
	    cfs_blocklist_from_raw(sqlite3_column_blob(st, 10),
				   (size_t)sqlite3_column_bytes(st, 10),
				   &op->blocks)) {
		queued_op_release(op);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"out of memory or a corrupt queued operation");
	}
	/* Invariant 4: files carry their base; folders and moves do not
	 * need one. */
	if (op->kind != CFS_KIND_FILE && op->kind != CFS_KIND_SYMLINK)
		op->base_jid = -1;
	if (op->type == QUEUE_MOVE)
		op->base_jid = -1;
	return CFS_OK;
}

enum cfs_err queue_batch(struct cfs_sql *db, size_t max, struct queued_op **ops,
			 size_t *n, struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db,
		"SELECT o.seq, o.ino, o.ns, o.type, o.kind, o.path, o.to_path,"
		" o.size, o.mtime_ns, o.mode, o.blocks, o.target, o.replace,"
		" o.tries, e.jid FROM ops o JOIN entries e ON e.ino = o.ino"
		" ORDER BY o.ord LIMIT ?1",
		err, "i", (int64_t)max);
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = true;

	*n = 0;
	*ops = calloc(max ? max : 1, sizeof(**ops));
	if (!*ops)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	while (rc == CFS_OK && *n < max &&
	       (rc = cfs_sql_step(db, st, &row, err)) == CFS_OK && row) {
		struct queued_op *op = &(*ops)[*n];
		bool again = false;

		if (*n > 0 && sqlite3_column_int64(st, 2) != (*ops)[0].ns)
			break;
		for (size_t i = 0; i < *n && !again; i++)
			again = (uint64_t)sqlite3_column_int64(st, 1) ==
				(*ops)[i].ino;
		if (again)
			break; /* invariant 5 */
		rc = op_from_row(st, op, err);
		if (rc == CFS_OK)
			(*n)++;
	}
	if (rc) {
		for (size_t i = 0; i < *n; i++)
			queued_op_release(&(*ops)[i]);
		free(*ops);
		*ops = NULL;
		*n = 0;
	}
	return rc;
}

static enum cfs_err dequeue(struct cfs_sql *db, const struct queued_op *op,
			    struct cfs_error *err)
{
	return cfs_sql_exec(db, "DELETE FROM ops WHERE seq = ?1", err, "i",
			    op->seq);
}

static enum cfs_err confirm(struct cfs_sql *db, const struct queued_op *op,
			    int64_t node, int64_t jid,
			    struct mirror_changes *ch, struct cfs_error *err)
{
	struct mirror_entry e;
	enum cfs_err rc = dequeue(db, op, err);

	if (rc == CFS_OK)
		rc = rows_by_ino(db, op->ino, &e, err);
	if (rc == CFS_ERR_NOT_FOUND)
		return CFS_OK;
	if (rc)
		return rc;
	if (op->type == QUEUE_DELETE) {
		/* Invariant 3: the server dropped it; so do we. */
		if (e.mount_ns)
			rc = rows_forget_ns(db, e.mount_ns, err);
		if (rc == CFS_OK && e.kind == CFS_KIND_DELETED)
			rc = rows_delete(db, e.ino, err);
		else if (rc == CFS_OK)
			rc = unpend(db, e.ino, ch, err);
		mirror_entry_release(&e);
		return rc;
	}
	/* Invariant 2: the server named the node. */
	if (op->type != QUEUE_MOVE && node > 0 && e.node != node)
		rc = rows_set_node(db, e.ino, e.ns, e.node, node, err);
	if (rc == CFS_OK && jid > e.jid)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET jid = ?2 WHERE ino = ?1",
				  err, "ii", (int64_t)e.ino, jid);
	mirror_entry_release(&e);
	return rc ? rc : unpend(db, op->ino, ch, err);
}

enum cfs_err local_confirm(struct cfs_sql *db, const struct queued_op *op,
			   int64_t node, int64_t jid, struct mirror_changes *ch,
			   struct cfs_error *err)
{
	enum cfs_err rc = begin(db, err);

	if (rc == CFS_OK)
		rc = confirm(db, op, node, jid, ch, err);
	return end(db, rc, err);
}

static enum cfs_err refuse(struct cfs_sql *db, const struct queued_op *op,
			   struct mirror_changes *ch, struct cfs_error *err)
{
	enum cfs_err rc = dequeue(db, op, err);

	if (rc == CFS_OK)
		rc = cfs_sql_exec(
			db, "UPDATE shadow SET refused = 1 WHERE ino = ?1", err,
			"i", (int64_t)op->ino);
	return rc ? rc : unpend(db, op->ino, ch, err);
}

enum cfs_err local_refuse(struct cfs_sql *db, const struct queued_op *op,
			  struct mirror_changes *ch, struct cfs_error *err)
{
	enum cfs_err rc = begin(db, err);

	if (rc == CFS_OK)
		rc = refuse(db, op, ch, err);
	return end(db, rc, err);
}

/* "NAME (conflicted copy YYYY-MM-DD).EXT", with " N" before ")" from the
 * second try; the extension is what follows the last '.' (not a leading
 * one). */
static void conflicted_name(const char *name, int n, char out[CFS_NAME_MAX + 1])
{
	const char *dot = strrchr(name, '.');
	char day[16], tag[64];
	time_t now = time(NULL);
	struct tm tm;
	size_t base, room;

	if (!dot || dot == name)
		dot = name + strlen(name);
	gmtime_r(&now, &tm);
	strftime(day, sizeof(day), "%Y-%m-%d", &tm);
	if (n > 1)
		snprintf(tag, sizeof(tag), " (conflicted copy %s %d)", day, n);
	else
		snprintf(tag, sizeof(tag), " (conflicted copy %s)", day);
	base = (size_t)(dot - name);
	room = CFS_NAME_MAX - strlen(tag) - strlen(dot);
	if (base > room)
		base = room;
	while (base && ((unsigned char)name[base] & 0xc0) == 0x80)
		base--; /* not in the middle of a character */
	if (snprintf(out, CFS_NAME_MAX + 1, "%.*s%s%s", (int)base, name, tag,
		     dot) > CFS_NAME_MAX)
		out[CFS_NAME_MAX] = '\0'; /* cannot happen: room was made */
}

static enum cfs_err copy_of(struct cfs_sql *db, const struct queued_op *op,
			    char copy[CFS_NAME_MAX + 1],
			    struct mirror_changes *ch, struct cfs_error *err)
{
	struct mirror_entry e, dir, c = { 0 }, taken;
	uint64_t dir_ino;
	bool found = true;
	enum cfs_err rc = rows_by_ino(db, op->ino, &e, err);

	if (rc)
		return rc;
	rc = mirror_parent(db, &e, &dir_ino, err);
	if (rc == CFS_OK)
		rc = visible(db, dir_ino, &dir, err);
	for (int n = 1; rc == CFS_OK && found && n < 100; n++) {
		conflicted_name(e.name, n, copy);
		rc = child(db, &dir, copy, &taken, &found, err);
		if (found)
			mirror_entry_release(&taken);
	}
	if (rc == CFS_OK && found)
		rc = cfs_fail(err, CFS_ERR_EXISTS,
			      "no free name for a conflicted copy of '%s'",
			      e.name);
	if (rc == CFS_OK) {
		c = (struct mirror_entry){
			.ns = e.ns,
			.parent = e.parent,
			.kind = op->kind,
			.size = op->size,
			.mtime_ns = op->mtime_ns,
			.mode = op->mode,
			.blocks = op->blocks,
			.target = op->target,
		};
		snprintf(c.name, sizeof(c.name), "%s", copy);
		rc = insert_new(db, &c, err);
	}
	if (rc == CFS_OK)
		rc = queue_state(db, &c, err);
	if (rc == CFS_OK)
		rc = refuse(db, op, ch, err);
	if (rc == CFS_OK)
		rc = rows_note(ch, dir_ino, 0, NULL, err);
	if (dir_ino && rc != CFS_ERR_NOT_FOUND)
		mirror_entry_release(&dir);
	mirror_entry_release(&e);
	return rc;
}

enum cfs_err local_conflicted_copy(struct cfs_sql *db,
				   const struct queued_op *op,
				   char copy[CFS_NAME_MAX + 1],
				   struct mirror_changes *ch,
				   struct cfs_error *err)
{
	enum cfs_err rc = begin(db, err);

	if (rc == CFS_OK)
		rc = copy_of(db, op, copy, ch, err);
	return end(db, rc, err);
}

enum cfs_err local_rebase(struct cfs_sql *db, const struct queued_op *op,
			  struct cfs_error *err)
{
	enum cfs_err rc = begin(db, err);

	if (rc == CFS_OK)
		rc = rows_localize(db, op->ino, err);
	if (rc == CFS_OK)
		rc = local_retry(db, op, err);
	return end(db, rc, err);
}

/* Queues the creation of folder entry e before ord. */
static enum cfs_err queue_before(struct cfs_sql *db,
				 const struct mirror_entry *e, double ord,
				 struct cfs_error *err)
{
	struct queued_op op = { .type = QUEUE_DIR,
				.kind = e->kind,
				.mtime_ns = e->mtime_ns,
				.mode = e->mode,
				.ino = e->ino,
				.ns = e->ns };
	enum cfs_err rc = rows_ns_path(db, e, &op.path, err);

	if (rc == CFS_OK)
		rc = enqueue(db, &op, ord, err);
	if (rc == CFS_OK)
		rc = mark_dirty(db, e, 1, err);
	free(op.path);
	return rc;
}

/* The ord of op, and the one of the operation queued before it (or one
 * less when none is). */
static enum cfs_err ords_around(struct cfs_sql *db, const struct queued_op *op,
				double *prev, double *ord,
				struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		db,
		"SELECT o.ord, (SELECT MAX(p.ord) FROM ops p WHERE p.ord < o.ord)"
		" FROM ops o WHERE o.seq = ?1",
		err, "i", op->seq);
	enum cfs_err rc;
	bool row = false;

	rc = st ? cfs_sql_step(db, st, &row, err) : err->code;
	if (rc == CFS_OK && !row)
		return cfs_fail(err, CFS_ERR_NOT_FOUND,
				"operation %lld is not queued",
				(long long)op->seq);
	if (rc == CFS_OK) {
		*ord = sqlite3_column_double(st, 0);
		*prev = sqlite3_column_type(st, 1) == SQLITE_NULL
				? *ord - 1
				: sqlite3_column_double(st, 1);
	}
	return rc;
}

static enum cfs_err recreate_parents(struct cfs_sql *db,
				     const struct queued_op *op,
				     struct cfs_error *err)
{
	uint64_t chain[CFS_PATH_MAX / 2];
	struct mirror_entry e;
	size_t depth = 0;
	double prev = 0, ord = 0;
	enum cfs_err rc = ords_around(db, op, &prev, &ord, err);

	if (rc == CFS_OK)
		rc = rows_by_ino(db, op->ino, &e, err);
	if (rc)
		return rc;
	/* The folders from e's parent up to its namespace's root. */
	while (rc == CFS_OK && e.parent != 0 && depth < CFS_PATH_MAX / 2) {
		uint64_t up;

		rc = mirror_parent(db, &e, &up, err);
		mirror_entry_release(&e);
		if (rc == CFS_OK)
			rc = rows_by_ino(db, up, &e, err);
		if (rc == CFS_OK)
			chain[depth++] = up;
	}
	if (rc == CFS_OK)
		mirror_entry_release(&e);
	/* Root first, all between the previous operation and op. */
	for (size_t i = 0; rc == CFS_OK && i < depth; i++) {
		rc = rows_by_ino(db, chain[depth - 1 - i], &e, err);
		if (rc == CFS_OK)
			rc = queue_before(db, &e,
					  prev + (ord - prev) *
							  (double)(i + 1) /
							  (double)(depth + 1),
					  err);
		if (rc == CFS_OK)
			mirror_entry_release(&e);
	}
	return rc;
}

enum cfs_err local_recreate_parents(struct cfs_sql *db,
				    const struct queued_op *op,
				    struct cfs_error *err)
{
	enum cfs_err rc = begin(db, err);

	if (rc == CFS_OK)
		rc = recreate_parents(db, op, err);
	if (rc == CFS_OK)
		rc = local_retry(db, op, err);
	return end(db, rc, err);
}

enum cfs_err local_retry(struct cfs_sql *db, const struct queued_op *op,
			 struct cfs_error *err)
{
	return cfs_sql_exec(db,
			    "UPDATE ops SET tries = tries + 1 WHERE seq = ?1",
			    err, "i", op->seq);
}
