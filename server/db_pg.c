/*
 * The PostgreSQL driver of the SQL seam (server/db.h), on libpq.  The
 * isolation levels, locks and retries it gives the metadata backend are
 * stated in db.h, at db_pg_open().
 *
 * Statements are prepared on a connection the first time it runs them
 * (named s<slot>, the slot found by the address of the SQL literal as in
 * cloudfs/sql.h), with ?N renumbered $N and each parameter typed from
 * its format letter (int8, text or bytea).  Results come as text; a
 * bytea column is decoded when it is read.  A connection found broken
 * (the server restarted, the network failed) is reset at the start of
 * the next transaction, and its prepared statements are forgotten.
 *
 * The listener: one thread with a connection of its own LISTENs on
 * DB_PG_CHANNEL and hands each payload (a namespace id) to heard().  When
 * that connection is lost it is made again, and heard(arg, 0) tells that
 * any namespace may have moved meanwhile.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloudfs/log.h"
#include "cloudfs/platform.h"
#include "server/db.h"

#define PG_SLOTS      128
#define PG_MAX_PARAMS 24

/* Type OIDs of the parameters (PostgreSQL's pg_type.dat). */
#define OID_BYTEA 17
#define OID_INT8  20
#define OID_TEXT  25
#define OID_BOOL  16

/* How long the listener waits before it tries to connect again. */
#define RELISTEN_MS 1000

struct pg_stmt {
	const char *sql; /* the literal; NULL: a free slot */
	int n_params;
	PGresult *res; /* the rows of the last run; NULL: not run */
	int row;       /* the current row of res */
	const char *values[PG_MAX_PARAMS];
	int lengths[PG_MAX_PARAMS];
	int formats[PG_MAX_PARAMS];
	char ints[PG_MAX_PARAMS][24];
	unsigned char *blob; /* the bytea column read last, decoded */
};

struct pg_conn {
	struct db_conn base;
	PGconn *pg;
	bool retry;	  /* the last failure was a collision */
	uint64_t changes; /* rows the last statement changed */
	bool locked;	  /* holds advisory locks (db_lock()) */
	struct pg_stmt stmts[PG_SLOTS];
};

struct pg_db {
	struct db base;
	char *conninfo;
	db_heard_fn heard; /* NULL: no listener */
	void *heard_arg;
	pthread_t listener;
	int stop[2]; /* a byte written to stop[1] stops the listener */
};

static struct pg_conn *conn_of(struct db_conn *c)
{
	return (struct pg_conn *)c;
}

static struct pg_stmt *st_of(struct db_stmt *st)
{
	return (struct pg_stmt *)st;
}

/* The message of a failed call, without libpq's final newline. */
static int msg_len(const char *msg)
{
	size_t n = strlen(msg);

	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	return (int)n;
}

/* Turns a failed result of pg (NULL: a failure of the connection) into
 * an error; a collision sets *retry and is not logged. */
static enum cfs_err pg_fail(PGconn *pg, const PGresult *res, bool *retry,
			    struct cfs_error *err)
{
	const char *state =
		res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res && *PQresultErrorMessage(res)
				  ? PQresultErrorMessage(res)
				  : PQerrorMessage(pg);

	if (state && (!strcmp(state, "40001") || !strcmp(state, "40P01"))) {
		*retry = true;
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"metadata store: a transaction collided: %.*s",
				msg_len(msg), msg);
	}
	if (state && !strcmp(state, "53100"))
		return cfs_fail(err, CFS_ERR_STORAGE_FULL,
				"metadata store is full: %.*s", msg_len(msg),
				msg);
	cfs_log_error("metadata store failed: %.*s", msg_len(msg), msg);
	return cfs_fail(err, CFS_ERR_INTERNAL, "metadata store failed: %.*s",
			msg_len(msg), msg);
}

/* Runs SQL without parameters whose rows, if any, are not read (BEGIN,
 * COMMIT, LISTEN, a schema). */
static enum cfs_err pg_command(PGconn *pg, const char *sql, bool *retry,
			       struct cfs_error *err)
{
	PGresult *res = PQexec(pg, sql);
	ExecStatusType status = PQresultStatus(res);
	enum cfs_err rc =
		status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK
			? CFS_OK
			: pg_fail(pg, res, retry, err);

	PQclear(res);
	return rc;
}

/* PostgreSQL's notices ("relation ... already exists, skipping") say
 * nothing an operator needs: libpq would print them on stderr. */
static void notice_drop(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

/* A new connection to conninfo, speaking UTF-8; NULL with *err set. */
static PGconn *pg_connect(const char *conninfo, struct cfs_error *err)
{
	PGconn *pg = PQconnectdb(conninfo);

	PQsetNoticeProcessor(pg, notice_drop, NULL);
	if (PQstatus(pg) != CONNECTION_OK || PQsetClientEncoding(pg, "UTF8")) {
		const char *msg = PQerrorMessage(pg);

		cfs_fail(err, CFS_ERR_INTERNAL,
			 "cannot connect to the metadata store: %.*s",
			 msg_len(msg), msg);
		PQfinish(pg);
		return NULL;
	}
	return pg;
}

static enum cfs_err pgdrv_connect(struct db *base, struct db_conn **out,
				  struct cfs_error *err)
{
	struct pg_db *db = (struct pg_db *)base;
	struct pg_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	c->pg = pg_connect(db->conninfo, err);
	if (!c->pg) {
		free(c);
		return err->code;
	}
	*out = &c->base;
	return CFS_OK;
}

static void stmt_clear(struct pg_stmt *st)
{
	PQclear(st->res);
	st->res = NULL;
	PQfreemem(st->blob);
	st->blob = NULL;
}

/* Forgets every statement (the connection was reset, or closes). */
static void stmts_forget(struct pg_conn *c)
{
	for (size_t i = 0; i < PG_SLOTS; i++) {
		stmt_clear(&c->stmts[i]);
		c->stmts[i].sql = NULL;
	}
}

static void pgdrv_disconnect(struct db_conn *base)
{
	struct pg_conn *c = conn_of(base);

	stmts_forget(c);
	PQfinish(c->pg);
	free(c);
}

static size_t slot_of(const char *sql)
{
	return (size_t)(((uintptr_t)sql >> 3) * 0x9e3779b97f4a7c15ull >> 57);
}

/* sql with each ?N written $N, malloc'd. */
static char *renumbered(const char *sql)
{
	char *out = strdup(sql);

	for (char *p = out; p && *p; p++)
		if (*p == '?' && p[1] >= '0' && p[1] <= '9')
			*p = '$';
	return out;
}

static Oid type_of(char f)
{
	switch (f) {
	case 'i':
	case 'I':
		return OID_INT8;
	case 't':
	case 's':
		return OID_TEXT;
	case 'b':
		return OID_BYTEA;
	}
	return 0;
}

/* Prepares sql in slot i of c for parameters of the formats fmt. */
static enum cfs_err prepare(struct pg_conn *c, size_t i, const char *sql,
			    const char *fmt, struct cfs_error *err)
{
	struct pg_stmt *st = &c->stmts[i];
	Oid types[PG_MAX_PARAMS];
	char name[24], *text = renumbered(sql);
	int n = (int)strlen(fmt);
	PGresult *res;
	enum cfs_err rc = CFS_OK;

	/* Both are the program's, not the input's: an error here is ours. */
	if (!text || n > PG_MAX_PARAMS) {
		free(text);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"metadata store: cannot prepare '%s'", sql);
	}
	for (int k = 0; k < n; k++)
		types[k] = type_of(fmt[k]);
	snprintf(name, sizeof(name), "s%zu", i);
	res = PQprepare(c->pg, name, text, n, types);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		rc = pg_fail(c->pg, res, &c->retry, err);
	PQclear(res);
	free(text);
	if (rc == CFS_OK) {
		st->sql = sql;
		st->n_params = n;
	}
	return rc;
}

static struct pg_stmt *stmt_cached(struct pg_conn *c, const char *sql,
				   const char *fmt, struct cfs_error *err)
{
	size_t i = slot_of(sql) % PG_SLOTS;

	for (size_t probes = 0; probes < PG_SLOTS; probes++) {
		if (c->stmts[i].sql == sql)
			return &c->stmts[i];
		if (!c->stmts[i].sql)
			break;
		i = (i + 1) % PG_SLOTS;
	}
	if (c->stmts[i].sql) {
		cfs_fail(err, CFS_ERR_INTERNAL,
			 "metadata store: statement cache is full");
		return NULL;
	}
	return prepare(c, i, sql, fmt, err) ? NULL : &c->stmts[i];
}

/* Binds parameter k of st from ap as format f says. */
static void bind_one(struct pg_stmt *st, int k, char f, va_list *ap)
{
	st->values[k] = NULL;
	st->lengths[k] = 0;
	st->formats[k] = 0;
	switch (f) {
	case 'i':
	case 'I': {
		int64_t v = va_arg(*ap, int64_t);

		if (f == 'i' || v) {
			snprintf(st->ints[k], sizeof(st->ints[k]), "%" PRId64,
				 v);
			st->values[k] = st->ints[k];
		}
		break;
	}
	case 't':
		st->values[k] = va_arg(*ap, const char *);
		break;
	case 's':
	case 'b': {
		/* Binary: text's is its bytes, bytea's too. */
		const char *p = va_arg(*ap, const char *);
		size_t len = va_arg(*ap, size_t);

		if (f == 's' || len) {
			st->values[k] = p;
			st->lengths[k] = (int)len;
			st->formats[k] = 1;
		}
		break;
	}
	}
}

static struct db_stmt *pgdrv_stmt(struct db_conn *base, const char *sql,
				  struct cfs_error *err, const char *fmt,
				  va_list *ap)
{
	struct pg_conn *c = conn_of(base);
	struct pg_stmt *st = stmt_cached(c, sql, fmt, err);

	if (!st)
		return NULL;
	stmt_clear(st);
	for (int k = 0; fmt[k]; k++)
		bind_one(st, k, fmt[k], ap);
	return (struct db_stmt *)st;
}

/* The first step runs the statement and keeps all its rows. */
static enum cfs_err run(struct pg_conn *c, struct pg_stmt *st,
			struct cfs_error *err)
{
	char name[24];
	ExecStatusType status;

	snprintf(name, sizeof(name), "s%zu", (size_t)(st - c->stmts));
	st->res = PQexecPrepared(c->pg, name, st->n_params, st->values,
				 st->lengths, st->formats, 0);
	status = PQresultStatus(st->res);
	if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
		enum cfs_err rc = pg_fail(c->pg, st->res, &c->retry, err);

		stmt_clear(st);
		return rc;
	}
	c->changes = strtoull(PQcmdTuples(st->res), NULL, 10);
	st->row = -1;
	return CFS_OK;
}

static enum cfs_err pgdrv_step(struct db_conn *base, struct db_stmt *s,
			       bool *row, struct cfs_error *err)
{
	struct pg_conn *c = conn_of(base);
	struct pg_stmt *st = st_of(s);

	*row = false;
	if (!st->res) {
		enum cfs_err rc = run(c, st, err);

		if (rc)
			return rc;
	}
	PQfreemem(st->blob);
	st->blob = NULL;
	if (st->row < PQntuples(st->res))
		st->row++;
	*row = st->row < PQntuples(st->res);
	return CFS_OK;
}

static void pgdrv_reset(struct db_conn *c, struct db_stmt *st)
{
	(void)c;
	stmt_clear(st_of(st));
}

/* The current row's value of col, or NULL when it is NULL. */
static const char *value(struct pg_stmt *st, int col)
{
	return PQgetisnull(st->res, st->row, col)
		       ? NULL
		       : PQgetvalue(st->res, st->row, col);
}

static int64_t pgdrv_int64(struct db_stmt *s, int col)
{
	struct pg_stmt *st = st_of(s);
	const char *v = value(st, col);

	if (!v)
		return 0;
	if (PQftype(st->res, col) == OID_BOOL)
		return *v == 't';
	return strtoll(v, NULL, 10);
}

static const char *pgdrv_text(struct db_stmt *s, int col)
{
	return value(st_of(s), col);
}

static const void *pgdrv_blob(struct db_stmt *s, int col, size_t *len)
{
	struct pg_stmt *st = st_of(s);
	const char *v = value(st, col);

	PQfreemem(st->blob);
	st->blob = NULL;
	*len = 0;
	if (v)
		st->blob = PQunescapeBytea((const unsigned char *)v, len);
	if (!st->blob)
		*len = 0;
	return *len ? st->blob : NULL;
}

static uint64_t pgdrv_changes(struct db_conn *c)
{
	return conn_of(c)->changes;
}

/* Makes c's connection again if it was lost; its statements go.  Not
 * while it held advisory locks: they went with it, and whoever took them
 * must learn that rather than go on without them (db_lock()). */
static enum cfs_err reconnect(struct pg_conn *c, struct cfs_error *err)
{
	if (c->locked) {
		c->locked = false;
		return cfs_fail(
			err, CFS_ERR_UNAVAILABLE,
			"metadata store: the connection that held advisory locks was lost, and the locks with it");
	}
	stmts_forget(c);
	PQreset(c->pg);
	if (PQstatus(c->pg) == CONNECTION_OK &&
	    PQsetClientEncoding(c->pg, "UTF8") == 0)
		return CFS_OK;
	return pg_fail(c->pg, NULL, &c->retry, err);
}

static enum cfs_err pgdrv_begin(struct db_conn *base, bool write,
				struct cfs_error *err)
{
	static const char *const begin[] = {
		"BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
		"BEGIN ISOLATION LEVEL SERIALIZABLE",
	};
	struct pg_conn *c = conn_of(base);
	enum cfs_err rc = CFS_OK;

	c->retry = false;
	if (PQstatus(c->pg) != CONNECTION_OK)
		rc = reconnect(c, err);
	if (rc == CFS_OK)
		rc = pg_command(c->pg, begin[write], &c->retry, err);
	/* A connection that broke while idle says so only now. */
	if (rc && PQstatus(c->pg) != CONNECTION_OK &&
	    reconnect(c, err) == CFS_OK)
		rc = pg_command(c->pg, begin[write], &c->retry, err);
	return rc;
}

static enum cfs_err pgdrv_end(struct db_conn *base, enum cfs_err rc,
			      struct cfs_error *err)
{
	struct pg_conn *c = conn_of(base);

	for (size_t i = 0; i < PG_SLOTS; i++)
		stmt_clear(&c->stmts[i]);
	if (rc == CFS_OK)
		rc = pg_command(c->pg, "COMMIT", &c->retry, err);
	if (rc && PQstatus(c->pg) == CONNECTION_OK)
		PQclear(PQexec(c->pg, "ROLLBACK"));
	return rc;
}

static bool pgdrv_retryable(struct db_conn *c)
{
	return conn_of(c)->retry;
}

static enum cfs_err pgdrv_announce(struct db_conn *c, int64_t ns,
				   struct cfs_error *err)
{
	return db_exec(
		c, "SELECT pg_notify('" DB_PG_CHANNEL "', CAST(?1 AS TEXT))",
		err, "i", ns);
}

/* Session-level advisory locks (db.h, db_lock()), the single-key kind:
 * one statement, its one row read as a boolean into *got. */
static enum cfs_err lock_once(struct db_conn *c, enum db_lock how, int64_t key,
			      bool *got, struct cfs_error *err)
{
	static const char *const sql[] = {
		[DB_LOCK_SHARED] = "SELECT pg_advisory_lock_shared(?1) IS NULL",
		[DB_LOCK_TRY] = "SELECT pg_try_advisory_lock(?1)",
		[DB_LOCK_HELD] = "SELECT COUNT(*) > 0 FROM pg_locks"
				 " WHERE locktype = 'advisory' AND granted"
				 " AND pid = pg_backend_pid()",
		[DB_UNLOCK_ALL] = "SELECT pg_advisory_unlock_all() IS NULL",
	};
	bool keyed = how == DB_LOCK_SHARED || how == DB_LOCK_TRY;
	struct db_stmt *st = db_stmt(c, sql[how], err, keyed ? "i" : "", key);
	enum cfs_err rc = st ? db_step(c, st, got, err) : err->code;

	if (rc == CFS_OK && *got)
		*got = !strcmp(db_col_text(c, st, 0), "t");
	if (st)
		db_reset(c, st);
	return rc;
}

static enum cfs_err pgdrv_lock(struct db_conn *base, enum db_lock how,
			       int64_t key, bool *got, struct cfs_error *err)
{
	struct pg_conn *c = conn_of(base);
	enum cfs_err rc;

	if (how == DB_LOCK_HELD && !c->locked)
		return CFS_OK;
	rc = lock_once(base, how, key, got, err);
	/* A connection that broke while idle says so only now (as at
	 * begin); one that held locks is not made again (reconnect()). */
	if (rc && PQstatus(c->pg) != CONNECTION_OK && how != DB_UNLOCK_ALL &&
	    reconnect(c, err) == CFS_OK)
		rc = lock_once(base, how, key, got, err);
	if (how == DB_UNLOCK_ALL)
		c->locked = false;
	else if (rc == CFS_OK && *got && how != DB_LOCK_HELD)
		c->locked = true;
	return rc;
}

/* The listener's connection, listening; NULL when it cannot be made. */
static PGconn *listen_connect(struct pg_db *db, struct cfs_error *err)
{
	PGconn *pg = pg_connect(db->conninfo, err);
	bool retry;

	if (pg && pg_command(pg, "LISTEN " DB_PG_CHANNEL, &retry, err)) {
		PQfinish(pg);
		pg = NULL;
	}
	return pg;
}

/* Waits for fd (-1: none) to be readable, or for the stop pipe, or for
 * timeout_ms (-1: no end); false when the listener must stop. */
static bool listen_wait(struct pg_db *db, int fd, int timeout_ms)
{
	struct pollfd p[2] = {
		{ .fd = db->stop[0], .events = POLLIN },
		{ .fd = fd, .events = POLLIN },
	};

	while (poll(p, fd >= 0 ? 2 : 1, timeout_ms) < 0 && errno == EINTR)
		;
	return !(p[0].revents & (POLLIN | POLLHUP));
}

/* Hands every notification that came to heard(); false when the
 * connection is lost. */
static bool listen_drain(struct pg_db *db, PGconn *pg)
{
	PGnotify *n;

	if (!PQconsumeInput(pg))
		return false;
	while ((n = PQnotifies(pg))) {
		int64_t ns = strtoll(n->extra, NULL, 10);

		if (ns > 0)
			db->heard(db->heard_arg, ns);
		PQfreemem(n);
	}
	return PQstatus(pg) == CONNECTION_OK;
}

static void *listen_thread(void *arg)
{
	struct pg_db *db = arg;
	struct cfs_error err;
	PGconn *pg = NULL;
	bool lost = false;

	for (;;) {
		if (!pg && (pg = listen_connect(db, &err)) && lost) {
			/* What was committed meanwhile was never heard. */
			cfs_log_info("listening to the metadata store again");
			db->heard(db->heard_arg, 0);
			lost = false;
		}
		if (!pg && !lost) {
			cfs_log_warn("cannot listen to the metadata store: %s",
				     err.msg);
			lost = true;
		}
		/* Drained before each wait: libpq may hold notifications
		 * already read with a reply, which poll() never shows. */
		if (pg && !listen_drain(db, pg)) {
			cfs_log_warn(
				"lost the metadata store's notifications: %s",
				PQerrorMessage(pg));
			PQfinish(pg);
			pg = NULL;
			lost = true;
			db->heard(db->heard_arg, 0);
			continue;
		}
		if (!listen_wait(db, pg ? PQsocket(pg) : -1,
				 pg ? -1 : RELISTEN_MS))
			break;
	}
	PQfinish(pg);
	return NULL;
}

static void pgdrv_close(struct db *base)
{
	struct pg_db *db = (struct pg_db *)base;

	if (db->heard) {
		if (write(db->stop[1], "", 1) != 1)
			cfs_log_warn("cannot stop the listener: %s",
				     strerror(errno));
		pthread_join(db->listener, NULL);
		close(db->stop[0]);
		close(db->stop[1]);
	}
	free(db->conninfo);
	free(db);
}

/* The schema's version in schema_version (0 for a new database). */
static enum cfs_err schema_version(PGconn *pg, int *version,
				   struct cfs_error *err)
{
	PGresult *res = PQexec(pg, "SELECT max(version) FROM schema_version");
	bool retry;
	enum cfs_err rc = PQresultStatus(res) == PGRES_TUPLES_OK
				  ? CFS_OK
				  : pg_fail(pg, res, &retry, err);

	if (rc == CFS_OK)
		*version = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return rc;
}

/* Runs the steps pg's database lacks, in one transaction, and records
 * the version reached; pg holds the schema lock. */
static enum cfs_err upgrade(PGconn *pg, const char *const *steps, int n,
			    struct cfs_error *err)
{
	char done[96];
	bool retry;
	int version = 0;
	enum cfs_err rc = pg_command(pg, "BEGIN", &retry, err);

	if (rc == CFS_OK)
		rc = pg_command(pg,
				"CREATE TABLE IF NOT EXISTS schema_version("
				"version BIGINT NOT NULL)",
				&retry, err);
	if (rc == CFS_OK)
		rc = schema_version(pg, &version, err);
	if (rc == CFS_OK && version > n)
		rc = cfs_fail(
			err, CFS_ERR_INTERNAL,
			"metadata store has schema version %d, this cloudfsd reads version %d",
			version, n);
	for (int v = version; rc == CFS_OK && v < n; v++)
		rc = pg_command(pg, steps[v], &retry, err);
	snprintf(done, sizeof(done),
		 "DELETE FROM schema_version;"
		 " INSERT INTO schema_version VALUES (%d)",
		 n);
	if (rc == CFS_OK && version < n)
		rc = pg_command(pg, done, &retry, err);
	if (rc == CFS_OK)
		rc = pg_command(pg, "COMMIT", &retry, err);
	else
		PQclear(PQexec(pg, "ROLLBACK"));
	if (rc == CFS_OK && version < n)
		cfs_log_info(
			"metadata store schema upgraded from version %d to %d",
			version, n);
	return rc;
}

/* Creates or upgrades the schema, one process at a time: a session lock
 * taken before the transaction, so that the second process to start
 * sees what the first one made. */
static enum cfs_err migrate(const char *conninfo, const char *const *steps,
			    int n, struct cfs_error *err)
{
	PGconn *pg = pg_connect(conninfo, err);
	bool retry;
	enum cfs_err rc;

	if (!pg)
		return err->code;
	rc = pg_command(pg, "SELECT pg_advisory_lock(" DB_PG_SCHEMA_LOCK ")",
			&retry, err);
	if (rc == CFS_OK)
		rc = upgrade(pg, steps, n, err);
	PQfinish(pg); /* which lets go of the lock */
	return rc;
}

static const struct db_ops pg_ops = {
	.connect = pgdrv_connect,
	.disconnect = pgdrv_disconnect,
	.close = pgdrv_close,
	.stmt = pgdrv_stmt,
	.step = pgdrv_step,
	.reset = pgdrv_reset,
	.int64 = pgdrv_int64,
	.text = pgdrv_text,
	.blob = pgdrv_blob,
	.changes = pgdrv_changes,
	.begin = pgdrv_begin,
	.end = pgdrv_end,
	.retryable = pgdrv_retryable,
	.announce = pgdrv_announce,
	.lock = pgdrv_lock,
};

enum cfs_err db_pg_open(const char *conninfo, const char *const *steps,
			int n_steps, db_heard_fn heard, void *arg,
			struct db **out, struct cfs_error *err)
{
	struct pg_db *db;
	enum cfs_err rc = migrate(conninfo, steps, n_steps, err);

	if (rc)
		return rc;
	db = calloc(1, sizeof(*db));

	if (!db || !(db->conninfo = strdup(conninfo))) {
		free(db);
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	db_init(&db->base, &pg_ops);
	if (heard && platform_pipe(db->stop)) {
		db->heard = NULL;
		db_close(&db->base);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot start the listener: %s",
				strerror(errno));
	}
	db->heard = heard;
	db->heard_arg = arg;
	if (heard && pthread_create(&db->listener, NULL, listen_thread, db)) {
		close(db->stop[0]);
		close(db->stop[1]);
		db->heard = NULL;
		db_close(&db->base);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot start the listener: no thread");
	}
	*out = &db->base;
	return CFS_OK;
}
