/* The SQL seam's pool and its calls into the driver (server/db.h). */
#include <stdlib.h>

#include "server/db.h"

void db_init(struct db *db, const struct db_ops *ops)
{
	db->ops = ops;
	db->free = NULL;
	pthread_mutex_init(&db->lock, NULL);
}

void db_close(struct db *db)
{
	while (db->free) {
		struct db_conn *c = db->free;

		db->free = c->next_free;
		db->ops->disconnect(c);
	}
	pthread_mutex_destroy(&db->lock);
	db->ops->close(db);
}

struct db_conn *db_acquire(struct db *db, struct cfs_error *err)
{
	struct db_conn *c;

	pthread_mutex_lock(&db->lock);
	c = db->free;
	if (c)
		db->free = c->next_free;
	pthread_mutex_unlock(&db->lock);
	if (!c && db->ops->connect(db, &c, err) == CFS_OK)
		c->db = db;
	return c;
}

void db_release(struct db_conn *c)
{
	struct db *db = c->db;

	pthread_mutex_lock(&db->lock);
	c->next_free = db->free;
	db->free = c;
	pthread_mutex_unlock(&db->lock);
}

struct db_stmt *db_stmt(struct db_conn *c, const char *sql,
			struct cfs_error *err, const char *fmt, ...)
{
	struct db_stmt *st;
	va_list ap;

	va_start(ap, fmt);
	st = c->db->ops->stmt(c, sql, err, fmt, &ap);
	va_end(ap);
	return st;
}

enum cfs_err db_step(struct db_conn *c, struct db_stmt *st, bool *row,
		     struct cfs_error *err)
{
	return c->db->ops->step(c, st, row, err);
}

void db_reset(struct db_conn *c, struct db_stmt *st)
{
	c->db->ops->reset(c, st);
}

enum cfs_err db_int64(struct db_conn *c, struct db_stmt *st, int64_t *out,
		      bool *found, struct cfs_error *err)
{
	enum cfs_err rc;

	*found = false;
	if (!st)
		return err->code;
	rc = db_step(c, st, found, err);
	if (rc == CFS_OK && *found)
		*out = db_col_int64(c, st, 0);
	db_reset(c, st);
	return rc;
}

enum cfs_err db_exec(struct db_conn *c, const char *sql, struct cfs_error *err,
		     const char *fmt, ...)
{
	struct db_stmt *st;
	enum cfs_err rc;
	bool row;
	va_list ap;

	va_start(ap, fmt);
	st = c->db->ops->stmt(c, sql, err, fmt, &ap);
	va_end(ap);
	if (!st)
		return err->code;
	rc = db_step(c, st, &row, err);
	db_reset(c, st);
	return rc;
}

int64_t db_col_int64(struct db_conn *c, struct db_stmt *st, int col)
{
	return c->db->ops->int64(st, col);
}

const char *db_col_text(struct db_conn *c, struct db_stmt *st, int col)
{
	return c->db->ops->text(st, col);
}

const void *db_col_blob(struct db_conn *c, struct db_stmt *st, int col,
			size_t *len)
{
	return c->db->ops->blob(st, col, len);
}

uint64_t db_changes(struct db_conn *c)
{
	return c->db->ops->changes(c);
}

enum cfs_err db_begin(struct db_conn *c, bool write, struct cfs_error *err)
{
	return c->db->ops->begin(c, write, err);
}

enum cfs_err db_end(struct db_conn *c, enum cfs_err rc, struct cfs_error *err)
{
	return c->db->ops->end(c, rc, err);
}

bool db_retryable(struct db_conn *c)
{
	return c->db->ops->retryable(c);
}

enum cfs_err db_announce(struct db_conn *c, int64_t ns, struct cfs_error *err)
{
	return c->db->ops->announce ? c->db->ops->announce(c, ns, err) : CFS_OK;
}

enum cfs_err db_lock(struct db_conn *c, enum db_lock how, int64_t key,
		     bool *got, struct cfs_error *err)
{
	bool ignored;

	if (!got)
		got = &ignored;
	*got = true;
	return c->db->ops->lock ? c->db->ops->lock(c, how, key, got, err)
				: CFS_OK;
}
