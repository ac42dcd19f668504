/*
 * Garbage collection of the SQL backend (meta_ops.gc): a mark and sweep
 * inside one write transaction, so that no commit runs between the mark
 * and the sweep.  A commit after it finds a forgotten block missing
 * (meta_sql.c, sq_block_available) and asks for it again.  The forgotten
 * blocks are told of once the transaction committed: an engine may run
 * it more than once (meta_sql.h, sq_run).
 *
 * Uploads and gc, across processes.  Several servers share one database
 * and one block store, and an upload stores a block's bytes before it
 * records the block (blocks_added): between the two, the database does
 * not know of the upload, and a gc that forgot the block may still be
 * about to delete those bytes.  So each block has an advisory lock
 * (db_lock(), keyed by the first 8 bytes of its id; two blocks that
 * share a key only wait for each other):
 *  1. An upload holds its blocks' locks shared from before it stores
 *     the bytes until its record is committed, on the connection that
 *     commits it (sq_blocks_hold).
 *  2. gc takes a block's lock exclusively, without waiting, before it
 *     forgets the block, and holds it until its bytes are deleted
 *     (sq_gc); a block whose lock is taken is being uploaded, and is
 *     kept this time.
 * Then an upload of block X and gc of X are ordered by X's lock.  If the
 * upload holds it first, gc keeps X.  If gc holds it first, the upload
 * stores X's bytes only after gc deleted them, and records X anew.  If
 * the upload let go before gc's try (its record committed), but after
 * gc's snapshot: the record updated X's row (its stored time), which
 * gc's SERIALIZABLE transaction then cannot delete (a collision: it runs
 * again and sees the new row), or X had no row in gc's snapshot and gc
 * does not touch it.  A commit that lists X without uploading it reads
 * X's row, which gc deletes, while gc reads the lists the commit
 * writes: SERIALIZABLE lets only one of them commit.
 * The locks are the connection's (not the transaction's) so that gc
 * keeps them past its commit, until the deletes; gc checks the
 * connection still holds them before each delete (a lost connection
 * takes its locks with it: the bytes then stay, listed by nobody).  What
 * this cannot cover: the database restarting during one delete, while
 * an upload of that very block stores and records it.
 * Each lock takes a slot of PostgreSQL's shared lock table
 * (max_locks_per_transaction times max_connections): gc locks at most
 * SQ_GC_BATCH blocks a round and runs rounds until none is left.  On
 * SQLite the locks are granted at once: one process owns the database,
 * and its uploads and gc exclude each other in it (server/gc.h).
 */
#include <string.h>

#include "cloudfs/blockset.h"
#include "meta_sql.h"

/* The most blocks one round of gc forgets (and locks). */
#define SQ_GC_BATCH 256

static int64_t block_key(const struct cfs_block_id *id)
{
	uint64_t key = 0;

	for (int i = 0; i < 8; i++)
		key = key << 8 | id->b[i];
	return (int64_t)key;
}

enum cfs_err sq_blocks_hold(struct db_conn *db, const struct cfs_block_id *ids,
			    size_t n, struct cfs_error *err)
{
	enum cfs_err rc = CFS_OK;

	/* Shared locks never wait for each other, and gc never waits for
	 * one: taken in any order, they cannot deadlock. */
	for (size_t i = 0; rc == CFS_OK && i < n; i++)
		rc = db_lock(db, DB_LOCK_SHARED, block_key(&ids[i]), NULL, err);
	return rc;
}

void sq_blocks_let_go(struct db_conn *db)
{
	struct cfs_error ignored;

	/* A failure: the connection is lost, and its locks with it. */
	db_lock(db, DB_UNLOCK_ALL, 0, NULL, &ignored);
}

struct gc_args {
	int64_t before;
	meta_block_fn fn;
	void *arg;
	struct meta_gc_tally *t;
	struct cfs_blockset dead; /* forgotten by the last try */
	bool more; /* the last try left blocks to the next round */
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

/* Takes garbage block id's lock, if no upload holds it (*dead), and adds
 * it to the blocks to forget. */
static enum cfs_err lock_dead(struct sq_conn *c, struct gc_args *a,
			      const struct cfs_block_id *id, bool *dead,
			      struct cfs_error *err)
{
	enum cfs_err rc = db_lock(c->db, DB_LOCK_TRY, block_key(id), dead, err);

	if (rc == CFS_OK && *dead)
		rc = cfs_blockset_add_raw(&a->dead, id->b, CFS_BLOCK_ID_LEN,
					  err);
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
		bool dead = false;
		uint64_t size = (uint64_t)db_col_int64(c->db, st, 1);
		size_t len;
		const void *raw = db_col_blob(c->db, st, 0, &len);

		if (len != CFS_BLOCK_ID_LEN)
			continue;
		memcpy(id.b, raw, CFS_BLOCK_ID_LEN);
		if (!cfs_blockset_has(live, &id) &&
		    db_col_int64(c->db, st, 2) < a->before) {
			if (a->dead.n == SQ_GC_BATCH)
				a->more = true;
			else
				rc = lock_dead(c, a, &id, &dead, err);
		}
		if (!dead) {
			a->t->live_blocks++;
			a->t->live_bytes += size;
			continue;
		}
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
	a->more = false;
	if (rc == CFS_OK)
		rc = listed(c, &live, err);
	if (rc == CFS_OK)
		rc = sweep(c, a, &live, err);
	cfs_blockset_release(&live);
	return rc;
}

/* One round: forgets up to SQ_GC_BATCH blocks on db, then tells fn of
 * them while db still holds their locks.  *more: blocks are left. */
static enum cfs_err gc_round(struct meta *m, struct db_conn *db,
			     struct gc_args *a, bool *more,
			     struct cfs_error *err)
{
	enum cfs_err rc = sq_run_on(m, db, true, collect, a, err);

	/* Checked before each delete, so that a lost connection (the
	 * database restarted) risks at most the delete under way. */
	for (size_t i = 0; rc == CFS_OK && i < a->dead.n; i++) {
		bool held = false;

		rc = db_lock(db, DB_LOCK_HELD, 0, &held, err);
		if (rc == CFS_OK && !held)
			rc = cfs_fail(
				err, CFS_ERR_UNAVAILABLE,
				"lost the connection to the metadata store that held the locks of %zu forgotten blocks: their bytes stay, listed by nobody",
				a->dead.n - i);
		if (rc == CFS_OK)
			a->fn(a->arg, &a->dead.v[i]);
	}
	sq_blocks_let_go(db);
	*more = rc == CFS_OK && a->more;
	return rc;
}

enum cfs_err sq_gc(struct meta *m, int64_t before, meta_block_fn fn, void *arg,
		   struct meta_gc_tally *t, struct cfs_error *err)
{
	struct db_conn *db = sq_acquire(m, err);
	enum cfs_err rc = db ? CFS_OK : err->code;
	bool more = db != NULL;

	*t = (struct meta_gc_tally){ 0 };
	while (more) {
		struct meta_gc_tally round = { 0 };
		struct gc_args a = {
			.before = before, .fn = fn, .arg = arg, .t = &round
		};

		rc = gc_round(m, db, &a, &more, err);
		cfs_blockset_release(&a.dead);
		t->journal_rows += round.journal_rows;
		t->blocks += round.blocks;
		t->bytes += round.bytes;
		/* What the last round kept is what stays. */
		t->live_blocks = round.live_blocks;
		t->live_bytes = round.live_bytes;
	}
	if (db)
		db_release(db);
	return rc;
}
