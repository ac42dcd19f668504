/*
 * The embedded metadata store: the SQL backend (meta_sql.h) on SQLite,
 * in meta.db under the data directory (WAL, synchronous=FULL).  This file
 * holds what is SQLite's own: the schema in its dialect, its upgrades
 * (PRAGMA user_version counts them), and opening the store.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cloudfs/sql.h"
#include "meta_sql.h"

#define SCHEMA_VERSION 9

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

/* From version 5 to 6: hard links.  A LINK node is a further name of the
 * node link_of names (meta_sql.h, invariant 6); the index finds a node's
 * other names when one of them goes. */
static const char upgrade_6[] =
	"ALTER TABLE journal ADD COLUMN link_of INTEGER;"
	"ALTER TABLE nodes ADD COLUMN link_of INTEGER;"
	"CREATE INDEX nodes_by_link ON nodes(ns, link_of) WHERE kind = 9;"
	"PRAGMA user_version = 6;";

/* From version 6 to 7: pending block lists, for streaming sync
 * (meta_sql.h, invariants 7 and 8). */
static const char upgrade_7[] =
	"CREATE TABLE pending(id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" ns INTEGER NOT NULL, path TEXT NOT NULL, user_id INTEGER NOT NULL,"
	" expires INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX pending_by_path ON pending(ns, user_id, path);"
	"CREATE INDEX pending_by_expiry ON pending(expires);"
	"CREATE TABLE pending_blocks(pending INTEGER NOT NULL,"
	" idx INTEGER NOT NULL, id BLOB NOT NULL, size INTEGER NOT NULL,"
	" ready INTEGER NOT NULL, PRIMARY KEY(pending, idx)) WITHOUT ROWID;"
	"CREATE INDEX pending_blocks_by_id ON pending_blocks(id);"
	"CREATE INDEX pending_blocks_by_ready ON pending_blocks(ready);"
	"CREATE TABLE pending_seq(n INTEGER NOT NULL);"
	"INSERT INTO pending_seq VALUES (0);"
	"PRAGMA user_version = 7;";

/*
 * From version 7 to 8: the shape of the tables, for SQLite's planner.
 * Without statistics it took an equality on ns, the first column of the
 * primary keys, for as selective as one on (ns, parent) or (ns, link_of),
 * and walked a whole namespace for the children of a folder, the links
 * of a file (every delete of one) or a subtree: 81% of the server's time
 * in an rm -rf of 2,000 files, quadratic in the namespace's size.
 * Hand-written rows of sqlite_stat1 (as SQLite documents) say what holds
 * at any size: a namespace is many nodes, a folder few, a name one.
 * ANALYZE would measure the same only once the data is there.  The link
 * index also gets kind, which makes its lookup three equalities.
 */
static const char upgrade_8[] =
	"DROP INDEX nodes_by_link;"
	"CREATE INDEX nodes_by_link ON nodes(ns, kind, link_of)"
	" WHERE kind = 9;"
	"ANALYZE sqlite_schema;"
	"DELETE FROM sqlite_stat1 WHERE tbl IN ('nodes', 'journal');"
	"INSERT INTO sqlite_stat1(tbl, idx, stat) VALUES"
	" ('nodes', 'nodes', '1000000 100000 1'),"
	" ('nodes', 'nodes_by_name', '1000000 100000 10 1'),"
	" ('nodes', 'nodes_by_jid', '1000000 100000 1'),"
	" ('nodes', 'nodes_by_link', '10000 1000 1000 2'),"
	" ('journal', 'journal', '10000000 1000000 1'),"
	" ('journal', 'journal_by_node', '10000000 1000000 10 1');"
	"PRAGMA user_version = 8;";

/*
 * From version 8 to 9: statistics make SQLite consider Bloom filters,
 * and with nodes at a million rows it built one for every step of a
 * subtree walk, from a scan of the whole namespace: each folder deleted
 * read every node again (18 ms for a folder of 100 in a namespace of
 * 40,000, 1 ms without).  It builds one only when the loops outside are
 * estimated to give more rows than the table holds, and it takes a
 * recursive query's rows for a million: a billion nodes, as many a
 * namespace can come to hold, keeps it from that.
 */
static const char upgrade_9[] =
	"UPDATE sqlite_stat1 SET stat = '1000000000 100000 1'"
	" WHERE tbl = 'nodes' AND idx IN ('nodes', 'nodes_by_jid');"
	"UPDATE sqlite_stat1 SET stat = '1000000000 100000 10 1'"
	" WHERE tbl = 'nodes' AND idx = 'nodes_by_name';"
	"UPDATE sqlite_stat1 SET stat = '10000000000 1000000 1'"
	" WHERE tbl = 'journal' AND idx = 'journal';"
	"UPDATE sqlite_stat1 SET stat = '10000000000 1000000 10 1'"
	" WHERE tbl = 'journal' AND idx = 'journal_by_node';"
	"PRAGMA user_version = 9;";

/* The whole schema the first time the store opens; an older one is
 * brought up to date, in one transaction on a connection of its own. */
static enum cfs_err schema_init(struct cfs_sql *c, struct cfs_error *err)
{
	static const char *const steps[] = {
		schema,	   upgrade_2, upgrade_3, upgrade_4, upgrade_5,
		upgrade_6, upgrade_7, upgrade_8, upgrade_9,
	};
	enum cfs_err rc = cfs_sql_begin(c, true, err);
	int version = rc ? -1 : cfs_sql_user_version(c);

	/* Version 0 is a new database; the schema makes it version 1. */
	for (int v = version; rc == CFS_OK && v >= 0 && v < SCHEMA_VERSION;
	     v++) {
		rc = cfs_sql_script(c, steps[v], err);
		if (rc == CFS_OK && v == 0)
			rc = cfs_sql_script(c, "PRAGMA user_version = 1", err);
		version = v + 1;
	}
	if (rc == CFS_OK && version != SCHEMA_VERSION)
		rc = cfs_fail(
			err, CFS_ERR_INTERNAL,
			"metadata store has schema version %d, this cloudfsd reads version %d",
			version, SCHEMA_VERSION);
	return cfs_sql_end(c, rc, err);
}

enum cfs_err meta_sqlite_open(const char *data_dir, meta_notify_fn notify,
			      void *notify_arg, struct meta **out,
			      struct cfs_error *err)
{
	static const char what[] = "metadata store";
	struct cfs_sql c;
	struct db *db;
	char path[PATH_MAX];
	enum cfs_err rc;

	if ((size_t)snprintf(path, sizeof(path), "%s/meta.db", data_dir) >=
	    sizeof(path))
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"data directory path '%s' is too long",
				data_dir);
	if (mkdir(data_dir, 0700) && errno != EEXIST)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot create data directory '%s': %s",
				data_dir, strerror(errno));
	/* FULL: an acknowledged commit survives a power cut, not only a
	 * crash of the server. */
	rc = cfs_sql_open(&c, path, what, "FULL", err);
	if (rc)
		return rc;
	rc = schema_init(&c, err);
	cfs_sql_close(&c);
	if (rc == CFS_OK)
		rc = db_sqlite_open(path, what, "FULL", &db, err);
	/* One writer at a time: every commit waiting shares the next
	 * transaction (one lane). */
	return rc ? rc : sq_meta_new(db, 1, notify, notify_arg, out, err);
}
