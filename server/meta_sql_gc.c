/*
 * Garbage collection of the SQL backend (meta_ops.gc): a mark and sweep
 * inside one write transaction, so that no commit runs between the mark
 * and the sweep.  A commit after it finds a forgotten block missing
 * (meta_sql.c, sq_block_available) and asks for it again.  The forgotten
 * blocks are told of once the transaction committed: an engine may run
 * it more than once (meta_sql.h, sq_run).
 */
#include <string.h>

#include "cloudfs/blockset.h"
#include "meta_sql.h"

struct gc_args {
	int64_t before;
	meta_block_fn fn;
	void *arg;
	struct meta_gc_tally *t;
	struct cfs_blockset dead; /* forgotten by the last try */
};

/* Drops the journal rows a later row of their node superseded before
 * `before`.  The last row of a node, its current state or its delete,
 * is never superseded. */
static enum cfs_err compact(struct sq_conn *c, const struct gc_args *a,
			    struct cfs_error *err)
{
	enum cfs_err rc = db_exec(
		c->db,
		"DELETE FROM journal AS j WHERE EXISTS (SELECT 1 FROM journal n"
		" WHERE n.ns = j.ns AND n.node = j.node AND n.jid > j.jid"
		" AND n.at < ?1)",
		err, "i", a->before);

	if (rc == CFS_OK)
		a->t->journal_rows = db_changes(c->db);
	/* States from before it may lack rows now (meta_ops.list_as_of). */
	if (rc == CFS_OK)
		rc = db_exec(c->db,
			     "UPDATE gc_horizon SET at = ?1 WHERE at < ?1", err,
			     "i", a->before);
	return rc;
}

/* Adds the block lists of the rows of st to live. */
static enum cfs_err add_lists(struct sq_conn *c, struct db_stmt *st,
			      struct cfs_blockset *live, struct cfs_error *err)
{
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = true;

	while (rc == CFS_OK && (rc = db_step(c->db, st, &row, err)) == CFS_OK &&
	       row) {
		size_t len;
		const void *raw = db_col_blob(c->db, st, 0, &len);

		rc = cfs_blockset_add_raw(live, raw, len, err);
	}
	if (st)
		db_reset(c->db, st);
	return rc;
}

/* Marks: every block a live file or a journal row of a file lists. */
static enum cfs_err listed(struct sq_conn *c, struct cfs_blockset *live,
			   struct cfs_error *err)
{
	static const char *const sql[] = {
		"SELECT blocks FROM nodes WHERE kind = 1 AND blocks IS NOT NULL",
		"SELECT blocks FROM journal WHERE kind = 1 AND blocks IS NOT NULL",
	};
	enum cfs_err rc = CFS_OK;

	for (size_t i = 0; rc == CFS_OK && i < 2; i++)
		rc = add_lists(c, db_stmt(c->db, sql[i], err, ""), live, err);
	if (rc == CFS_OK)
		cfs_blockset_seal(live);
	return rc;
}

/* Forgets block id: its row, who uploaded it, where it was referenced,
 * that it landed for a pending list. */
static enum cfs_err forget(struct sq_conn *c, const struct cfs_block_id *id,
			   struct cfs_error *err)
{
	static const char *const sql[] = {
		"DELETE FROM blocks WHERE id = ?1",
		"DELETE FROM block_owners WHERE id = ?1",
		"DELETE FROM block_refs WHERE id = ?1",
		/* Not landed any more (invariant 7): an upload again
		 * makes it so. */
		"UPDATE pending_blocks SET ready = 0 WHERE id = ?1",
	};
	enum cfs_err rc = CFS_OK;

	for (size_t i = 0; rc == CFS_OK && i < 4; i++)
		rc = db_exec(c->db, sql[i], err, "b", id->b,
			     (size_t)CFS_BLOCK_ID_LEN);
	return rc;
}

/* Sweeps: the blocks neither listed nor uploaded lately.  They are read
 * first, then forgotten, so that no statement reads the table it
 * deletes from. */
static enum cfs_err sweep(struct sq_conn *c, struct gc_args *a,
			  const struct cfs_blockset *live,
			  struct cfs_error *err)
{
	struct db_stmt *st =
		db_stmt(c->db, "SELECT id, size, stored FROM blocks", err, "");
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = true;

	while (rc == CFS_OK && (rc = db_step(c->db, st, &row, err)) == CFS_OK &&
	       row) {
		struct cfs_block_id id;
		uint64_t size = (uint64_t)db_col_int64(c->db, st, 1);
		size_t len;
		const void *raw = db_col_blob(c->db, st, 0, &len);

		if (len != CFS_BLOCK_ID_LEN)
			continue;
		memcpy(id.b, raw, CFS_BLOCK_ID_LEN);
		if (cfs_blockset_has(live, &id) ||
		    db_col_int64(c->db, st, 2) >= a->before) {
			a->t->live_blocks++;
			a->t->live_bytes += size;
			continue;
		}
		rc = cfs_blockset_add_raw(&a->dead, id.b, CFS_BLOCK_ID_LEN,
					  err);
		a->t->blocks++;
		a->t->bytes += size;
	}
	if (st)
		db_reset(c->db, st);
	for (size_t i = 0; rc == CFS_OK && i < a->dead.n; i++)
		rc = forget(c, &a->dead.v[i], err);
	return rc;
}

static enum cfs_err collect(struct sq_conn *c, void *arg, struct cfs_error *err)
{
	struct gc_args *a = arg;
	struct cfs_blockset live = { 0 };
	enum cfs_err rc = sq_pending_expire(c, err);

	if (rc == CFS_OK)
		rc = compact(c, a, err);

	*a->t = (struct meta_gc_tally){ .journal_rows = a->t->journal_rows };
	cfs_blockset_release(&a->dead);
	if (rc == CFS_OK)
		rc = listed(c, &live, err);
	if (rc == CFS_OK)
		rc = sweep(c, a, &live, err);
	cfs_blockset_release(&live);
	return rc;
}

enum cfs_err sq_gc(struct meta *m, int64_t before, meta_block_fn fn, void *arg,
		   struct meta_gc_tally *t, struct cfs_error *err)
{
	struct gc_args a = { .before = before, .fn = fn, .arg = arg, .t = t };

	enum cfs_err rc;

	*t = (struct meta_gc_tally){ 0 };
	rc = sq_run(m, true, collect, &a, err);
	for (size_t i = 0; rc == CFS_OK && i < a.dead.n; i++)
		fn(arg, &a.dead.v[i]);
	cfs_blockset_release(&a.dead);
	return rc;
}
