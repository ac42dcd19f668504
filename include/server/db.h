/*
 * The SQL seam under the metadata store: one engine-neutral way to run a
 * statement with typed parameters, step through its rows and read typed
 * columns, inside transactions, over a pool of connections.  The store's
 * logic (server/meta_sql*.c) is written once against it; a driver per
 * engine (server/db_sqlite.c, server/db_pg.c) does the rest.
 *
 * SQL handed to db_stmt() is written in the dialect both engines accept:
 * parameters as ?1, ?2, ... (a driver renumbers them as it needs), upserts
 * with INSERT ... ON CONFLICT, new ids with RETURNING, no engine-specific
 * functions.  What differs (column types, identity columns, the schema and
 * its upgrades) stays in each engine's open function.
 *
 * A connection is used by one thread at a time, between db_acquire() and
 * db_release().  Statements are prepared once per connection and found
 * again by the address of their SQL literal; a statement's columns are
 * valid until it is stepped again, reset, or prepared again.
 */
#ifndef SERVER_DB_H
#define SERVER_DB_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloudfs/error.h"

struct db;
struct db_stmt; /* the driver's */

/* What db_lock() does with an advisory lock. */
enum db_lock {
	DB_LOCK_SHARED, /* takes the key shared, waiting while it is held
			 * exclusively */
	DB_LOCK_TRY,	/* takes the key exclusively if nobody holds it;
			 * *got says whether it did, at once */
	DB_LOCK_HELD,	/* *got: the connection still holds every lock it
			 * took (it was not lost meanwhile) */
	DB_UNLOCK_ALL,	/* lets go of every lock the connection holds */
};

/* A connection: drivers embed it first in their own. */
struct db_conn {
	struct db *db;
	struct db_conn *next_free; /* the pool's */
};

struct db_ops {
	/* Opens one more connection to the database. */
	enum cfs_err (*connect)(struct db *db, struct db_conn **out,
				struct cfs_error *err);
	void (*disconnect)(struct db_conn *c);
	/* Frees what the driver keeps beside its connections. */
	void (*close)(struct db *db);

	/* A cached statement with parameters bound from fmt (db_stmt()). */
	struct db_stmt *(*stmt)(struct db_conn *c, const char *sql,
				struct cfs_error *err, const char *fmt,
				va_list *ap);
	enum cfs_err (*step)(struct db_conn *c, struct db_stmt *st, bool *row,
			     struct cfs_error *err);
	void (*reset)(struct db_conn *c, struct db_stmt *st);
	int64_t (*int64)(struct db_stmt *st, int col);
	const char *(*text)(struct db_stmt *st, int col);
	const void *(*blob)(struct db_stmt *st, int col, size_t *len);
	/* Rows the last INSERT, UPDATE or DELETE changed. */
	uint64_t (*changes)(struct db_conn *c);

	/* Transactions: db_begin() and db_end(). */
	enum cfs_err (*begin)(struct db_conn *c, bool write,
			      struct cfs_error *err);
	enum cfs_err (*end)(struct db_conn *c, enum cfs_err rc,
			    struct cfs_error *err);
	/* After a failed transaction: whether it failed only because another
	 * one ran at the same time, so that running it again may succeed. */
	bool (*retryable)(struct db_conn *c);
	/* Tells other processes, once the transaction commits, that
	 * namespace ns changed; NULL when the engine has no such channel. */
	enum cfs_err (*announce)(struct db_conn *c, int64_t ns,
				 struct cfs_error *err);
	/* Advisory locks shared by every process on the database (db_lock());
	 * NULL when one process has the database to itself. */
	enum cfs_err (*lock)(struct db_conn *c, enum db_lock how, int64_t key,
			     bool *got, struct cfs_error *err);
};

/* A database: the driver's table and the pool of idle connections. */
struct db {
	const struct db_ops *ops;
	pthread_mutex_t lock; /* protects free */
	struct db_conn *free; /* idle connections, kept open */
};

/* Sets up the pool of a driver's database (drivers call it at open). */
void db_init(struct db *db, const struct db_ops *ops);

/* Closes every connection (all must have been released), then db. */
void db_close(struct db *db);

/* A connection for the calling thread alone; NULL with *err set when a
 * new one cannot be opened. */
struct db_conn *db_acquire(struct db *db, struct cfs_error *err);
void db_release(struct db_conn *c);

/*
 * A cached, reset statement for the SQL literal sql, with parameters bound
 * from fmt: 'i' int64_t, 'I' int64_t with 0 bound as NULL, 't'
 * NUL-terminated text (NULL pointer: NULL), 's' text as a pointer and a
 * size_t, 'b' a blob as a pointer and a size_t (size 0: NULL).  What the
 * pointers point to must stay until the statement is stepped.  NULL (and
 * *err set) on failure.
 */
struct db_stmt *db_stmt(struct db_conn *c, const char *sql,
			struct cfs_error *err, const char *fmt, ...);

/* Steps st: CFS_OK with *row telling whether a row came, or an error. */
enum cfs_err db_step(struct db_conn *c, struct db_stmt *st, bool *row,
		     struct cfs_error *err);

/* Lets go of st's rows (the statement stays cached). */
void db_reset(struct db_conn *c, struct db_stmt *st);

/* Steps st (NULL: *err is set already) for one row and reads its first
 * column into *out when there is one (*found); resets st after. */
enum cfs_err db_int64(struct db_conn *c, struct db_stmt *st, int64_t *out,
		      bool *found, struct cfs_error *err);

/* Runs a cached statement whose rows, if any, are not read. */
enum cfs_err db_exec(struct db_conn *c, const char *sql, struct cfs_error *err,
		     const char *fmt, ...);

/* Columns of the current row, counted from 0.  NULL reads as 0, NULL
 * text and an empty or NULL blob as NULL (a blob's *len then 0). */
int64_t db_col_int64(struct db_conn *c, struct db_stmt *st, int col);
const char *db_col_text(struct db_conn *c, struct db_stmt *st, int col);
const void *db_col_blob(struct db_conn *c, struct db_stmt *st, int col,
			size_t *len);

uint64_t db_changes(struct db_conn *c);

/* Starts a transaction; write says whether it may write (the driver
 * header says what isolation each gets). */
enum cfs_err db_begin(struct db_conn *c, bool write, struct cfs_error *err);

/* Ends the transaction db_begin() started: commits when rc is CFS_OK and
 * rolls back otherwise (also when the commit fails).  Returns the
 * outcome. */
enum cfs_err db_end(struct db_conn *c, enum cfs_err rc, struct cfs_error *err);

/* See db_ops.retryable. */
bool db_retryable(struct db_conn *c);

/* See db_ops.announce: CFS_OK at once for an engine without one. */
enum cfs_err db_announce(struct db_conn *c, int64_t ns, struct cfs_error *err);

/*
 * Advisory locks, keyed by a number, that every process on the database
 * sees: what two processes must not do at once to one thing (garbage
 * collection and an upload of one block, server/meta_sql_gc.c).  They
 * belong to the connection, not to a transaction: they stay across
 * commits and rollbacks until DB_UNLOCK_ALL (so the connection must
 * not go back to the pool before), and go with the connection if it is
 * lost, which its next transaction then refuses rather than reconnect
 * silently (UNAVAILABLE).  On an engine without them (SQLite, one
 * process) every lock is granted at once, *got true: the process
 * excludes itself.
 */
enum cfs_err db_lock(struct db_conn *c, enum db_lock how, int64_t key,
		     bool *got, struct cfs_error *err);

/* The SQLite driver (server/db_sqlite.c): connections to the database
 * file at path, made by cfs_sql_open() (cloudfs/sql.h); what names it in
 * messages. */
enum cfs_err db_sqlite_open(const char *path, const char *what,
			    const char *synchronous, struct db **out,
			    struct cfs_error *err);

/* Told that namespace ns (0: any namespace) may have moved. */
typedef void (*db_heard_fn)(void *arg, int64_t ns);

/* The channel of PostgreSQL's NOTIFY the announcements go on, and the
 * key of the advisory lock that schema changes take. */
#define DB_PG_CHANNEL	  "cloudfs_ns"
#define DB_PG_SCHEMA_LOCK "7215001"

/*
 * The PostgreSQL driver (server/db_pg.c, libpq): connections to the
 * database conninfo names (a libpq connection string or URI; a password
 * from libpq's usual sources, PGPASSWORD or ~/.pgpass).
 *
 * First the schema: the database's version (table schema_version, 0 when
 * there is none) is brought to n_steps by running steps[v] for each
 * version v it lacks, in one transaction, under an advisory lock, so that
 * instances starting together create or upgrade it once.
 *
 * Isolation and locks:
 *  1. A write transaction is SERIALIZABLE.  The backend reads (a node's
 *     JID, a name's owner, a membership), decides and writes, as it does
 *     on SQLite where writers take turns; SERIALIZABLE makes every write
 *     transaction behave as if it ran alone, across connections and
 *     instances, so that logic holds unchanged.
 *  2. JIDs come from the namespace's row (UPDATE namespaces SET head =
 *     head + 1 ... RETURNING), whose row lock is held until the commit:
 *     a second commit to that namespace waits for it, and then fails as
 *     a collision and runs again.  So JID n+1 is taken only after the
 *     transaction that took n committed: rows become visible in JID order
 *     and a cursor never skips one.
 *  3. A read transaction is REPEATABLE READ, READ ONLY: one snapshot, so
 *     a listing's head and rows agree; it takes no row locks and never
 *     collides.
 *  4. A serialization failure (SQLSTATE 40001) or a deadlock (40P01)
 *     makes the transaction retryable (db_retryable()); the caller runs
 *     it again, a bounded number of times.
 *  5. announce() is pg_notify(DB_PG_CHANNEL, ns) inside the transaction:
 *     PostgreSQL delivers it at the commit, and never for a rollback.
 *
 * When heard is given, a thread LISTENs on a connection of its own and
 * calls heard(arg, ns) for every namespace announced by any process on
 * the database, this one included; when that connection is lost, it
 * calls heard(arg, 0) and again once it listens anew.
 */
enum cfs_err db_pg_open(const char *conninfo, const char *const *steps,
			int n_steps, db_heard_fn heard, void *arg,
			struct db **out, struct cfs_error *err);

#endif
