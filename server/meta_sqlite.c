/*
 * The SQLite metadata backend: opening the store, its connections and
 * statement cache, and the users, tokens and block index.  The schema and
 * its invariants are described in meta_sqlite.h.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cloudfs/log.h"
#include "meta_sqlite.h"

#define SCHEMA_VERSION 5

static const char schema[] =
	"CREATE TABLE users(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" name TEXT NOT NULL UNIQUE, root_ns INTEGER NOT NULL UNIQUE,"
	" created INTEGER NOT NULL);"
	"CREATE TABLE tokens(hash BLOB PRIMARY KEY,"
	" user_id INTEGER NOT NULL REFERENCES users(id),"
	" created INTEGER NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)"
	" WITHOUT ROWID;"
	"CREATE TABLE namespaces(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" head INTEGER NOT NULL DEFAULT 0, next_node INTEGER NOT NULL DEFAULT 1,"
	" shared INTEGER NOT NULL, owner INTEGER REFERENCES users(id),"
	" created INTEGER NOT NULL);"
	"CREATE TABLE members(ns INTEGER NOT NULL REFERENCES namespaces(id),"
	" user_id INTEGER NOT NULL REFERENCES users(id), mount_node INTEGER,"
	" joined INTEGER NOT NULL, PRIMARY KEY(ns, user_id)) WITHOUT ROWID;"
	"CREATE INDEX members_by_user ON members(user_id, ns);"
	"CREATE TABLE journal(ns INTEGER NOT NULL, jid INTEGER NOT NULL,"
	" node INTEGER NOT NULL, parent INTEGER NOT NULL, name TEXT NOT NULL,"
	" kind INTEGER NOT NULL, size INTEGER NOT NULL,"
	" mtime_ns INTEGER NOT NULL, mode INTEGER NOT NULL, blocks BLOB,"
	" target TEXT, mount_ns INTEGER, author INTEGER NOT NULL,"
	" PRIMARY KEY(ns, jid)) WITHOUT ROWID;"
	"CREATE TABLE nodes(ns INTEGER NOT NULL, node INTEGER NOT NULL,"
	" parent INTEGER NOT NULL, name TEXT NOT NULL, kind INTEGER NOT NULL,"
	" size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
	" mode INTEGER NOT NULL, blocks BLOB, target TEXT, mount_ns INTEGER,"
	" jid INTEGER NOT NULL, PRIMARY KEY(ns, node)) WITHOUT ROWID;"
	"CREATE UNIQUE INDEX nodes_by_name ON nodes(ns, parent, name)"
	" WHERE kind != 0;"
	"CREATE INDEX nodes_by_jid ON nodes(ns, jid);"
	"CREATE TABLE blocks(id BLOB PRIMARY KEY, size INTEGER NOT NULL)"
	" WITHOUT ROWID;"
	"CREATE TABLE block_owners(id BLOB NOT NULL, user_id INTEGER NOT NULL,"
	" PRIMARY KEY(id, user_id)) WITHOUT ROWID;"
	"CREATE TABLE block_refs(id BLOB NOT NULL, ns INTEGER NOT NULL,"
	" PRIMARY KEY(id, ns)) WITHOUT ROWID;";

/* From version 1 to 2: the answers a client may ask for again. */
static const char upgrade_2[] =
	"CREATE TABLE answers(user_id INTEGER NOT NULL, client TEXT NOT NULL,"
	" seq INTEGER NOT NULL, jid INTEGER NOT NULL, node INTEGER NOT NULL,"
	" prev_jid INTEGER NOT NULL, PRIMARY KEY(user_id, client, seq))"
	" WITHOUT ROWID;"
	"PRAGMA user_version = 2;";

/* From version 2 to 3: when each journal row was committed and each block
 * last uploaded, so that garbage collection keeps what retention covers
 * (server/gc.h), what is there already counting from the upgrade; and
 * the time before which it may have compacted the journal. */
static const char upgrade_3[] =
	"ALTER TABLE journal ADD COLUMN at INTEGER NOT NULL DEFAULT 0;"
	"UPDATE journal SET at = strftime('%s', 'now');"
	"ALTER TABLE blocks ADD COLUMN stored INTEGER NOT NULL DEFAULT 0;"
	"UPDATE blocks SET stored = strftime('%s', 'now');"
	"CREATE INDEX journal_by_node ON journal(ns, node, jid);"
	"CREATE TABLE gc_horizon(at INTEGER NOT NULL);"
	"INSERT INTO gc_horizon VALUES (0);"
	"PRAGMA user_version = 3;";

/* From version 3 to 4: each answer names the namespace it was for, so
 * that an operation sent again to another namespace (a folder shared
 * meanwhile) is not answered with a JID of the first.  Answers kept
 * before the upgrade (ns 0) still answer in any namespace. */
static const char upgrade_4[] =
	"ALTER TABLE answers ADD COLUMN ns INTEGER NOT NULL DEFAULT 0;"
	"PRAGMA user_version = 4;";

/* From version 4 to 5: atime and ctime of every version, kept apart from
 * mtime (cloudfs-protocol(7)).  Rows from before knew only mtime, which
 * is the best guess of both. */
static const char upgrade_5[] =
	"ALTER TABLE journal ADD COLUMN atime_ns INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE journal ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;"
	"UPDATE journal SET atime_ns = mtime_ns, ctime_ns = mtime_ns;"
	"ALTER TABLE nodes ADD COLUMN atime_ns INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE nodes ADD COLUMN ctime_ns INTEGER NOT NULL DEFAULT 0;"
	"UPDATE nodes SET atime_ns = mtime_ns, ctime_ns = mtime_ns;"
	"PRAGMA user_version = 5;";

void sq_changed(struct sq_conn *c, int64_t ns)
{
	for (size_t i = 0; i < c->n_changed; i++)
		if (c->changed[i] == ns)
			return;
	/* Only deleting a folder that holds more than a dozen shared
	 * folders gets here; their waiters then wake at their deadline. */
	if (c->n_changed < SQ_MAX_CHANGED)
		c->changed[c->n_changed++] = ns;
	else
		cfs_log_warn(
			"too many namespaces changed in one transaction to notify namespace %lld",
			(long long)ns);
}

enum cfs_err sq_run(struct meta *base, bool write, sq_body body, void *arg,
		    struct cfs_error *err)
{
	struct sq_meta *m = (struct sq_meta *)base;
	struct sq_conn *c =
		(struct sq_conn *)cfs_sql_pool_acquire(&m->pool, err);
	enum cfs_err rc;

	if (!c)
		return err->code;
	c->n_changed = 0;
	rc = cfs_sql_begin(&c->sql, write, err);
	if (rc == CFS_OK)
		rc = body(c, arg, err);
	rc = cfs_sql_end(&c->sql, rc, err);
	for (size_t i = 0; rc == CFS_OK && m->notify && i < c->n_changed; i++)
		m->notify(m->notify_arg, c->changed[i]);
	cfs_sql_pool_release(&m->pool, &c->sql);
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
	enum cfs_err rc = cfs_sql_int64(
		&c->sql,
		cfs_sql_stmt(
			&c->sql,
			"SELECT 1 FROM members WHERE ns = ?1 AND user_id = ?2",
			err, "ii", ns, user),
		&one, &found, err);

	if (rc == CFS_OK && !found)
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "no namespace %lld",
			      (long long)ns);
	return rc;
}

/* The whole schema the first time the store opens; an older one is
 * brought up to date. */
static enum cfs_err schema_init(struct sq_conn *c, void *arg,
				struct cfs_error *err)
{
	int version = cfs_sql_user_version(&c->sql);
	enum cfs_err rc = CFS_OK;

	(void)arg;
	if (version == 0) {
		rc = cfs_sql_script(&c->sql, schema, err);
		if (rc == CFS_OK)
			rc = cfs_sql_script(&c->sql, "PRAGMA user_version = 1",
					    err);
		version = 1;
	}
	if (rc == CFS_OK && version == 1) {
		rc = cfs_sql_script(&c->sql, upgrade_2, err);
		version = 2;
	}
	if (rc == CFS_OK && version == 2) {
		rc = cfs_sql_script(&c->sql, upgrade_3, err);
		version = 3;
	}
	if (rc == CFS_OK && version == 3) {
		rc = cfs_sql_script(&c->sql, upgrade_4, err);
		version = 4;
	}
	if (rc == CFS_OK && version == 4) {
		rc = cfs_sql_script(&c->sql, upgrade_5, err);
		version = 5;
	}
	if (rc == CFS_OK && version != SCHEMA_VERSION)
		rc = cfs_fail(
			err, CFS_ERR_INTERNAL,
			"metadata store has schema version %d, this cloudfsd reads version %d",
			version, SCHEMA_VERSION);
	return rc;
}

static void sq_close(struct meta *base)
{
	struct sq_meta *m = (struct sq_meta *)base;

	cfs_sql_pool_destroy(&m->pool);
	free(m);
}

static void user_from_row(sqlite3_stmt *st, struct meta_user *u)
{
	u->id = sqlite3_column_int64(st, 0);
	u->root_ns = sqlite3_column_int64(st, 1);
	snprintf(u->name, sizeof(u->name), "%s",
		 (const char *)sqlite3_column_text(st, 2));
}

enum cfs_err sq_user_by_name(struct sq_conn *c, const char *name,
			     struct meta_user *out, struct cfs_error *err)
{
	sqlite3_stmt *st = cfs_sql_stmt(
		&c->sql, "SELECT id, root_ns, name FROM users WHERE name = ?1",
		err, "t", name);
	enum cfs_err rc;
	bool row;

	if (!st)
		return err->code;
	rc = cfs_sql_step(&c->sql, st, &row, err);
	if (rc)
		return rc;
	if (!row)
		return cfs_fail(err, CFS_ERR_NOT_FOUND, "no user '%s'", name);
	user_from_row(st, out);
	return CFS_OK;
}

static enum cfs_err user_insert(struct sq_conn *c, const char *name,
				struct meta_user *out, struct cfs_error *err)
{
	int64_t ns;
	enum cfs_err rc;

	rc = cfs_sql_exec(
		&c->sql,
		"INSERT INTO namespaces(shared, created) VALUES (0, ?1)", err,
		"i", now_s());
	if (rc)
		return rc;
	ns = sqlite3_last_insert_rowid(c->sql.db);
	rc = cfs_sql_exec(&c->sql,
			  "INSERT INTO users(name, root_ns, created)"
			  " VALUES (?1, ?2, ?3)",
			  err, "tii", name, ns, now_s());
	if (rc)
		return rc;
	out->id = sqlite3_last_insert_rowid(c->sql.db);
	out->root_ns = ns;
	snprintf(out->name, sizeof(out->name), "%s", name);
	rc = cfs_sql_exec(&c->sql,
			  "UPDATE namespaces SET owner = ?1 WHERE id = ?2", err,
			  "ii", out->id, ns);
	if (rc)
		return rc;
	return cfs_sql_exec(
		&c->sql,
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

	return cfs_sql_exec(&c->sql,
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

	rc = cfs_sql_exec(&c->sql,
			  "UPDATE tokens SET revoked = 1 WHERE hash = ?1"
			  " AND revoked = 0",
			  err, "b", a->hash, (size_t)META_TOKEN_HASH_LEN);
	if (rc == CFS_OK && sqlite3_changes(c->sql.db) == 0)
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
	sqlite3_stmt *st;
	enum cfs_err rc;
	bool row = false;

	st = cfs_sql_stmt(&c->sql,
			  "SELECT u.id, u.root_ns, u.name FROM tokens t"
			  " JOIN users u ON u.id = t.user_id"
			  " WHERE t.hash = ?1 AND t.revoked = 0",
			  err, "b", a->hash, (size_t)META_TOKEN_HASH_LEN);
	rc = st ? cfs_sql_step(&c->sql, st, &row, err) : err->code;
	if (rc == CFS_OK && !row)
		return cfs_fail(err, CFS_ERR_UNAUTHORIZED,
				"token is unknown or revoked");
	if (rc == CFS_OK) {
		user_from_row(st, a->out);
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
	sqlite3_stmt *st = cfs_sql_stmt(
		&c->sql,
		"SELECT size FROM blocks WHERE id = ?1 AND ("
		" EXISTS (SELECT 1 FROM block_owners"
		"  WHERE id = ?1 AND user_id = ?2) OR"
		" EXISTS (SELECT 1 FROM block_refs r JOIN members m"
		"  ON m.ns = r.ns AND m.user_id = ?2 WHERE r.id = ?1))",
		err, "bi", id->b, (size_t)CFS_BLOCK_ID_LEN, user);

	if (!st)
		return err->code;
	rc = cfs_sql_step(&c->sql, st, ok, err);
	if (rc == CFS_OK && *ok && size)
		*size = (uint32_t)sqlite3_column_int64(st, 0);
	return rc;
}

struct block_args {
	const struct meta_user *user;
	const struct cfs_block_id *id;
	uint32_t size;
	const struct cfs_blocklist *ids;
	struct cfs_blocklist *needed;
};

static enum cfs_err find_needed(struct sq_conn *c, void *arg,
				struct cfs_error *err)
{
	struct block_args *a = arg;
	enum cfs_err rc = CFS_OK;

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

static enum cfs_err add_block(struct sq_conn *c, void *arg,
			      struct cfs_error *err)
{
	struct block_args *a = arg;
	enum cfs_err rc;

	rc = cfs_sql_exec(
		&c->sql,
		"INSERT INTO blocks(id, size, stored) VALUES (?1, ?2, ?3)"
		" ON CONFLICT(id) DO UPDATE SET stored = excluded.stored",
		err, "bii", a->id->b, (size_t)CFS_BLOCK_ID_LEN,
		(int64_t)a->size, now_s());
	if (rc == CFS_OK)
		rc = cfs_sql_exec(
			&c->sql,
			"INSERT OR IGNORE INTO block_owners(id, user_id)"
			" VALUES (?1, ?2)",
			err, "bi", a->id->b, (size_t)CFS_BLOCK_ID_LEN,
			a->user->id);
	return rc;
}

static enum cfs_err sq_block_added(struct meta *m, const struct meta_user *user,
				   const struct cfs_block_id *id, uint32_t size,
				   struct cfs_error *err)
{
	struct block_args a = { .user = user, .id = id, .size = size };

	return sq_run(m, true, add_block, &a, err);
}

static enum cfs_err check_readable(struct sq_conn *c, void *arg,
				   struct cfs_error *err)
{
	struct block_args *a = arg;
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	enum cfs_err rc;
	bool ok = false;

	rc = sq_block_available(c, a->user->id, a->id, &ok, NULL, err);
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
	.block_added = sq_block_added,
	.block_readable = sq_block_readable,
	.share = sq_share,
	.invite = sq_invite,
	.leave = sq_leave,
	.remove_member = sq_remove_member,
	.members = sq_members,
	.history = sq_history,
	.list_as_of = sq_list_as_of,
	.gc = sq_gc,
};

enum cfs_err meta_sqlite_open(const char *data_dir, meta_notify_fn notify,
			      void *notify_arg, struct meta **out,
			      struct cfs_error *err)
{
	struct sq_meta *m = calloc(1, sizeof(*m));
	char path[PATH_MAX];
	enum cfs_err rc;

	if (!m)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	if ((size_t)snprintf(path, sizeof(path), "%s/meta.db", data_dir) >=
	    sizeof(path)) {
		free(m);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"data directory path '%s' is too long",
				data_dir);
	}
	if (mkdir(data_dir, 0700) && errno != EEXIST) {
		rc = cfs_fail(err, CFS_ERR_INTERNAL,
			      "cannot create data directory '%s': %s", data_dir,
			      strerror(errno));
		free(m);
		return rc;
	}
	m->base.ops = &sq_ops;
	m->notify = notify;
	m->notify_arg = notify_arg;
	/* FULL: an acknowledged commit survives a power cut, not only a
	 * crash of the server. */
	cfs_sql_pool_init(&m->pool, path, "metadata store", "FULL",
			  sizeof(struct sq_conn));
	rc = sq_run(&m->base, true, schema_init, NULL, err);
	if (rc) {
		sq_close(&m->base);
		return rc;
	}
	*out = &m->base;
	return CFS_OK;
}
