/*
 * The SQLite driver of the SQL seam (server/db.h), on lib's connections
 * (cloudfs/sql.h): a write transaction is BEGIN IMMEDIATE, so writers
 * take turns on the database's one write lock and never fail half way;
 * a read transaction is a WAL snapshot.  Nothing is ever retried: a
 * writer waits for its turn instead.  Long polls of other processes are
 * never told of commits (one server per data directory: the data
 * directory's lock, cmd_lock_data_dir()).
 */
#include <stdlib.h>
#include <string.h>

#include "cloudfs/sql.h"
#include "server/db.h"

struct sqlite_db {
	struct db base;
	char *path;
	const char *what;
	const char *synchronous;
};

struct sqlite_conn {
	struct db_conn base;
	struct cfs_sql sql;
};

static struct cfs_sql *sql_of(struct db_conn *c)
{
	return &((struct sqlite_conn *)c)->sql;
}

/* The driver's statements are SQLite's. */
static sqlite3_stmt *st_of(struct db_stmt *st)
{
	return (sqlite3_stmt *)st;
}

static enum cfs_err sqlite_connect(struct db *base, struct db_conn **out,
				   struct cfs_error *err)
{
	struct sqlite_db *db = (struct sqlite_db *)base;
	struct sqlite_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	if (cfs_sql_open(&c->sql, db->path, db->what, db->synchronous, err)) {
		free(c);
		return err->code;
	}
	*out = &c->base;
	return CFS_OK;
}

static void sqlite_disconnect(struct db_conn *c)
{
	cfs_sql_close(sql_of(c));
	free(c);
}

static void sqlite_close(struct db *base)
{
	struct sqlite_db *db = (struct sqlite_db *)base;

	free(db->path);
	free(db);
}

static struct db_stmt *sqlite_stmt(struct db_conn *c, const char *sql,
				   struct cfs_error *err, const char *fmt,
				   va_list *ap)
{
	return (struct db_stmt *)cfs_sql_vstmt(sql_of(c), sql, err, fmt, ap);
}

static enum cfs_err sqlite_step(struct db_conn *c, struct db_stmt *st,
				bool *row, struct cfs_error *err)
{
	return cfs_sql_step(sql_of(c), st_of(st), row, err);
}

static void sqlite_reset(struct db_conn *c, struct db_stmt *st)
{
	(void)c;
	sqlite3_reset(st_of(st));
}

static int64_t sqlite_col_int64(struct db_stmt *st, int col)
{
	return sqlite3_column_int64(st_of(st), col);
}

static const char *sqlite_text(struct db_stmt *st, int col)
{
	return (const char *)sqlite3_column_text(st_of(st), col);
}

static const void *sqlite_blob(struct db_stmt *st, int col, size_t *len)
{
	const void *p = sqlite3_column_blob(st_of(st), col);

	*len = (size_t)sqlite3_column_bytes(st_of(st), col);
	return p;
}

static uint64_t sqlite_changes(struct db_conn *c)
{
	return (uint64_t)sqlite3_changes64(sql_of(c)->db);
}

static enum cfs_err sqlite_begin(struct db_conn *c, bool write,
				 struct cfs_error *err)
{
	return cfs_sql_begin(sql_of(c), write, err);
}

static enum cfs_err sqlite_end(struct db_conn *c, enum cfs_err rc,
			       struct cfs_error *err)
{
	return cfs_sql_end(sql_of(c), rc, err);
}

static bool sqlite_retryable(struct db_conn *c)
{
	(void)c;
	return false;
}

static const struct db_ops sqlite_ops = {
	.connect = sqlite_connect,
	.disconnect = sqlite_disconnect,
	.close = sqlite_close,
	.stmt = sqlite_stmt,
	.step = sqlite_step,
	.reset = sqlite_reset,
	.int64 = sqlite_col_int64,
	.text = sqlite_text,
	.blob = sqlite_blob,
	.changes = sqlite_changes,
	.begin = sqlite_begin,
	.end = sqlite_end,
	.retryable = sqlite_retryable,
};

enum cfs_err db_sqlite_open(const char *path, const char *what,
			    const char *synchronous, struct db **out,
			    struct cfs_error *err)
{
	struct sqlite_db *db = calloc(1, sizeof(*db));

	if (!db || !(db->path = strdup(path))) {
		free(db);
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	db->what = what;
	db->synchronous = synchronous;
	db_init(&db->base, &sqlite_ops);
	*out = &db->base;
	return CFS_OK;
}
