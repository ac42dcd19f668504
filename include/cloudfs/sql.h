/*
 * SQLite connections with a statement cache and typed parameter binding,
 * shared by the server's metadata store and the client's cache index.
 *
 * A connection is used by one thread at a time.  Statements are prepared
 * once per connection and found again by the address of their SQL literal,
 * so the SQL stays next to the code that runs it:
 *
 *	sqlite3_stmt *st = cfs_sql_stmt(c, "SELECT x FROM t WHERE id = ?1",
 *					err, "i", id);
 */
#ifndef CLOUDFS_SQL_H
#define CLOUDFS_SQL_H

#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloudfs/error.h"

#define CFS_SQL_STMT_SLOTS 128

struct cfs_sql {
	sqlite3 *db;
	const char *what; /* names the database in messages */
	struct {
		const char *sql;
		sqlite3_stmt *stmt;
	} stmts[CFS_SQL_STMT_SLOTS];
	struct cfs_sql *next_free; /* the pool's */
	uint64_t turn_seen;	   /* while waiting for a writer (lib/sql.c) */
	uint64_t busy_since;
	unsigned depth; /* cfs_sql_begin()s not ended yet */
};

/*
 * Opens (creating) the database at path in WAL mode with the given
 * synchronous setting ("FULL", "NORMAL"), waiting up to 10 s for another
 * writer to finish (lib/sql.c: writers take turns).  what names
 * it in every message ("metadata store").  A database it creates is
 * 0600, and so are its -wal and -shm files, whatever the umask.
 */
enum cfs_err cfs_sql_open(struct cfs_sql *c, const char *path, const char *what,
			  const char *synchronous, struct cfs_error *err);

/*
 * Opens the existing database at path only to read it, beside a writer in
 * another process (WAL readers and writers never block each other):
 * read-only, and with no checkpoint when it closes.  A connection that
 * closes and finds by SQLite's locks that it is the last one checkpoints
 * and deletes the write-ahead log and its shared-memory index; were a
 * writer's locks not where SQLite looks (a connection carried across
 * fork() holds none), that would delete them under the writer.  A reader
 * never checkpoints nor deletes them: it leaves them to the writers.
 */
enum cfs_err cfs_sql_open_reader(struct cfs_sql *c, const char *path,
				 const char *what, struct cfs_error *err);

void cfs_sql_close(struct cfs_sql *c);

/*
 * A cached, reset statement for the SQL literal sql, with parameters bound
 * from fmt: 'i' int64_t, 'I' int64_t with 0 bound as NULL, 'd' double,
 * 't' NUL-terminated text (NULL pointer: NULL), 's' text as a pointer and
 * a size_t, 'b' a blob as a pointer and a size_t (size 0: NULL), 'n' NULL.
 * NULL (and *err set) on failure.
 */
sqlite3_stmt *cfs_sql_stmt(struct cfs_sql *c, const char *sql,
			   struct cfs_error *err, const char *fmt, ...);

/* cfs_sql_stmt() with the parameters in ap. */
sqlite3_stmt *cfs_sql_vstmt(struct cfs_sql *c, const char *sql,
			    struct cfs_error *err, const char *fmt,
			    va_list *ap);

/* Steps st: CFS_OK with *row telling whether a row came, or an error. */
enum cfs_err cfs_sql_step(struct cfs_sql *c, sqlite3_stmt *st, bool *row,
			  struct cfs_error *err);

/* Steps st (NULL: *err is set already) for one row and reads its first
 * column into *out when there is one (*found); resets st after. */
enum cfs_err cfs_sql_int64(struct cfs_sql *c, sqlite3_stmt *st, int64_t *out,
			   bool *found, struct cfs_error *err);

/* Runs a cached statement that returns no row. */
enum cfs_err cfs_sql_exec(struct cfs_sql *c, const char *sql,
			  struct cfs_error *err, const char *fmt, ...);

/* Runs SQL text once, uncached (schema, BEGIN, COMMIT, PRAGMA). */
enum cfs_err cfs_sql_script(struct cfs_sql *c, const char *sql,
			    struct cfs_error *err);

/* Starts a transaction: BEGIN IMMEDIATE to write (takes the write lock
 * now, so the transaction never fails half way on a busy database), plain
 * BEGIN to read.  Inside a transaction already, a savepoint: its
 * cfs_sql_end() with an error undoes its own changes alone, and the
 * outermost one commits them all at once (many changes, one commit). */
enum cfs_err cfs_sql_begin(struct cfs_sql *c, bool write,
			   struct cfs_error *err);

/* Ends the transaction cfs_sql_begin() started: commits when rc is CFS_OK
 * and rolls back otherwise (also when the commit fails); a savepoint is
 * released, its changes undone first when rc is an error.  Returns the
 * outcome. */
enum cfs_err cfs_sql_end(struct cfs_sql *c, enum cfs_err rc,
			 struct cfs_error *err);

/*
 * Makes every transaction committed to c's database so far, by any
 * connection, durable: with synchronous=NORMAL a commit reaches the
 * write-ahead log but is fsync'ed only at a checkpoint, so a crash of the
 * machine (not of the process) could lose it until this is called.
 */
enum cfs_err cfs_sql_sync(struct cfs_sql *c, struct cfs_error *err);

/* Turns a failed SQLite call into an error: STORAGE_FULL for a full disk,
 * INTERNAL (logged) for anything else. */
enum cfs_err cfs_sql_fail(struct cfs_sql *c, int rc, struct cfs_error *err);

/* Whether c is inside a transaction (BEGIN without its end yet): what
 * functions that must run inside their caller's transaction assert(). */
bool cfs_sql_in_transaction(struct cfs_sql *c);

/* The database's schema version (PRAGMA user_version), or -1. */
int cfs_sql_user_version(struct cfs_sql *c);

/*
 * A pool of connections to one database, for many threads.  Connections
 * are opened on demand and kept; each is conn_size bytes (at least a
 * struct cfs_sql, which comes first), so a user may extend it.
 */
struct cfs_sql_pool {
	char path[PATH_MAX];
	const char *what;
	const char *synchronous;
	size_t conn_size;
	bool reader;	      /* connections by cfs_sql_open_reader() (false: by
			       * cfs_sql_open()); set before the first acquire */
	pthread_mutex_t lock; /* protects free */
	struct cfs_sql *free;
	/* Who checkpoints (cfs_sql_pool_checkpoint_by()), under its lock. */
	pthread_mutex_t checkpoint_lock;
	void (*checkpoint_fn)(void *arg);
	void *checkpoint_arg;
	int checkpoint_told; /* the log's size when fn was last told */
};

void cfs_sql_pool_init(struct cfs_sql_pool *p, const char *path,
		       const char *what, const char *synchronous,
		       size_t conn_size);

/* A connection for the calling thread alone, zeroed beyond its struct
 * cfs_sql the first time; NULL with *err set when it cannot be opened. */
struct cfs_sql *cfs_sql_pool_acquire(struct cfs_sql_pool *p,
				     struct cfs_error *err);
void cfs_sql_pool_release(struct cfs_sql_pool *p, struct cfs_sql *c);

/*
 * Checkpoints by fn: the pool's connections no longer checkpoint the
 * write-ahead log in the commit that takes it past SQLite's 1,000 pages
 * (its fsyncs included, in whichever thread commits: a FUSE handler's
 * unlink, say); fn(arg) is told instead, at each thousand pages more, and
 * runs cfs_sql_checkpoint() on a thread of its own.  A commit still does
 * at ten times that size (lib/sql.c).  fn NULL: the commits checkpoint
 * again.  Once it returns, no commit calls the fn it replaced.
 */
void cfs_sql_pool_checkpoint_by(struct cfs_sql_pool *p, void (*fn)(void *arg),
				void *arg);

/* Copies what it can of the write-ahead log into the database, without
 * waiting for readers or writers (SQLite's passive checkpoint). */
enum cfs_err cfs_sql_checkpoint(struct cfs_sql *c, struct cfs_error *err);

/* Closes every connection; all must have been released. */
void cfs_sql_pool_destroy(struct cfs_sql_pool *p);

#endif
