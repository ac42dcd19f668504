/*
 * Transactions inside transactions (lib/sql.c): a nested cfs_sql_begin()
 * is a savepoint, so that many changes share one commit and one that
 * fails undoes its own rows alone.
 */
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "cloudfs/sql.h"

static char path[] = "/tmp/test_sql.XXXXXX";
static struct cfs_sql db;

static int64_t rows(void)
{
	struct cfs_error err;
	int64_t n = -1;
	bool found;

	CHECK(cfs_sql_int64(
		      &db,
		      cfs_sql_stmt(&db, "SELECT COUNT(*) FROM t", &err, ""), &n,
		      &found, &err) == CFS_OK);
	return n;
}

/* Inserts v in its own (nested or not) transaction, ended with rc. */
static enum cfs_err insert(int64_t v, enum cfs_err rc)
{
	struct cfs_error err;
	enum cfs_err r = cfs_sql_begin(&db, true, &err);

	CHECK(r == CFS_OK);
	if (r == CFS_OK)
		r = cfs_sql_exec(&db, "INSERT INTO t VALUES (?1)", &err, "i",
				 v);
	CHECK(r == CFS_OK);
	return cfs_sql_end(&db, rc, &err);
}

static void
test_a_failed_nested_change_is_undone_alone_and_the_rest_commit_once(void)
{
	struct cfs_error err;

	CHECK(cfs_sql_begin(&db, true, &err) == CFS_OK);
	CHECK(insert(1, CFS_OK) == CFS_OK);
	CHECK(insert(2, CFS_ERR_INTERNAL) == CFS_ERR_INTERNAL);
	CHECK(insert(3, CFS_OK) == CFS_OK);
	CHECK(rows() == 2);
	CHECK(cfs_sql_end(&db, CFS_OK, &err) == CFS_OK);
	CHECK(rows() == 2);
	/* Out of every transaction again: a change commits at once. */
	CHECK(insert(4, CFS_OK) == CFS_OK);
	CHECK(rows() == 3);
	CHECK(cfs_sql_exec(&db, "DELETE FROM t", &err, "") == CFS_OK);
}

static void test_an_outer_rollback_undoes_the_nested_changes_it_held(void)
{
	struct cfs_error err;

	CHECK(cfs_sql_begin(&db, true, &err) == CFS_OK);
	CHECK(insert(1, CFS_OK) == CFS_OK);
	CHECK(insert(2, CFS_OK) == CFS_OK);
	CHECK(cfs_sql_end(&db, CFS_ERR_INTERNAL, &err) == CFS_ERR_INTERNAL);
	CHECK(rows() == 0);
}

/*
 * A begin that fails (here: a statement left stopped at a row keeps a
 * snapshot another connection's commit has made stale, so BEGIN IMMEDIATE
 * fails at once) is still ended by its caller: the end must give back the
 * begin's error, change nothing, and leave the next begin a transaction.
 */
static void test_the_end_of_a_begin_that_failed_changes_nothing(void)
{
	struct cfs_sql other;
	struct cfs_error err;
	sqlite3_stmt *st;
	bool row = false;
	enum cfs_err rc;

	CHECK(insert(1, CFS_OK) == CFS_OK);
	st = cfs_sql_stmt(&db, "SELECT v FROM t", &err, "");
	CHECK(st && cfs_sql_step(&db, st, &row, &err) == CFS_OK && row);
	CHECK(cfs_sql_open(&other, path, "other connection", "NORMAL", &err) ==
	      CFS_OK);
	CHECK(cfs_sql_exec(&other, "INSERT INTO t VALUES (2)", &err, "") ==
	      CFS_OK);
	cfs_sql_close(&other);
	rc = cfs_sql_begin(&db, true, &err);
	CHECK(rc != CFS_OK);
	CHECK(cfs_sql_end(&db, rc, &err) == rc);
	if (st)
		sqlite3_reset(st);
	/* Out of every transaction: the next begin is a transaction again,
	 * not a savepoint. */
	CHECK(cfs_sql_begin(&db, true, &err) == CFS_OK);
	CHECK(cfs_sql_exec(&db, "INSERT INTO t VALUES (3)", &err, "") ==
	      CFS_OK);
	CHECK(cfs_sql_end(&db, CFS_ERR_INTERNAL, &err) == CFS_ERR_INTERNAL);
	CHECK(rows() == 2);
	CHECK(cfs_sql_exec(&db, "DELETE FROM t", &err, "") == CFS_OK);
}

int main(void)
{
	struct cfs_error err;
	int fd = mkstemp(path);

	if (fd < 0)
		return 1;
	close(fd);
	unlink(path);
	if (cfs_sql_open(&db, path, "test database", "NORMAL", &err) ||
	    cfs_sql_exec(&db, "CREATE TABLE t (v INTEGER)", &err, "")) {
		fprintf(stderr, "cannot make the test database '%s': %s\n",
			path, err.msg);
		return 1;
	}
	RUN(test_a_failed_nested_change_is_undone_alone_and_the_rest_commit_once);
	RUN(test_an_outer_rollback_undoes_the_nested_changes_it_held);
	RUN(test_the_end_of_a_begin_that_failed_changes_nothing);
	cfs_sql_close(&db);
	unlink(path);
	for (int i = 0; i < 2; i++) {
		char p[sizeof(path) + 8];

		snprintf(p, sizeof(p), "%s%s", path, i ? "-shm" : "-wal");
		unlink(p);
	}
	return CHECK_DONE();
}
