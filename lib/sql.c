/* SQLite connections with a statement cache (cloudfs/sql.h). */
#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "cloudfs/sql.h"

/*
 * Writers take turns.  A writer that finds the database locked gets
 * SQLITE_BUSY, and SQLite's own busy handler then sleeps 1 ms, 2, 5, ...
 * before it tries again: far longer than our transactions take, so many
 * threads writing small transactions spent most of their time asleep.
 * Instead a waiting writer is woken as soon as a write of this process
 * ends (turns counts them), and tries again at least every millisecond
 * for writers in other processes, for up to BUSY_TIMEOUT_MS.
 */
#define BUSY_TIMEOUT_MS 10000

static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cond = PTHREAD_COND_INITIALIZER;
static uint64_t turns;

static void turn_over(void)
{
	pthread_mutex_lock(&turn_lock);
	turns++;
	pthread_cond_broadcast(&turn_cond);
	pthread_mutex_unlock(&turn_lock);
}

/* SQLite's busy handler: nonzero to try again. */
static int wait_turn(void *arg, int tries)
{
	struct cfs_sql *c = arg;
	struct timespec until;

	pthread_mutex_lock(&turn_lock);
	if (tries == 0) {
		/* Try again at once: a write that ended before this point is
		 * seen by that try, one that ends after it moves turns. */
		c->turn_seen = turns;
		c->busy_since = cfs_monotonic_ms();
	} else if (cfs_monotonic_ms() - c->busy_since >= BUSY_TIMEOUT_MS) {
		pthread_mutex_unlock(&turn_lock);
		return 0;
	} else {
		until = cfs_deadline_in_ms(1);
		while (turns == c->turn_seen &&
		       pthread_cond_timedwait(&turn_cond, &turn_lock, &until) !=
			       ETIMEDOUT)
			;
		c->turn_seen = turns;
	}
	pthread_mutex_unlock(&turn_lock);
	return 1;
}

/* After a statement or script: its write, if it ended one, is over. */
static void after(struct cfs_sql *c, sqlite3_stmt *st)
{
	if (sqlite3_get_autocommit(c->db) &&
	    (!st || !sqlite3_stmt_readonly(st)))
		turn_over();
}

enum cfs_err cfs_sql_fail(struct cfs_sql *c, int rc, struct cfs_error *err)
{
	const char *msg = c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc);

	if ((rc & 0xff) == SQLITE_FULL)
		return cfs_fail(err, CFS_ERR_STORAGE_FULL, "%s is full: %s",
				c->what, msg);
	cfs_log_error("%s failed: %s (code %d)", c->what, msg, rc);
	return cfs_fail(err, CFS_ERR_INTERNAL, "%s failed: %s", c->what, msg);
}

enum cfs_err cfs_sql_script(struct cfs_sql *c, const char *sql,
			    struct cfs_error *err)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);

	after(c, NULL);
	return rc == SQLITE_OK ? CFS_OK : cfs_sql_fail(c, rc, err);
}

/* The first statement of c that stopped at a row, or NULL. */
static sqlite3_stmt *stopped(struct cfs_sql *c)
{
	sqlite3_stmt *st = sqlite3_next_stmt(c->db, NULL);

	while (st && !sqlite3_stmt_busy(st))
		st = sqlite3_next_stmt(c->db, st);
	return st;
}

enum cfs_err cfs_sql_begin(struct cfs_sql *c, bool write, struct cfs_error *err)
{
	/* Walks every cached statement: at the outermost begin alone. */
	sqlite3_stmt *st = write && !c->depth ? stopped(c) : NULL;
	enum cfs_err rc;

	/* Inside a transaction, a savepoint (cloudfs/sql.h).  One that
	 * SQLite rolled back on its own (a full disk, an I/O error) is
	 * over: what follows would commit apart from it, so it fails. */
	if (c->depth && sqlite3_get_autocommit(c->db))
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"%s: the transaction was rolled back", c->what);
	/* Such a statement keeps a read snapshot (reset_stopped()), and a
	 * write transaction begun behind it fails at once, not after the
	 * busy wait: its SQL says which reader forgot to reset. */
	if (st)
		cfs_log_error("%s: a write begins while a statement still "
			      "reads: %s",
			      c->what, sqlite3_sql(st));
	rc = cfs_sql_script(c,
			    c->depth ? "SAVEPOINT nested"
			    : write  ? "BEGIN IMMEDIATE"
				     : "BEGIN",
			    err);
	if (rc == CFS_OK)
		c->depth++;
	return rc;
}

enum cfs_err cfs_sql_sync(struct cfs_sql *c, struct cfs_error *err)
{
	sqlite3_file *wal = NULL;
	int rc = sqlite3_file_control(c->db, "main",
				      SQLITE_FCNTL_JOURNAL_POINTER, &wal);

	/* One file for all connections: syncing it through this one's
	 * descriptor makes every frame written to it durable. */
	if (rc == SQLITE_OK && (!wal || !wal->pMethods))
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"%s: no write-ahead log open to sync", c->what);
	if (rc == SQLITE_OK)
		rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
	return rc == SQLITE_OK ? CFS_OK : cfs_sql_fail(c, rc, err);
}

/*
 * Resets c's cached statements that stopped at a row.  Such a statement
 * keeps the read snapshot it started, past the end of its transaction: the
 * connection's next BEGIN IMMEDIATE would then fail at once with "database
 * is locked" (the snapshot is stale) instead of waiting its turn.
 */
static void reset_stopped(struct cfs_sql *c)
{
	sqlite3_stmt *st;

	while ((st = stopped(c)))
		sqlite3_reset(st);
}

enum cfs_err cfs_sql_end(struct cfs_sql *c, enum cfs_err rc,
			 struct cfs_error *err)
{
	/* No begin to end: callers end what they began even when the begin
	 * failed (a stale snapshot, the busy wait out), so that one end
	 * serves both outcomes; the old ROLLBACK then changed nothing. */
	if (!c->depth) {
		if (rc == CFS_OK)
			rc = cfs_fail(err, CFS_ERR_INTERNAL,
				      "%s: no transaction to commit", c->what);
		return rc;
	}
	if (--c->depth) {
		if (rc)
			sqlite3_exec(c->db, "ROLLBACK TO nested", NULL, NULL,
				     NULL);
		/* Released either way: what it kept is the outer one's to
		 * commit or undo. */
		if (sqlite3_exec(c->db, "RELEASE nested", NULL, NULL, NULL) !=
			    SQLITE_OK &&
		    rc == CFS_OK)
			rc = cfs_sql_fail(c, sqlite3_extended_errcode(c->db),
					  err);
		return rc;
	}
	reset_stopped(c);
	if (rc == CFS_OK)
		rc = cfs_sql_script(c, "COMMIT", err);
	if (rc)
		sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* Opens path with SQLite's flags, the busy handler set. */
static enum cfs_err open_db(struct cfs_sql *c, const char *path,
			    const char *what, int flags, struct cfs_error *err)
{
	int rc;

	memset(c, 0, sizeof(*c));
	c->what = what;
	rc = sqlite3_open_v2(path, &c->db,
			     flags | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW,
			     NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_busy_handler(c->db, wait_turn, c);
	if (rc != SQLITE_OK) {
		cfs_fail(err, CFS_ERR_INTERNAL, "cannot open %s '%s': %s", what,
			 path,
			 c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
		cfs_sql_close(c);
		return CFS_ERR_INTERNAL;
	}
	return CFS_OK;
}

enum cfs_err cfs_sql_open(struct cfs_sql *c, const char *path, const char *what,
			  const char *synchronous, struct cfs_error *err)
{
	char pragmas[128];
	bool created = access(path, F_OK) != 0;

	if (open_db(c, path, what, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
		    err))
		return err->code;
	/*
	 * A database we made is private, and so are the -wal and -shm that
	 * the pragmas below make: SQLite gives them the database's mode.
	 * chmod(2), not an open(2) and close(2) of our own, which would drop
	 * the POSIX locks every other connection of this process holds on
	 * the file, so that another process's closing connection would take
	 * itself for the last one and unlink the -wal and -shm in use.
	 */
	if (created && chmod(path, 0600)) {
		cfs_fail(err, CFS_ERR_INTERNAL,
			 "cannot make %s '%s' private: %s", what, path,
			 strerror(errno));
		cfs_sql_close(c);
		return err->code;
	}
	snprintf(pragmas, sizeof(pragmas),
		 "PRAGMA journal_mode=WAL; PRAGMA synchronous=%s;"
		 " PRAGMA foreign_keys=ON;",
		 synchronous);
	if (cfs_sql_script(c, pragmas, err)) {
		cfs_sql_close(c);
		return err->code;
	}
	return CFS_OK;
}

enum cfs_err cfs_sql_open_reader(struct cfs_sql *c, const char *path,
				 const char *what, struct cfs_error *err)
{
	int on = 0, rc;

	if (open_db(c, path, what, SQLITE_OPEN_READONLY, err))
		return err->code;
	rc = sqlite3_db_config(c->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, &on);
	if (rc != SQLITE_OK || !on) {
		cfs_fail(
			err, CFS_ERR_INTERNAL,
			"cannot open %s '%s' to read: no checkpoint-on-close setting: %s",
			what, path, sqlite3_errmsg(c->db));
		cfs_sql_close(c);
		return CFS_ERR_INTERNAL;
	}
	return CFS_OK;
}

void cfs_sql_close(struct cfs_sql *c)
{
	for (size_t i = 0; i < CFS_SQL_STMT_SLOTS; i++)
		sqlite3_finalize(c->stmts[i].stmt);
	sqlite3_close(c->db);
	memset(c, 0, sizeof(*c));
}

static size_t slot_of(const char *sql)
{
	return (size_t)(((uintptr_t)sql >> 3) * 0x9e3779b97f4a7c15ull >> 57);
}

static sqlite3_stmt *stmt_cached(struct cfs_sql *c, const char *sql,
				 struct cfs_error *err)
{
	size_t i = slot_of(sql) % CFS_SQL_STMT_SLOTS;
	int rc;

	for (size_t probes = 0; probes < CFS_SQL_STMT_SLOTS; probes++) {
		if (c->stmts[i].sql == sql) {
			sqlite3_reset(c->stmts[i].stmt);
			sqlite3_clear_bindings(c->stmts[i].stmt);
			return c->stmts[i].stmt;
		}
		if (!c->stmts[i].sql)
			break;
		i = (i + 1) % CFS_SQL_STMT_SLOTS;
	}
	/* The table holds every statement of a program with room to spare;
	 * a full table is a programming error, not a runtime one. */
	if (c->stmts[i].sql) {
		cfs_fail(err, CFS_ERR_INTERNAL, "%s: statement cache is full",
			 c->what);
		return NULL;
	}
	rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
				&c->stmts[i].stmt, NULL);
	if (rc != SQLITE_OK) {
		cfs_sql_fail(c, rc, err);
		return NULL;
	}
	c->stmts[i].sql = sql;
	return c->stmts[i].stmt;
}

static int bind_one(sqlite3_stmt *st, int i, char type, va_list *ap)
{
	switch (type) {
	case 'i':
		return sqlite3_bind_int64(st, i, va_arg(*ap, int64_t));
	case 'I': {
		int64_t v = va_arg(*ap, int64_t);

		return v ? sqlite3_bind_int64(st, i, v)
			 : sqlite3_bind_null(st, i);
	}
	case 'd':
		return sqlite3_bind_double(st, i, va_arg(*ap, double));
	case 't':
		return sqlite3_bind_text(st, i, va_arg(*ap, const char *), -1,
					 SQLITE_STATIC);
	case 's': {
		const char *p = va_arg(*ap, const char *);
		size_t len = va_arg(*ap, size_t);

		return sqlite3_bind_text64(st, i, p, len, SQLITE_STATIC,
					   SQLITE_UTF8);
	}
	case 'b': {
		const void *p = va_arg(*ap, const void *);
		size_t len = va_arg(*ap, size_t);

		return len ? sqlite3_bind_blob64(st, i, p, len, SQLITE_STATIC)
			   : sqlite3_bind_null(st, i);
	}
	}
	return sqlite3_bind_null(st, i);
}

sqlite3_stmt *cfs_sql_vstmt(struct cfs_sql *c, const char *sql,
			    struct cfs_error *err, const char *fmt, va_list *ap)
{
	sqlite3_stmt *st = stmt_cached(c, sql, err);
	int rc = SQLITE_OK;

	for (int i = 0; st && rc == SQLITE_OK && fmt[i]; i++)
		rc = bind_one(st, i + 1, fmt[i], ap);
	if (st && rc != SQLITE_OK) {
		cfs_sql_fail(c, rc, err);
		return NULL;
	}
	return st;
}

sqlite3_stmt *cfs_sql_stmt(struct cfs_sql *c, const char *sql,
			   struct cfs_error *err, const char *fmt, ...)
{
	sqlite3_stmt *st;
	va_list ap;

	va_start(ap, fmt);
	st = cfs_sql_vstmt(c, sql, err, fmt, &ap);
	va_end(ap);
	return st;
}

enum cfs_err cfs_sql_step(struct cfs_sql *c, sqlite3_stmt *st, bool *row,
			  struct cfs_error *err)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_ROW)
		after(c, st);
	*row = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return CFS_OK;
	return cfs_sql_fail(c, rc, err);
}

enum cfs_err cfs_sql_int64(struct cfs_sql *c, sqlite3_stmt *st, int64_t *out,
			   bool *found, struct cfs_error *err)
{
	enum cfs_err rc;

	*found = false;
	if (!st)
		return err->code;
	rc = cfs_sql_step(c, st, found, err);
	if (rc == CFS_OK && *found)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc;
}

enum cfs_err cfs_sql_exec(struct cfs_sql *c, const char *sql,
			  struct cfs_error *err, const char *fmt, ...)
{
	sqlite3_stmt *st;
	bool row;
	va_list ap;

	va_start(ap, fmt);
	st = cfs_sql_vstmt(c, sql, err, fmt, &ap);
	va_end(ap);
	if (!st)
		return err->code;
	return cfs_sql_step(c, st, &row, err);
}

bool cfs_sql_in_transaction(struct cfs_sql *c)
{
	return !sqlite3_get_autocommit(c->db);
}

int cfs_sql_user_version(struct cfs_sql *c)
{
	sqlite3_stmt *st = NULL;
	int version = -1;

	if (sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &st, NULL) ==
		    SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return version;
}

void cfs_sql_pool_init(struct cfs_sql_pool *p, const char *path,
		       const char *what, const char *synchronous,
		       size_t conn_size)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->what = what;
	p->synchronous = synchronous;
	p->conn_size = conn_size;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->checkpoint_lock, NULL);
}

/* SQLite's autocheckpoint, at the same size of the log: the checkpointer
 * is told at each CHECKPOINT_PAGES more.  Its passive checkpoint runs
 * beside the commits, and a log restarts only when one copied all of it
 * before the next commit: commits that never pause (rm -rf) would grow
 * the log without end, so at CHECKPOINT_INLINE_PAGES the commit's own
 * thread checkpoints what is left, the log restarting at its next one. */
#define CHECKPOINT_PAGES	1000
#define CHECKPOINT_INLINE_PAGES (10 * CHECKPOINT_PAGES)

/* After each commit of a pool's writer connection (sqlite3_wal_hook(),
 * which takes the place of the autocheckpoint): pages, the log's size. */
static int after_commit(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct cfs_sql_pool *p = arg;
	bool told = false;

	if (pages < CHECKPOINT_PAGES)
		return SQLITE_OK;
	pthread_mutex_lock(&p->checkpoint_lock);
	if (p->checkpoint_fn && pages < CHECKPOINT_INLINE_PAGES) {
		/* Once a thousand pages, or again after a restart. */
		if (pages < p->checkpoint_told ||
		    pages >= p->checkpoint_told + CHECKPOINT_PAGES) {
			p->checkpoint_told = pages;
			p->checkpoint_fn(p->checkpoint_arg);
		}
		told = true;
	}
	pthread_mutex_unlock(&p->checkpoint_lock);
	if (!told)
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
					  NULL, NULL);
	return SQLITE_OK;
}

void cfs_sql_pool_checkpoint_by(struct cfs_sql_pool *p, void (*fn)(void *arg),
				void *arg)
{
	pthread_mutex_lock(&p->checkpoint_lock);
	p->checkpoint_fn = fn;
	p->checkpoint_arg = arg;
	pthread_mutex_unlock(&p->checkpoint_lock);
}

enum cfs_err cfs_sql_checkpoint(struct cfs_sql *c, struct cfs_error *err)
{
	int rc = sqlite3_wal_checkpoint_v2(
		c->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);

	/* Busy: another connection checkpoints now. */
	return rc == SQLITE_OK || rc == SQLITE_BUSY ? CFS_OK
						    : cfs_sql_fail(c, rc, err);
}

struct cfs_sql *cfs_sql_pool_acquire(struct cfs_sql_pool *p,
				     struct cfs_error *err)
{
	struct cfs_sql *c;

	pthread_mutex_lock(&p->lock);
	c = p->free;
	if (c)
		p->free = c->next_free;
	pthread_mutex_unlock(&p->lock);
	if (c)
		return c;
	c = calloc(1, p->conn_size);
	if (!c) {
		cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (p->reader
		    ? cfs_sql_open_reader(c, p->path, p->what, err)
		    : cfs_sql_open(c, p->path, p->what, p->synchronous, err)) {
		free(c);
		return NULL;
	}
	if (!p->reader)
		sqlite3_wal_hook(c->db, after_commit, p);
	return c;
}

void cfs_sql_pool_release(struct cfs_sql_pool *p, struct cfs_sql *c)
{
	reset_stopped(c);
	pthread_mutex_lock(&p->lock);
	c->next_free = p->free;
	p->free = c;
	pthread_mutex_unlock(&p->lock);
}

void cfs_sql_pool_destroy(struct cfs_sql_pool *p)
{
	while (p->free) {
		struct cfs_sql *c = p->free;

		p->free = c->next_free;
		cfs_sql_close(c);
		free(c);
	}
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->checkpoint_lock);
}
