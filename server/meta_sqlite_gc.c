/*
 * Garbage collection of the embedded store (meta_ops.gc): a mark and sweep
 * inside one write transaction, so that no commit runs between the mark
 * and the sweep.  A commit after it finds a forgotten block missing
 * (meta_sqlite.c, sq_block_available) and asks for it again.
 */
#include <string.h>

#include "cloudfs/blockset.h"
#include "meta_sqlite.h"

struct gc_args {
	int64_t before;
	meta_block_fn fn;
	void *arg;
	struct meta_gc_tally *t;
};

/* Drops the journal rows a later row of their node superseded before
 * `before`.  The last row of a node, its current state or its delete,
 * is never superseded. */
static enum cfs_err compact(struct sq_conn *c, const struct gc_args *a,
			    struct cfs_error *err)
{
	enum cfs_err rc = cfs_sql_exec(
		&c->sql,
		"DELETE FROM journal AS j WHERE EXISTS (SELECT 1 FROM journal n"
		" WHERE n.ns = j.ns AND n.node = j.node AND n.jid > j.jid"
		" AND n.at < ?1)",
		err, "i", a->before);

	if (rc == CFS_OK)
		a->t->journal_rows = (uint64_t)sqlite3_changes(c->sql.db);
	/* States from before it may lack rows now (meta_ops.list_as_of). */
	if (rc == CFS_OK)
		rc = cfs_sql_exec(&c->sql,
				  "UPDATE gc_horizon SET at = max(at, ?1)", err,
				  "i", a->before);
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

	for (size_t i = 0; rc == CFS_OK && i < 2; i++) {
		sqlite3_stmt *st = cfs_sql_stmt(&c->sql, sql[i], err, "");
		bool row = true;

		rc = st ? CFS_OK : err->code;
		while (rc == CFS_OK &&
		       (rc = cfs_sql_step(&c->sql, st, &row, err)) == CFS_OK &&
		       row)
			rc = cfs_blockset_add_raw(
				live, sqlite3_column_blob(st, 0),
				(size_t)sqlite3_column_bytes(st, 0), err);
		if (st)
			sqlite3_reset(st);
	}
	if (rc == CFS_OK)
		cfs_blockset_seal(live);
	return rc;
}

/* Forgets block id: its row, who uploaded it, where it was referenced. */
static enum cfs_err forget(struct sq_conn *c, const struct cfs_block_id *id,
			   struct cfs_error *err)
{
	static const char *const sql[] = {
		"DELETE FROM blocks WHERE id = ?1",
		"DELETE FROM block_owners WHERE id = ?1",
		"DELETE FROM block_refs WHERE id = ?1",
	};
	enum cfs_err rc = CFS_OK;

	for (size_t i = 0; rc == CFS_OK && i < 3; i++)
		rc = cfs_sql_exec(&c->sql, sql[i], err, "b", id->b,
				  (size_t)CFS_BLOCK_ID_LEN);
	return rc;
}

/* Sweeps: the blocks neither listed nor uploaded lately.  They are read
 * first, then forgotten, so that no statement reads the table it
 * deletes from. */
static enum cfs_err sweep(struct sq_conn *c, const struct gc_args *a,
			  const struct cfs_blockset *live,
			  struct cfs_error *err)
{
	struct cfs_blockset dead = { 0 };
	sqlite3_stmt *st = cfs_sql_stmt(
		&c->sql, "SELECT id, size, stored FROM blocks", err, "");
	enum cfs_err rc = st ? CFS_OK : err->code;
	bool row = true;

	while (rc == CFS_OK &&
	       (rc = cfs_sql_step(&c->sql, st, &row, err)) == CFS_OK && row) {
		struct cfs_block_id id;
		uint64_t size = (uint64_t)sqlite3_column_int64(st, 1);

		if (sqlite3_column_bytes(st, 0) != CFS_BLOCK_ID_LEN)
			continue;
		memcpy(id.b, sqlite3_column_blob(st, 0), CFS_BLOCK_ID_LEN);
		if (cfs_blockset_has(live, &id) ||
		    sqlite3_column_int64(st, 2) >= a->before) {
			a->t->live_blocks++;
			a->t->live_bytes += size;
			continue;
		}
		rc = cfs_blockset_add_raw(&dead, id.b, CFS_BLOCK_ID_LEN, err);
		a->t->blocks++;
		a->t->bytes += size;
	}
	if (st)
		sqlite3_reset(st);
	for (size_t i = 0; rc == CFS_OK && i < dead.n; i++)
		rc = forget(c, &dead.v[i], err);
	for (size_t i = 0; rc == CFS_OK && i < dead.n; i++)
		a->fn(a->arg, &dead.v[i]);
	cfs_blockset_release(&dead);
	return rc;
}

static enum cfs_err collect(struct sq_conn *c, void *arg, struct cfs_error *err)
{
	struct gc_args *a = arg;
	struct cfs_blockset live = { 0 };
	enum cfs_err rc = compact(c, a, err);

	*a->t = (struct meta_gc_tally){ .journal_rows = a->t->journal_rows };
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

	*t = (struct meta_gc_tally){ 0 };
	return sq_run(m, true, collect, &a, err);
}
