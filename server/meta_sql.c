/*
 * The SQL metadata backend: its transactions, and the users, tokens and
 * block index.  The schema and its invariants are described in
 * meta_sql.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "meta_sql.h"

void sq_changed(struct sq_conn *c, int64_t ns)
{
	for (size_t i = 0; i < c->n_changed; i++)
		if (c->changed[i] == ns)
			return;
	/* Only deleting a folder that holds more than a dozen shared
	 * folders gets here; their waiters then wake at their deadline. */
	if (c->n_changed < SQ_MAX_CHANGED) {
		c->changed[c->n_changed++] = ns;
		return;
	}
	c->overflow = true;
	if (!c->deferrable)
		cfs_log_warn(
			"too many namespaces changed in one transaction to notify namespace %lld",
			(long long)ns);
}

/* A short random pause before a transaction is tried again, longer
 * after each try, so that the writers that collided spread out: up to
 * 256 ms, longer than a transaction takes on a busy store, or dozens of
 * writers of one namespace keep meeting. */
static void backoff(unsigned attempt)
{
	unsigned max_us = 500u << (attempt < 9 ? attempt : 9);
	long us = (long)((unsigned)random() % max_us);
	struct timespec ts = { us / 1000000, 1000 * (us % 1000000) };

	nanosleep(&ts, NULL);
}

enum cfs_err sq_run_on(struct meta *base, struct db_conn *db, bool write,
		       sq_body body, void *arg, struct cfs_error *err)
{
	struct sq_meta *m = (struct sq_meta *)base;
	struct sq_conn c = { .db = db, .pending_ttl_s = base->pending_ttl_s };
	uint64_t until = cfs_monotonic_ms() + SQ_RETRY_MS;
	unsigned attempt;
	enum cfs_err rc;

	for (attempt = 1;; attempt++) {
		c.n_changed = 0;
		rc = db_begin(c.db, write, err);
		if (rc == CFS_OK)
			rc = body(&c, arg, err);
		for (size_t i = 0; rc == CFS_OK && i < c.n_changed; i++)
			rc = db_announce(c.db, c.changed[i], err);
		rc = db_end(c.db, rc, err);
		if (rc == CFS_OK || !db_retryable(c.db) ||
		    cfs_monotonic_ms() >= until)
			break;
		backoff(attempt);
	}
	if (rc && db_retryable(c.db)) {
		cfs_error_prefix(err, "gave up after %u collisions in %d s",
				 attempt, SQ_RETRY_MS / 1000);
		cfs_log_error("%s", err->msg);
	}
	for (size_t i = 0; rc == CFS_OK && m->notify && i < c.n_changed; i++)
		m->notify(m->notify_arg, c.changed[i]);
	return rc;
}

struct db_conn *sq_acquire(struct meta *base, struct cfs_error *err)
{
	return db_acquire(((struct sq_meta *)base)->db, err);
}

enum cfs_err sq_run(struct meta *m, bool write, sq_body body, void *arg,
		    struct cfs_error *err)
{
	struct db_conn *db = sq_acquire(m, err);
	enum cfs_err rc;

	if (!db)
		return err->code;
	rc = sq_run_on(m, db, write, body, arg, err);
	db_release(db);
	return rc;
}

static int64_t now_s(void)
{
	return (int64_t)time(NULL);
}

enum cfs_err sq_member(struct sq_conn *c, int64_t user, int64_t ns,
		       struct cfs_error *err)
{
	int64_t one;
	bool found;
	enum cfs_err rc = db_int64(
		c->db,
		db_stmt(c->db,
			"SELECT 1 FROM members WHERE ns = ?1 AND user_id = ?2",
			err, "ii", ns, user),
		&one, &found, err);

	if (rc == CFS_OK && !found)
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "no namespace %lld",
			      (long long)ns);
	return rc;
}

static void sq_close(struct meta *base)
{
	struct sq_meta *m = (struct sq_meta *)base;

	db_close(m->db);
	sq_commit_queue_free(m->commits);
	free(m);
}

static void user_from_row(struct sq_conn *c, struct db_stmt *st,
			  struct meta_user *u)
{
	u->id = db_col_int64(c->db, st, 0);
	u->root_ns = db_col_int64(c->db, st, 1);
	snprintf(u->name, sizeof(u->name), "%s", db_col_text(c->db, st, 2));
}

enum cfs_err sq_user_by_name(struct sq_conn *c, const char *name,
			     struct meta_user *out, struct cfs_error *err)
{
	struct db_stmt *st = db_stmt(
		c->db, "SELECT id, root_ns, name FROM users WHERE name = ?1",
		err, "t", name);
	enum cfs_err rc;
	bool row;

	if (!st)
		return err->code;
	rc = db_step(c->db, st, &row, err);
	if (rc)
		return rc;
	if (!row)
		return cfs_fail(err, CFS_ERR_NOT_FOUND, "no user '%s'", name);
	user_from_row(c, st, out);
	return CFS_OK;
}

static enum cfs_err user_insert(struct sq_conn *c, const char *name,
				struct meta_user *out, struct cfs_error *err)
{
	int64_t ns;
	enum cfs_err rc;
	bool found;

	rc = db_int64(c->db,
		      db_stmt(c->db,
			      "INSERT INTO namespaces(shared, created)"
			      " VALUES (0, ?1) RETURNING id",
			      err, "i", now_s()),
		      &ns, &found, err);
	if (rc == CFS_OK)
		rc = db_int64(
			c->db,
			db_stmt(c->db,
				"INSERT INTO users(name, root_ns, created)"
				" VALUES (?1, ?2, ?3) RETURNING id",
				err, "tii", name, ns, now_s()),
			&out->id, &found, err);
	if (rc)
		return rc;
	out->root_ns = ns;
	snprintf(out->name, sizeof(out->name), "%s", name);
	rc = db_exec(c->db, "UPDATE namespaces SET owner = ?1 WHERE id = ?2",
		     err, "ii", out->id, ns);
	if (rc)
		return rc;
	return db_exec(c->db,
		       "INSERT INTO members(ns, user_id, mount_node, joined)"
		       " VALUES (?1, ?2, NULL, ?3)",
		       err, "iii", ns, out->id, now_s());
}

struct user_args {
	const char *name;
	struct meta_user *out;
};

static enum cfs_err add_user(struct sq_conn *c, void *arg,
			     struct cfs_error *err)
{
	struct user_args *a = arg;
	struct meta_user existing;
	enum cfs_err rc = sq_user_by_name(c, a->name, &existing, err);

	if (rc == CFS_OK)
		return cfs_fail(err, CFS_ERR_EXISTS, "user '%s' exists already",
				a->name);
	return rc == CFS_ERR_NOT_FOUND ? user_insert(c, a->name, a->out, err)
				       : rc;
}

static enum cfs_err sq_user_add(struct meta *m, const char *name,
				struct meta_user *out, struct cfs_error *err)
{
	struct user_args a = { name, out };
	enum cfs_err rc = meta_user_name_check(name, strlen(name), err);

	return rc ? rc : sq_run(m, true, add_user, &a, err);
}

static enum cfs_err get_user(struct sq_conn *c, void *arg,
			     struct cfs_error *err)
{
	struct user_args *a = arg;

	return sq_user_by_name(c, a->name, a->out, err);
}

static enum cfs_err sq_user_get(struct meta *m, const char *name,
				struct meta_user *out, struct cfs_error *err)
{
	struct user_args a = { name, out };

	return sq_run(m, false, get_user, &a, err);
}

struct token_args {
	const uint8_t *hash;
	int64_t user;
	struct meta_user *out;
};

static enum cfs_err add_token(struct sq_conn *c, void *arg,
			      struct cfs_error *err)
{
	struct token_args *a = arg;

	return db_exec(c->db,
		       "INSERT INTO tokens(hash, user_id, created)"
		       " VALUES (?1, ?2, ?3)",
		       err, "bii", a->hash, (size_t)META_TOKEN_HASH_LEN,
		       a->user, now_s());
}

static enum cfs_err sq_token_add(struct meta *m, int64_t user,
				 const uint8_t hash[META_TOKEN_HASH_LEN],
				 struct cfs_error *err)
{
	struct token_args a = { .hash = hash, .user = user };

	return sq_run(m, true, add_token, &a, err);
}

static enum cfs_err revoke_token(struct sq_conn *c, void *arg,
				 struct cfs_error *err)
{
	struct token_args *a = arg;
	enum cfs_err rc;

	rc = db_exec(c->db,
		     "UPDATE tokens SET revoked = 1 WHERE hash = ?1"
		     " AND revoked = 0",
		     err, "b", a->hash, (size_t)META_TOKEN_HASH_LEN);
	if (rc == CFS_OK && db_changes(c->db) == 0)
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND,
			      "no live token matches the one given");
	return rc;
}

static enum cfs_err sq_token_revoke(struct meta *m,
				    const uint8_t hash[META_TOKEN_HASH_LEN],
				    struct cfs_error *err)
{
	struct token_args a = { .hash = hash };

	return sq_run(m, true, revoke_token, &a, err);
}

static enum cfs_err find_token(struct sq_conn *c, void *arg,
			       struct cfs_error *err)
{
	struct token_args *a = arg;
	struct db_stmt *st;
	enum cfs_err rc;
	bool row = false;

	st = db_stmt(c->db,
		     "SELECT u.id, u.root_ns, u.name FROM tokens t"
		     " JOIN users u ON u.id = t.user_id"
		     " WHERE t.hash = ?1 AND t.revoked = 0",
		     err, "b", a->hash, (size_t)META_TOKEN_HASH_LEN);
	rc = st ? db_step(c->db, st, &row, err) : err->code;
	if (rc == CFS_OK && !row)
		return cfs_fail(err, CFS_ERR_UNAUTHORIZED,
				"token is unknown or revoked");
	if (rc == CFS_OK) {
		user_from_row(c, st, a->out);
		memcpy(a->out->token, a->hash, META_TOKEN_HASH_LEN);
	}
	return rc;
}

static enum cfs_err sq_auth(struct meta *m,
			    const uint8_t hash[META_TOKEN_HASH_LEN],
			    struct meta_user *out, struct cfs_error *err)
{
	struct token_args a = { .hash = hash, .out = out };

	return sq_run(m, false, find_token, &a, err);
}

enum cfs_err sq_block_available(struct sq_conn *c, int64_t user,
				const struct cfs_block_id *id, bool *ok,
				uint32_t *size, struct cfs_error *err)
{
	enum cfs_err rc;
	struct db_stmt *st =
		db_stmt(c->db,
			"SELECT size FROM blocks WHERE id = ?1 AND ("
			" EXISTS (SELECT 1 FROM block_owners"
			"  WHERE id = ?1 AND user_id = ?2) OR"
			" EXISTS (SELECT 1 FROM block_refs r JOIN members m"
			"  ON m.ns = r.ns AND m.user_id = ?2 WHERE r.id = ?1))",
			err, "bi", id->b, (size_t)CFS_BLOCK_ID_LEN, user);

	if (!st)
		return err->code;
	rc = db_step(c->db, st, ok, err);
	if (rc == CFS_OK && *ok && size)
		*size = (uint32_t)db_col_int64(c->db, st, 0);
	return rc;
}

struct block_args {
	const struct meta_user *user;
	const struct cfs_block_id *id;
	const struct cfs_block_id *added; /* blocks_added: n of them */
	const uint32_t *sizes;
	size_t n;
	const struct cfs_blocklist *ids;
	struct cfs_blocklist *needed;
};

static enum cfs_err find_needed(struct sq_conn *c, void *arg,
				struct cfs_error *err)
{
	struct block_args *a = arg;
	enum cfs_err rc = CFS_OK;

	a->needed->n = 0;
	for (size_t i = 0; rc == CFS_OK && i < a->ids->n; i++) {
		bool ok = false;

		rc = sq_block_available(c, a->user->id, &a->ids->ids[i], &ok,
					NULL, err);
		if (rc == CFS_OK && !ok)
			a->needed->ids[a->needed->n++] = a->ids->ids[i];
	}
	return rc;
}

static enum cfs_err sq_blocks_needed(struct meta *m,
				     const struct meta_user *user,
				     const struct cfs_blocklist *ids,
				     struct cfs_blocklist *needed,
				     struct cfs_error *err)
{
	struct block_args a = { .user = user, .ids = ids, .needed = needed };
	enum cfs_err rc;

	needed->n = 0;
	needed->ids = ids->n ? malloc(ids->n * sizeof(ids->ids[0])) : NULL;
	if (ids->n && !needed->ids)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	rc = sq_run(m, false, find_needed, &a, err);
	if (rc)
		cfs_blocklist_release(needed);
	return rc;
}

static enum cfs_err add_blocks(struct sq_conn *c, void *arg,
			       struct cfs_error *err)
{
	struct block_args *a = arg;
	enum cfs_err rc = CFS_OK;
	int64_t now = now_s();

	for (size_t i = 0; rc == CFS_OK && i < a->n; i++) {
		const struct cfs_block_id *id = &a->added[i];

		rc = db_exec(c->db,
			     "INSERT INTO blocks(id, size, stored)"
			     " VALUES (?1, ?2, ?3) ON CONFLICT(id)"
			     " DO UPDATE SET stored = excluded.stored",
			     err, "bii", id->b, (size_t)CFS_BLOCK_ID_LEN,
			     (int64_t)a->sizes[i], now);
		if (rc == CFS_OK)
			rc = db_exec(c->db,
				     "INSERT INTO block_owners(id, user_id)"
				     " VALUES (?1, ?2) ON CONFLICT DO NOTHING",
				     err, "bi", id->b, (size_t)CFS_BLOCK_ID_LEN,
				     a->user->id);
		if (rc == CFS_OK)
			rc = sq_pending_landed(c, a->user->id, id, err);
	}
	return rc;
}

static enum cfs_err
sq_blocks_added(struct meta *m, const struct meta_user *user,
		const struct cfs_block_id *ids, const uint32_t *sizes, size_t n,
		meta_store_fn store, void *store_arg, struct cfs_error *err)
{
	struct block_args a = {
		.user = user, .added = ids, .sizes = sizes, .n = n
	};
	struct cfs_error store_err;
	enum cfs_err rc, stored = CFS_OK;
	struct db_conn *db;

	if (n == 0)
		return CFS_OK;
	db = sq_acquire(m, err);
	if (!db)
		return err->code;
	/* The record runs on the connection that holds the locks: were it
	 * lost, the record fails with it (db_lock()). */
	rc = sq_blocks_hold(db, ids, n, err);
	if (rc == CFS_OK && store)
		stored = store(store_arg, &a.n, &store_err);
	if (rc == CFS_OK && a.n)
		rc = sq_run_on(m, db, true, add_blocks, &a, err);
	sq_blocks_let_go(db);
	db_release(db);
	if (stored)
		*err = store_err;
	return stored ? stored : rc;
}

static enum cfs_err check_readable(struct sq_conn *c, void *arg,
				   struct cfs_error *err)
{
	struct block_args *a = arg;
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	enum cfs_err rc;
	bool ok = false;

	rc = sq_block_available(c, a->user->id, a->id, &ok, NULL, err);
	/* Downloads only: a pending block never stands in for an upload
	 * (blocks_needed, commits), whose rule stays as it was. */
	if (rc == CFS_OK && !ok)
		rc = sq_pending_readable(c, a->user->id, a->id, &ok, err);
	if (rc == CFS_OK && !ok) {
		/* The same answer for unknown and forbidden (Dropship). */
		cfs_block_id_to_hex(a->id, hex);
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "no block %s", hex);
	}
	return rc;
}

static enum cfs_err sq_block_readable(struct meta *m,
				      const struct meta_user *user,
				      const struct cfs_block_id *id,
				      struct cfs_error *err)
{
	struct block_args a = { .user = user, .id = id };

	return sq_run(m, false, check_readable, &a, err);
}

static const struct meta_ops sq_ops = {
	.close = sq_close,
	.user_add = sq_user_add,
	.user_get = sq_user_get,
	.token_add = sq_token_add,
	.token_revoke = sq_token_revoke,
	.auth = sq_auth,
	.namespaces = sq_namespaces,
	.heads = sq_heads,
	.list = sq_list,
	.commit = sq_commit,
	.blocks_needed = sq_blocks_needed,
	.blocks_added = sq_blocks_added,
	.block_readable = sq_block_readable,
	.share = sq_share,
	.invite = sq_invite,
	.leave = sq_leave,
	.remove_member = sq_remove_member,
	.members = sq_members,
	.history = sq_history,
	.list_as_of = sq_list_as_of,
	.gc = sq_gc,
	.pending = sq_pending,
};

enum cfs_err sq_meta_new(struct db *db, size_t commit_lanes,
			 meta_notify_fn notify, void *notify_arg,
			 struct meta **out, struct cfs_error *err)
{
	struct sq_meta *m = calloc(1, sizeof(*m));

	if (!m) {
		db_close(db);
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	m->base.ops = &sq_ops;
	m->base.pending_ttl_s = META_PENDING_TTL_S;
	m->notify = notify;
	m->notify_arg = notify_arg;
	m->db = db;
	if (sq_commit_queue_new(commit_lanes, &m->commits, err)) {
		sq_close(&m->base);
		return err->code;
	}
	*out = &m->base;
	return CFS_OK;
}
