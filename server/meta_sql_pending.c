/*
 * Pending block lists of the SQL backend: what streaming sync shows the
 * members of a namespace while a large file's blocks are still going up
 * (cloudfs-protocol(7), "Pending block lists"; invariants 7 and 8 of
 * meta_sql.h).
 *
 * The Dropship rule holds as it does for committed files: a pending
 * block is shown, and may be downloaded, only by a member of the list's
 * namespace, and only once the list's own user uploaded it (the server
 * then holds it and checked its hash).  A block the committer never sent
 * (one the server holds from someone else) is never ready: listing a
 * hash in a commit gives nobody its bytes.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meta_sql.h"

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

enum cfs_err sq_pending_expire(struct sq_conn *c, struct cfs_error *err)
{
	int64_t now = now_s();
	enum cfs_err rc =
		db_exec(c->db,
			"DELETE FROM pending_blocks WHERE pending IN"
			" (SELECT id FROM pending WHERE expires <= ?1)",
			err, "i", now);

	return rc ? rc
		  : db_exec(c->db, "DELETE FROM pending WHERE expires <= ?1",
			    err, "i", now);
}

enum cfs_err sq_pending_drop(struct sq_conn *c, int64_t ns, int64_t user,
			     const char *path, struct cfs_error *err)
{
	int64_t id;
	bool found = false;
	enum cfs_err rc = db_int64(
		c->db,
		db_stmt(c->db,
			"SELECT id FROM pending WHERE ns = ?1 AND user_id = ?2"
			" AND path = ?3",
			err, "iit", ns, user, path),
		&id, &found, err);

	/* Almost every commit has none: one indexed read, no write. */
	if (rc || !found)
		return rc;
	rc = db_exec(c->db, "DELETE FROM pending_blocks WHERE pending = ?1",
		     err, "i", id);
	return rc ? rc
		  : db_exec(c->db, "DELETE FROM pending WHERE id = ?1", err,
			    "i", id);
}

enum cfs_err sq_pending_record(struct sq_conn *c, int64_t ns, int64_t user,
			       const struct meta_op *op,
			       const struct cfs_blocklist *need,
			       struct cfs_error *err)
{
	int64_t list;
	bool found = false;
	size_t j = 0;
	enum cfs_err rc = sq_pending_expire(c, err);

	if (rc == CFS_OK)
		rc = sq_pending_drop(c, ns, user, op->path, err);
	if (rc == CFS_OK)
		rc = db_int64(c->db,
			      db_stmt(c->db,
				      "INSERT INTO pending(ns, path, user_id,"
				      " expires) VALUES (?1, ?2, ?3, ?4)"
				      " RETURNING id",
				      err, "itii", ns, op->path, user,
				      now_s() + c->pending_ttl_s),
			      &list, &found, err);
	if (rc == CFS_OK && !found)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"no id for the pending list of '%s'", op->path);
	/* need is the subsequence of op->blocks the user could not read, in
	 * order (duplicates too), so one walk gives each its length. */
	for (size_t i = 0; rc == CFS_OK && i < op->blocks.n && j < need->n;
	     i++) {
		if (!cfs_block_id_equal(&op->blocks.ids[i], &need->ids[j]))
			continue;
		rc = db_exec(
			c->db,
			"INSERT INTO pending_blocks(pending, idx, id, size,"
			" ready) VALUES (?1, ?2, ?3, ?4, 0)",
			err, "iibi", list, (int64_t)j, need->ids[j].b,
			(size_t)CFS_BLOCK_ID_LEN,
			(int64_t)cfs_block_len(op->size, i));
		j++;
	}
	return rc;
}

enum cfs_err sq_pending_landed(struct sq_conn *c, int64_t user,
			       const struct cfs_block_id *id,
			       struct cfs_error *err)
{
	int64_t ns[SQ_MAX_CHANGED], ready = 0, now = now_s();
	size_t n = 0;
	bool row = true, found = false;
	enum cfs_err rc = CFS_OK;
	struct db_stmt *st =
		db_stmt(c->db,
			"SELECT DISTINCT p.ns FROM pending_blocks b"
			" JOIN pending p ON p.id = b.pending"
			" WHERE b.id = ?1 AND b.ready = 0 AND p.user_id = ?2"
			" AND p.expires > ?3",
			err, "bii", id->b, (size_t)CFS_BLOCK_ID_LEN, user, now);

	if (!st)
		return err->code;
	while (n < SQ_MAX_CHANGED &&
	       (rc = db_step(c->db, st, &row, err)) == CFS_OK && row)
		ns[n++] = db_col_int64(c->db, st, 0);
	db_reset(c->db, st);
	/* An upload no pending list waits for (nearly all): one read. */
	if (rc || n == 0)
		return rc;
	rc = db_int64(c->db,
		      db_stmt(c->db,
			      "UPDATE pending_seq SET n = n + 1 RETURNING n",
			      err, ""),
		      &ready, &found, err);
	if (rc == CFS_OK && !found)
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "no pending cursor");
	if (rc == CFS_OK)
		rc = db_exec(c->db,
			     "UPDATE pending_blocks SET ready = ?4"
			     " WHERE id = ?1 AND ready = 0 AND pending IN"
			     " (SELECT id FROM pending WHERE user_id = ?2"
			     " AND expires > ?3)",
			     err, "biii", id->b, (size_t)CFS_BLOCK_ID_LEN, user,
			     now, ready);
	/* A list whose blocks keep landing is alive: its expiry counts
	 * from the last one, so a slow upload keeps streaming. */
	if (rc == CFS_OK)
		rc = db_exec(c->db,
			     "UPDATE pending SET expires = ?4"
			     " WHERE user_id = ?2 AND expires > ?3 AND id IN"
			     " (SELECT pending FROM pending_blocks"
			     " WHERE id = ?1)",
			     err, "biii", id->b, (size_t)CFS_BLOCK_ID_LEN, user,
			     now, now + c->pending_ttl_s);
	for (size_t i = 0; rc == CFS_OK && i < n; i++)
		sq_changed(c, ns[i]);
	return rc;
}

enum cfs_err sq_pending_readable(struct sq_conn *c, int64_t user,
				 const struct cfs_block_id *id, bool *ok,
				 struct cfs_error *err)
{
	int64_t one;

	return db_int64(
		c->db,
		db_stmt(c->db,
			"SELECT 1 FROM pending_blocks b"
			" JOIN pending p ON p.id = b.pending"
			" JOIN members m ON m.ns = p.ns"
			" AND m.user_id = ?2"
			" WHERE b.id = ?1 AND b.ready > 0"
			" AND p.expires > ?3"
			" AND EXISTS (SELECT 1 FROM blocks WHERE id = ?1)",
			err, "bii", id->b, (size_t)CFS_BLOCK_ID_LEN, user,
			now_s()),
		&one, ok, err);
}

struct pending_args {
	const struct meta_user *user;
	const int64_t *ns;
	size_t n;
	int64_t after;
	meta_pending_fn fn;
	void *arg;
	int64_t *cursor;
};

static bool watched(const struct pending_args *a, int64_t ns)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->ns[i] == ns)
			return true;
	return false;
}

static enum cfs_err read_pending(struct sq_conn *c, void *arg,
				 struct cfs_error *err)
{
	struct pending_args *a = arg;
	int64_t last = a->after, first = 0, seq = 0;
	size_t taken = 0;
	bool row = true, found = false;
	enum cfs_err rc;
	struct db_stmt *st;

	/* Read first, in the same snapshot: the rows below are all there
	 * is up to it (invariant 7). */
	rc = db_int64(c->db,
		      db_stmt(c->db, "SELECT n FROM pending_seq", err, ""),
		      &seq, &found, err);
	if (rc)
		return rc;
	*a->cursor = seq > a->after ? seq : a->after;
	if (seq <= a->after)
		return CFS_OK;
	st = db_stmt(c->db,
		     "SELECT p.id, p.ns, p.path, p.expires, b.id, b.size,"
		     " b.ready FROM pending_blocks b"
		     " JOIN pending p ON p.id = b.pending"
		     " JOIN members m ON m.ns = p.ns AND m.user_id = ?1"
		     " WHERE b.ready > ?2 AND b.ready <= ?3 AND p.expires > ?4"
		     " AND EXISTS (SELECT 1 FROM blocks k WHERE k.id = b.id)"
		     " ORDER BY b.ready, p.id, b.idx",
		     err, "iiii", a->user->id, a->after, seq, now_s());
	if (!st)
		return err->code;
	while ((rc = db_step(c->db, st, &row, err)) == CFS_OK && row) {
		struct meta_pending p = {
			.list = db_col_int64(c->db, st, 0),
			.ns = db_col_int64(c->db, st, 1),
			.path = db_col_text(c->db, st, 2),
			.expires = db_col_int64(c->db, st, 3),
			.size = (uint32_t)db_col_int64(c->db, st, 5),
		};
		int64_t ready = db_col_int64(c->db, st, 6);
		size_t len;
		const void *raw = db_col_blob(c->db, st, 4, &len);

		if (!watched(a, p.ns) || !p.path || len != CFS_BLOCK_ID_LEN)
			continue;
		/* Full: the next call goes on from where this one stopped
		 * (cut inside a landing, that landing comes again whole).
		 * A landing is one block: one that fills the answer alone
		 * (a file listing that block more often than an answer
		 * holds) would come again whole at every call, so the rest
		 * of it, that same block again, is passed over. */
		if (taken == META_PENDING_MAX) {
			*a->cursor = ready != last || first == last ? last
								    : last - 1;
			break;
		}
		if (!taken)
			first = ready;
		memcpy(p.id.b, raw, CFS_BLOCK_ID_LEN);
		rc = a->fn(a->arg, &p, err);
		if (rc)
			break;
		last = ready;
		taken++;
	}
	db_reset(c->db, st);
	return rc;
}

enum cfs_err sq_pending(struct meta *m, const struct meta_user *user,
			const int64_t *ns, size_t n, int64_t after,
			meta_pending_fn fn, void *arg, int64_t *cursor,
			struct cfs_error *err)
{
	struct pending_args a = { .user = user,
				  .ns = ns,
				  .n = n,
				  .after = after,
				  .fn = fn,
				  .arg = arg,
				  .cursor = cursor };

	return sq_run(m, false, read_pending, &a, err);
}
