/*
 * The times of the mirror's entries (mount.cloudfs(8), "POSIX
 * BEHAVIOUR"), on a real cache directory in /tmp: atime and ctime are kept
 * apart from mtime to the nanosecond, from listings and from local
 * changes; every local change of a node sets its ctime, its queued
 * operation carries it to the server, and a ctime never goes back; a
 * cache of schema 5 is upgraded with its entries' mtimes as their atimes
 * and ctimes.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/local.h"
#include "cache/mirror.h"
#include "check.h"

#define ROOT_NS 1

static char dir[] = "/tmp/test_times.XXXXXX";
static struct cache *cache;

/* A file of the root namespace: node, called name, at jid, with times. */
static struct mirror_entry file(int64_t node, const char *name, int64_t jid,
				int64_t atime_ns, int64_t mtime_ns,
				int64_t ctime_ns)
{
	struct mirror_entry e = { .ns = ROOT_NS,
				  .node = node,
				  .jid = jid,
				  .kind = CFS_KIND_FILE,
				  .mode = 0644,
				  .atime_ns = atime_ns,
				  .mtime_ns = mtime_ns,
				  .ctime_ns = ctime_ns };

	strcpy(e.name, name);
	return e;
}

/* Applies e as a page of its own at JID e.jid; *dropped: whether the
 * kernel is told to drop inode ino. */
static void apply(struct mirror_entry e, uint64_t ino, bool *dropped)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	struct mirror_changes ch = { 0 };

	CHECK(db &&
	      mirror_apply(db, e.ns, &e, 1, e.jid, true, &ch, &err) == CFS_OK);
	*dropped = false;
	for (size_t i = 0; i < ch.n; i++)
		*dropped |= ch.v[i].ino == ino && !ch.v[i].name;
	mirror_changes_release(&ch);
	cache_db_release(cache, db);
}

/* The entry called name in the mount's root. */
static struct mirror_entry lookup(const char *name)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	struct mirror_entry root, e = { 0 };

	CHECK(db && mirror_get(db, MIRROR_ROOT_INO, &root, &err) == CFS_OK);
	CHECK(mirror_lookup(db, &root, name, &e, &err) == CFS_OK);
	mirror_entry_release(&root);
	cache_db_release(cache, db);
	return e;
}

static bool times_are(const struct mirror_entry *e, int64_t atime_ns,
		      int64_t mtime_ns, int64_t ctime_ns)
{
	return e->atime_ns == atime_ns && e->mtime_ns == mtime_ns &&
	       e->ctime_ns == ctime_ns;
}

/* The newest operation queued for ino: its type and times. */
static struct queued_op last_queued(uint64_t ino)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	struct queued_op op = { 0 };
	sqlite3_stmt *st;
	bool row = false;

	CHECK(db != NULL);
	st = cfs_sql_stmt(db,
			  "SELECT type, atime_ns, mtime_ns, ctime_ns FROM ops"
			  " WHERE ino = ?1 ORDER BY ord DESC LIMIT 1",
			  &err, "i", (int64_t)ino);
	CHECK(st && cfs_sql_step(db, st, &row, &err) == CFS_OK && row);
	if (row)
		op = (struct queued_op){
			.type = (enum queue_type)sqlite3_column_int(st, 0),
			.atime_ns = sqlite3_column_int64(st, 1),
			.mtime_ns = sqlite3_column_int64(st, 2),
			.ctime_ns = sqlite3_column_int64(st, 3),
		};
	sqlite3_reset(st);
	cache_db_release(cache, db);
	return op;
}

static void
test_a_listed_atime_or_ctime_alone_shows_and_drops_the_kernels_copy(void)
{
	struct mirror_entry e;
	uint64_t ino;
	bool dropped;

	apply(file(10, "listed", 1, 1000000001, 2000000002, 3000000003), 0,
	      &dropped);
	e = lookup("listed");
	ino = e.ino;
	CHECK(times_are(&e, 1000000001, 2000000002, 3000000003));
	apply(file(10, "listed", 2, 4000000004, 2000000002, 3000000003), ino,
	      &dropped);
	CHECK(dropped);
	e = lookup("listed");
	CHECK(times_are(&e, 4000000004, 2000000002, 3000000003));
	apply(file(10, "listed", 3, 4000000004, 2000000002, 5000000005), ino,
	      &dropped);
	CHECK(dropped);
	e = lookup("listed");
	CHECK(times_are(&e, 4000000004, 2000000002, 5000000005));
}

static void
test_a_setattr_sets_the_times_given_and_the_ctime_and_queues_them(void)
{
	struct cfs_error err;
	struct cfs_sql *db;
	struct mirror_entry e;
	struct queued_op op;
	bool dropped;
	int64_t atime_ns = -7; /* before 1970, to the nanosecond */
	struct local_attrs a = { .atime_ns = &atime_ns };

	apply(file(11, "set", 4, 1, 2, 3), 0, &dropped);
	e = lookup("set");
	db = cache_db(cache, &err);
	CHECK(db && local_setattr(db, e.ino, &a, 99, false, &err) == CFS_OK);
	cache_db_release(cache, db);
	e = lookup("set");
	CHECK(times_are(&e, -7, 2, 99));
	op = last_queued(e.ino);
	CHECK(op.type == QUEUE_FILE && op.atime_ns == -7 && op.mtime_ns == 2 &&
	      op.ctime_ns == 99);
}

static void
test_a_rename_sets_the_ctime_of_the_entry_and_of_its_queued_move(void)
{
	struct cfs_error err;
	struct cfs_sql *db;
	struct mirror_entry e;
	struct queued_op op;
	uint64_t moved = 0;
	bool dropped;

	apply(file(12, "old", 5, 1, 2, 3), 0, &dropped);
	db = cache_db(cache, &err);
	CHECK(db && local_rename(db, MIRROR_ROOT_INO, "old", MIRROR_ROOT_INO,
				 "new", false, 777, &moved, &err) == CFS_OK);
	cache_db_release(cache, db);
	e = lookup("new");
	CHECK(moved == e.ino);
	CHECK(times_are(&e, 1, 2, 777));
	op = last_queued(e.ino);
	CHECK(op.type == QUEUE_MOVE && op.ctime_ns == 777);
}

static void test_a_write_committed_after_a_rename_keeps_the_later_ctime(void)
{
	struct cfs_error err;
	struct cfs_sql *db;
	struct mirror_entry e;
	struct queued_op op;
	struct cfs_blocklist none = { 0 };
	struct local_content c = { .size = 0,
				   .blocks = &none,
				   .atime_ns = 1,
				   .mtime_ns = 800,
				   .ctime_ns = 800 };
	struct mirror_changes ch = { 0 };
	uint64_t moved;
	bool dropped;

	apply(file(13, "busy", 6, 1, 2, 3), 0, &dropped);
	e = lookup("busy");
	db = cache_db(cache, &err);
	CHECK(db && local_write_begin(db, e.ino, &err) == CFS_OK);
	CHECK(local_rename(db, MIRROR_ROOT_INO, "busy", MIRROR_ROOT_INO,
			   "moved", false, 900, &moved, &err) == CFS_OK);
	CHECK(local_write_end(db, e.ino, &c, &ch, &err) == CFS_OK);
	mirror_changes_release(&ch);
	cache_db_release(cache, db);
	e = lookup("moved");
	CHECK(times_are(&e, 1, 800, 900));
	op = last_queued(e.ino);
	CHECK(op.type == QUEUE_FILE && op.mtime_ns == 800 &&
	      op.ctime_ns == 900);
}

/* Takes the cache back to schema 5, as a mount.cloudfs from before left
 * it, with a change of entry "set" still queued. */
static void downgrade(void)
{
	char path[64];
	sqlite3 *db;
	static const char *sql = "DROP INDEX entries_links;"
				 "ALTER TABLE entries DROP COLUMN link_of;"
				 "ALTER TABLE shadow DROP COLUMN link_of;"
				 "ALTER TABLE entries DROP COLUMN atime_ns;"
				 "ALTER TABLE entries DROP COLUMN ctime_ns;"
				 "ALTER TABLE shadow DROP COLUMN atime_ns;"
				 "ALTER TABLE shadow DROP COLUMN ctime_ns;"
				 "ALTER TABLE ops DROP COLUMN atime_ns;"
				 "ALTER TABLE ops DROP COLUMN ctime_ns;"
				 "PRAGMA user_version = 5;";

	snprintf(path, sizeof(path), "%s/cache.db", dir);
	CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	CHECK(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
}

static void test_a_cache_of_schema_5_takes_the_mtime_as_atime_and_ctime(void)
{
	struct cfs_error err;
	struct mirror_entry e;
	struct queued_op op;
	int64_t before = (int64_t)time(NULL) * 1000000000;

	cache_close(cache);
	downgrade();
	CHECK(cache_open(dir, &cache, &err) == CFS_OK);
	e = lookup("listed");
	CHECK(times_are(&e, 2000000002, 2000000002, 2000000002));
	e = lookup("set");
	CHECK(times_are(&e, 2, 2, 2));
	/* What was queued happened before the upgrade. */
	op = last_queued(e.ino);
	CHECK(op.type == QUEUE_FILE && op.atime_ns == 2 &&
	      op.ctime_ns >= before &&
	      op.ctime_ns <= (int64_t)time(NULL) * 1000000000);
}

static void setup(void)
{
	struct cfs_error err;
	struct cfs_sql *db;

	CHECK(mkdtemp(dir) != NULL);
	CHECK(cache_open(dir, &cache, &err) == CFS_OK);
	db = cache_db(cache, &err);
	CHECK(db && mirror_init_root(db, ROOT_NS, &err) == CFS_OK);
	cache_db_release(cache, db);
}

int main(void)
{
	char cmd[64];

	setup();
	RUN(test_a_listed_atime_or_ctime_alone_shows_and_drops_the_kernels_copy);
	RUN(test_a_setattr_sets_the_times_given_and_the_ctime_and_queues_them);
	RUN(test_a_rename_sets_the_ctime_of_the_entry_and_of_its_queued_move);
	RUN(test_a_write_committed_after_a_rename_keeps_the_later_ctime);
	RUN(test_a_cache_of_schema_5_takes_the_mtime_as_atime_and_ctime);
	cache_close(cache);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return CHECK_DONE();
}
