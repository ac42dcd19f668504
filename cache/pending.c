/*
 * The bookkeeping of entries with local changes (cache/pending.h).
 */
#include <assert.h>
#include <stdlib.h>

#include "cache/pending.h"
#include "cache/rows.h"

enum cfs_err pending_mark(struct cfs_sql *db, const struct mirror_entry *e,
			  int delta, struct cfs_error *err)
{
	enum cfs_err rc = CFS_OK;

	assert(cfs_sql_in_transaction(db) && e->ino && e->pending + delta >= 0);
	if (e->pending == 0)
		rc = rows_shadow_put(db, e->ino, e, err);
	if (rc == CFS_OK)
		rc = cfs_sql_exec(db,
				  "UPDATE entries SET pending = pending + ?2"
				  " WHERE ino = ?1",
				  err, "ii", (int64_t)e->ino, (int64_t)delta);
	return rc;
}

enum cfs_err pending_enqueue(struct cfs_sql *db, const struct queued_op *op,
			     double ord, struct cfs_error *err)
{
	assert(cfs_sql_in_transaction(db));
	return cfs_sql_exec(
		db,
		"INSERT INTO ops(ord, ino, ns, type, kind, path, to_path, size,"
		" mtime_ns, mode, blocks, target, replace, atime_ns, ctime_ns)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
		" ?13, ?14, ?15)",
		err, "diiiittiiibtiii", ord, (int64_t)op->ino, op->ns,
		(int64_t)op->type, (int64_t)op->kind, op->path, op->to,
		(int64_t)op->size, op->mtime_ns, (int64_t)op->mode,
		(const void *)op->blocks.ids, op->blocks.n * CFS_BLOCK_ID_LEN,
		op->target, (int64_t)op->replace, op->atime_ns, op->ctime_ns);
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

/* Queues op on entry e, last (op's ino and ns are set). */
static enum cfs_err queue_last(struct cfs_sql *db, const struct mirror_entry *e,
			       struct queued_op *op, struct cfs_error *err)
{
	double ord = 0;
	enum cfs_err rc = next_ord(db, &ord, err);

	assert(cfs_sql_in_transaction(db));
	op->ino = e->ino;
	op->ns = e->ns;
	return rc ? rc : pending_enqueue(db, op, ord, err);
}

enum cfs_err pending_queue(struct cfs_sql *db, const struct mirror_entry *e,
			   struct queued_op *op, struct cfs_error *err)
{
	enum cfs_err rc = queue_last(db, e, op, err);

	return rc ? rc : pending_mark(db, e, 1, err);
}

/* Queues the operation that carries e's whole state; counted says that
 * e's count has it already. */
static enum cfs_err queue_state(struct cfs_sql *db,
				const struct mirror_entry *e, bool counted,
				struct cfs_error *err)
{
	struct queued_op op = {
		.type = e->kind == CFS_KIND_DIR	       ? QUEUE_DIR
			: e->kind == CFS_KIND_SYMLINK  ? QUEUE_SYMLINK
			: cfs_kind_is_special(e->kind) ? QUEUE_SPECIAL
						       : QUEUE_FILE,
		.kind = e->kind,
		.size = e->size,
		.atime_ns = e->atime_ns,
		.mtime_ns = e->mtime_ns,
		.ctime_ns = e->ctime_ns,
		.mode = e->mode,
		.blocks = e->blocks,
		.target = e->target,
	};
	enum cfs_err rc = rows_ns_path(db, e, &op.path, err);

	assert(cfs_sql_in_transaction(db));
	if (rc == CFS_OK)
		rc = counted ? queue_last(db, e, &op, err)
			     : pending_queue(db, e, &op, err);
	free(op.path);
	return rc;
}

enum cfs_err pending_queue_state(struct cfs_sql *db,
				 const struct mirror_entry *e,
				 struct cfs_error *err)
{
	return queue_state(db, e, false, err);
}

enum cfs_err pending_pass_state(struct cfs_sql *db,
				const struct mirror_entry *e,
				struct cfs_error *err)
{
	/* An entry with no count to pass gets the operation counted as any
	 * other: invariant 1 holds either way. */
	return queue_state(db, e, e->pending > 0, err);
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

enum cfs_err pending_done(struct cfs_sql *db, uint64_t ino,
			  struct mirror_changes *ch, struct cfs_error *err)
{
	enum cfs_err rc;

	assert(cfs_sql_in_transaction(db) && ino);
	rc = cfs_sql_exec(db,
			  "UPDATE entries SET pending = pending - 1"
			  " WHERE ino = ?1 AND pending > 0",
			  err, "i", (int64_t)ino);
	return rc ? rc : settle(db, ino, ch, err);
}

enum cfs_err pending_insert_new(struct cfs_sql *db, struct mirror_entry *e,
				struct cfs_error *err)
{
	struct mirror_entry s;
	enum cfs_err rc;

	assert(cfs_sql_in_transaction(db));
	e->jid = 0;
	rc = rows_insert_new(db, e, err);
	s = *e;
	s.kind = CFS_KIND_DELETED;
	s.blocks = (struct cfs_blocklist){ 0 };
	s.target = NULL;
	if (rc == CFS_OK)
		rc = rows_shadow_put(db, e->ino, &s, err);
	return rc;
}
