/*
 * The mirror against listings a broken or hostile server could send
 * (cache/mirror.c, invariant 3): a mount is followed only from the root
 * namespace, and never takes the place of a namespace already followed,
 * so no listing makes the mount forget its own tree.  And against pages
 * in the server's order (invariant 11), where a folder may come after
 * what it holds, on the same page or a later one.  And the cache's upkeep
 * (cache/upkeep.h), on the same cache, against a name it does not know.
 * And a new file's row, its count and its inode number.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/local.h"
#include "cache/mirror.h"
#include "cache/upkeep.h"
#include "check.h"

#define ROOT_NS	  1
#define SHARED_NS 2

static char dir[] = "/tmp/test_mirror.XXXXXX";
static struct cache *cache;

/* An entry of ns: node, called name, of kind, in folder parent, at jid. */
static struct mirror_entry entry(int64_t ns, int64_t node, int64_t parent,
				 const char *name, enum cfs_kind kind,
				 int64_t jid)
{
	struct mirror_entry e = { .ns = ns,
				  .node = node,
				  .parent = parent,
				  .jid = jid,
				  .kind = kind,
				  .mode = 0755 };

	strcpy(e.name, name);
	return e;
}

/* A MOUNT entry of ns: node, called name, of namespace mount_ns. */
static struct mirror_entry mount_entry(int64_t ns, int64_t node,
				       const char *name, int64_t mount_ns)
{
	struct mirror_entry e = entry(ns, node, 0, name, CFS_KIND_MOUNT, node);

	e.mount_ns = mount_ns;
	return e;
}

/* A folder of the root namespace: node, called name, in folder parent. */
static struct mirror_entry folder(int64_t node, int64_t parent,
				  const char *name, int64_t jid)
{
	return entry(ROOT_NS, node, parent, name, CFS_KIND_DIR, jid);
}

/* Applies page (n entries of one namespace) up to cursor. */
static enum cfs_err apply_page(const struct mirror_entry *page, size_t n,
			       int64_t cursor, bool complete,
			       struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(cache, err);
	struct mirror_changes ch = { 0 };
	enum cfs_err rc;

	CHECK(db != NULL);
	rc = mirror_apply(db, page[0].ns, page, n, cursor, complete, &ch, err);
	mirror_changes_release(&ch);
	cache_db_release(cache, db);
	return rc;
}

/* Applies a page of one entry e to its namespace, at JID e.jid. */
static enum cfs_err apply(struct mirror_entry e, struct cfs_error *err)
{
	return apply_page(&e, 1, e.jid, true, err);
}

/* The path the queued operation of inode ino names ("" when none). */
static void queued_path(uint64_t ino, char *out, size_t len)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	sqlite3_stmt *st;
	bool row = false;

	CHECK(db != NULL);
	st = cfs_sql_stmt(db, "SELECT path FROM ops WHERE ino = ?1", &err, "i",
			  (int64_t)ino);
	CHECK(st && cfs_sql_step(db, st, &row, &err) == CFS_OK);
	snprintf(out, len, "%s",
		 row ? (const char *)sqlite3_column_text(st, 0) : "");
	sqlite3_reset(st);
	cache_db_release(cache, db);
}

/* Creates folder name in folder ino here (queued, not yet sent). */
static uint64_t mkdir_here(uint64_t ino, const char *name)
{
	struct local_new n = { .kind = CFS_KIND_DIR, .mode = 0755 };
	struct mirror_entry e = { 0 };
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);

	CHECK(db && local_mknode(db, ino, name, &n, &e, &err) == CFS_OK);
	mirror_entry_release(&e);
	cache_db_release(cache, db);
	return e.ino;
}

/* The inode of node in the root namespace (0: none). */
static uint64_t ino_of(int64_t node)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	int64_t ino = 0;
	bool found = false;

	CHECK(db != NULL);
	CHECK(cfs_sql_int64(db,
			    cfs_sql_stmt(db,
					 "SELECT ino FROM entries"
					 " WHERE ns = ?1 AND node = ?2",
					 &err, "ii", (int64_t)ROOT_NS, node),
			    &ino, &found, &err) == CFS_OK);
	cache_db_release(cache, db);
	return found ? (uint64_t)ino : 0;
}

/* Whether the mirror follows ns. */
static bool followed(int64_t ns)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	struct mirror_ns *list = NULL;
	size_t n = 0;
	bool found = false;

	CHECK(db && mirror_namespaces(db, &list, &n, &err) == CFS_OK);
	for (size_t i = 0; i < n; i++)
		found |= list[i].ns == ns;
	free(list);
	cache_db_release(cache, db);
	return found;
}

/* Whether the mount's root is still node 0 of the root namespace. */
static bool root_intact(void)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	struct mirror_entry root;
	bool ok;

	ok = db && mirror_get(db, MIRROR_ROOT_INO, &root, &err) == CFS_OK;
	ok = ok && root.ns == ROOT_NS && root.node == 0;
	if (db)
		cache_db_release(cache, db);
	if (ok)
		mirror_entry_release(&root);
	return ok && followed(ROOT_NS);
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
	/* The root namespace mounts the shared one, as after an invite. */
	CHECK(apply(mount_entry(ROOT_NS, 5, "team", SHARED_NS), &err) ==
	      CFS_OK);
	CHECK(followed(SHARED_NS));
}

static void test_a_shared_folder_cannot_mount_the_root_namespace(void)
{
	struct cfs_error err;

	CHECK(apply(mount_entry(SHARED_NS, 7, "evil", ROOT_NS), &err) ==
	      CFS_ERR_BAD_FIELD);
	CHECK(strstr(err.msg, "not the root") != NULL);
	CHECK(root_intact());
	CHECK(followed(SHARED_NS));
}

static void test_a_shared_folder_holds_no_mount_of_any_namespace(void)
{
	struct cfs_error err;

	CHECK(apply(mount_entry(SHARED_NS, 8, "other", 9), &err) ==
	      CFS_ERR_BAD_FIELD);
	CHECK(!followed(9));
}

static void test_the_root_cannot_mount_a_namespace_twice(void)
{
	struct cfs_error err;

	CHECK(apply(mount_entry(ROOT_NS, 6, "again", SHARED_NS), &err) ==
	      CFS_ERR_BAD_FIELD);
	CHECK(strstr(err.msg, "mounted twice") != NULL);
	CHECK(apply(mount_entry(ROOT_NS, 6, "self", ROOT_NS), &err) ==
	      CFS_ERR_BAD_FIELD);
	CHECK(root_intact() && followed(SHARED_NS));
}

/*
 * "docs" (node 20) moved into "new" (node 21), which was made and then
 * renamed "archive" after the move: the page names docs first.  A folder
 * made here in docs, not yet sent, goes along to the new path.
 */
static void test_a_page_places_a_moved_folder_whose_folder_comes_later(void)
{
	struct mirror_entry page[] = { folder(20, 21, "docs", 12),
				       folder(21, 0, "archive", 13) };
	struct cfs_error err;
	char path[256];
	uint64_t sub;

	CHECK(apply_page((struct mirror_entry[]){ folder(20, 0, "docs", 10) },
			 1, 11, true, &err) == CFS_OK);
	sub = mkdir_here(ino_of(20), "drafts");
	queued_path(sub, path, sizeof(path));
	CHECK(strcmp(path, "docs/drafts") == 0);
	CHECK(apply_page(page, 2, 13, true, &err) == CFS_OK);
	queued_path(sub, path, sizeof(path));
	CHECK(strcmp(path, "archive/docs/drafts") == 0);
}

/*
 * The same across pages: "notes" (node 30) moves into "box" (node 31),
 * whose newest change is on the next page.  The first page leaves notes
 * without a folder for a moment; its queued folder follows once box is
 * known.
 */
static void test_a_moved_folder_waits_for_its_folder_on_a_later_page(void)
{
	struct cfs_error err;
	char path[256];
	uint64_t sub;

	CHECK(apply_page((struct mirror_entry[]){ folder(30, 0, "notes", 20) },
			 1, 20, true, &err) == CFS_OK);
	sub = mkdir_here(ino_of(30), "todo");
	CHECK(apply_page((struct mirror_entry[]){ folder(30, 31, "notes", 21) },
			 1, 21, false, &err) == CFS_OK);
	queued_path(sub, path, sizeof(path));
	CHECK(strcmp(path, "notes/todo") == 0);
	CHECK(apply_page((struct mirror_entry[]){ folder(31, 0, "box", 22) }, 1,
			 22, true, &err) == CFS_OK);
	queued_path(sub, path, sizeof(path));
	CHECK(strcmp(path, "box/notes/todo") == 0);
}

/*
 * Reading a namespace's cursor leaves no read snapshot behind: a write
 * transaction begun on the same connection after another connection's
 * write waits its turn instead of failing at once with "database is
 * locked" (a mount's uploader, after a create answered "not found", could
 * then not record which changes the server answered, and its listings
 * waited for them for good).
 */
static void test_reading_a_cursor_leaves_no_snapshot_behind(void)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	struct mirror_ns m;

	CHECK(db && mirror_ns_get(db, ROOT_NS, &m, &err) == CFS_OK);
	/* Another connection of the pool writes meanwhile. */
	CHECK(apply(folder(40, 0, "written meanwhile", 40), &err) == CFS_OK);
	CHECK(cfs_sql_begin(db, true, &err) == CFS_OK);
	CHECK(cfs_sql_end(db, CFS_OK, &err) == CFS_OK);
	cache_db_release(cache, db);
}

/* One integer of the cache: the first column of sql's first row (-1:
 * no row), sql taking ino. */
static int64_t number(const char *sql, uint64_t ino)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	int64_t v = -1;
	bool found = false;

	CHECK(db != NULL);
	CHECK(cfs_sql_int64(db, cfs_sql_stmt(db, sql, &err, "i", (int64_t)ino),
			    &v, &found, &err) == CFS_OK);
	cache_db_release(cache, db);
	return found ? v : -1;
}

/* A new file is counted once, for its write session, with a node of its
 * own and the server's state "none" (cache/pending.h, invariants 1 and
 * 2); its commit takes that count over.  Its inode is past every one
 * given before, the last one removed included: an inode number is never
 * reused. */
static void test_a_new_file_is_counted_once_and_never_takes_an_old_inode(void)
{
	struct local_new n = { .kind = CFS_KIND_FILE, .mode = 0644 };
	struct cfs_blocklist none = { 0 };
	struct local_content c = { .size = 0, .blocks = &none };
	struct mirror_changes ch = { 0 };
	struct mirror_entry e = { 0 };
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	uint64_t gone, ino;

	CHECK(db && local_mknode(db, MIRROR_ROOT_INO, "last", &n, &e, &err) ==
			    CFS_OK);
	gone = e.ino;
	mirror_entry_release(&e);
	CHECK(local_remove(db, MIRROR_ROOT_INO, "last", false, &ino, &err) ==
	      CFS_OK);
	CHECK(ino == gone);
	CHECK(local_mknode(db, MIRROR_ROOT_INO, "new", &n, &e, &err) == CFS_OK);
	ino = e.ino;
	CHECK(ino > gone);
	CHECK(e.node == -(int64_t)ino);
	mirror_entry_release(&e);
	cache_db_release(cache, db);
	CHECK(number("SELECT node FROM entries WHERE ino = ?1", ino) ==
	      -(int64_t)ino);
	CHECK(number("SELECT pending FROM entries WHERE ino = ?1", ino) == 1);
	CHECK(number("SELECT kind FROM shadow WHERE ino = ?1", ino) ==
	      CFS_KIND_DELETED);
	db = cache_db(cache, &err);
	CHECK(db && local_write_end(db, ino, &c, &ch, &err) == CFS_OK);
	mirror_changes_release(&ch);
	cache_db_release(cache, db);
	CHECK(number("SELECT pending FROM entries WHERE ino = ?1", ino) == 1);
	CHECK(number("SELECT COUNT(*) FROM ops WHERE ino = ?1", ino) == 1);
}

/* A new folder, symlink or FIFO has one queued state, counted once, and
 * its shadow says the server has none (invariant 2): it used to say the
 * new entry itself. */
static void test_a_new_folder_link_and_fifo_are_none_on_the_server(void)
{
	static const struct local_new made[] = {
		{ .kind = CFS_KIND_DIR, .mode = 0755 },
		{ .kind = CFS_KIND_SYMLINK, .mode = 0777, .target = "there" },
		{ .kind = CFS_KIND_FIFO, .mode = 0644 },
	};
	static const char *const names[] = { "made-dir", "made-link",
					     "made-fifo" };

	for (size_t i = 0; i < sizeof(made) / sizeof(made[0]); i++) {
		struct mirror_entry e = { 0 };
		struct cfs_error err;
		struct cfs_sql *db = cache_db(cache, &err);
		uint64_t ino;

		CHECK(db && local_mknode(db, MIRROR_ROOT_INO, names[i],
					 &made[i], &e, &err) == CFS_OK);
		ino = e.ino;
		CHECK(e.pending == 1);
		mirror_entry_release(&e);
		cache_db_release(cache, db);
		CHECK(number("SELECT pending FROM entries WHERE ino = ?1",
			     ino) == 1);
		CHECK(number("SELECT COUNT(*) FROM ops WHERE ino = ?1", ino) ==
		      1);
		CHECK(number("SELECT kind FROM shadow WHERE ino = ?1", ino) ==
		      CFS_KIND_DELETED);
	}
}

/* A conflicted copy is a new entry like any other: counted once, for its
 * queued state, and the server has none of it (invariant 2).  Its shadow
 * used to be the copy itself. */
static void test_a_conflicted_copy_is_none_on_the_server(void)
{
	struct local_new n = { .kind = CFS_KIND_FILE, .mode = 0644 };
	struct mirror_changes ch = { 0 };
	struct mirror_entry e = { 0 };
	char copy[CFS_NAME_MAX + 1];
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	struct queued_op op = { .type = QUEUE_FILE,
				.kind = CFS_KIND_FILE,
				.mode = 0644,
				.path = "raced" };
	uint64_t ino;

	CHECK(db && local_mknode(db, MIRROR_ROOT_INO, "raced", &n, &e, &err) ==
			    CFS_OK);
	op.ino = ino = e.ino;
	op.ns = e.ns;
	mirror_entry_release(&e);
	CHECK(queue_conflicted_copy(db, &op, copy, &ch, &err) == CFS_OK);
	mirror_changes_release(&ch);
	cache_db_release(cache, db);
	CHECK(strncmp(copy, "raced (", 7) == 0);
	ino = (uint64_t)number("SELECT MAX(ino) FROM entries WHERE ino > ?1",
			       ino);
	CHECK(number("SELECT pending FROM entries WHERE ino = ?1", ino) == 1);
	CHECK(number("SELECT COUNT(*) FROM ops WHERE ino = ?1", ino) == 1);
	CHECK(number("SELECT kind FROM shadow WHERE ino = ?1", ino) ==
	      CFS_KIND_DELETED);
}

/* A mistyped command is an error: it used to run gc, which removes
 * blocks. */
static void test_an_unknown_upkeep_command_runs_nothing(void)
{
	struct cfs_error err;

	CHECK(upkeep_json(cache, "evicted", 0, 0, &err) == NULL);
	CHECK(err.code == CFS_ERR_BAD_FIELD);
	CHECK(strstr(err.msg, "'evicted'") != NULL);
	CHECK(upkeep_json(cache, NULL, 0, 0, &err) == NULL);
}

/* Folder name (node) with files f0..f{n-1} (nodes node + 1 ...) listed in
 * the root, then its files removed here, and the folder too when rmdir. */
static void removed_here(int64_t node, const char *name, int n, bool rmdir)
{
	struct mirror_entry page[31];
	struct cfs_error err;
	struct cfs_sql *db;
	uint64_t ino, gone;

	CHECK(n < 31);
	page[0] = folder(node, 0, name, 100 + node);
	for (int i = 0; i < n; i++) {
		char f[16];

		snprintf(f, sizeof(f), "f%d", i);
		page[i + 1] = entry(ROOT_NS, node + 1 + i, node, f,
				    CFS_KIND_FILE, 100 + node + 1 + i);
	}
	CHECK(apply_page(page, (size_t)n + 1, 100 + node + n, true, &err) ==
	      CFS_OK);
	ino = ino_of(node);
	db = cache_db(cache, &err);
	CHECK(db != NULL);
	for (int i = 0; i < n; i++)
		CHECK(local_remove(db, ino, page[i + 1].name, false, &gone,
				   &err) == CFS_OK);
	if (rmdir)
		CHECK(local_remove(db, MIRROR_ROOT_INO, name, true, &gone,
				   &err) == CFS_OK);
	cache_db_release(cache, db);
}

/* How many operations queue_batch(max, reach) reads. */
static size_t batch_of(size_t max, size_t reach)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);
	struct queued_op *ops = NULL;
	size_t n = 0;

	CHECK(db && queue_batch(db, max, reach, &ops, &n, &err) == CFS_OK);
	for (size_t i = 0; i < n; i++)
		queued_op_release(&ops[i]);
	free(ops);
	cache_db_release(cache, db);
	return n;
}

/* A batch reads past its max the deletes that a folder's delete ends (one
 * recursive delete may carry them, fs/collapse.c), within its reach; not
 * the deletes of a folder's files when the folder stays. */
static void test_a_batch_reads_on_to_a_folders_delete_only(void)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(cache, &err);

	/* The queue of this test alone: the tests before leave theirs. */
	CHECK(db && cfs_sql_exec(db, "DELETE FROM ops", &err, "") == CFS_OK);
	cache_db_release(cache, db);
	removed_here(1000, "kept", 30, false);
	removed_here(2000, "gone", 30, true);
	CHECK(batch_of(10, 1000) == 10);
	CHECK(batch_of(35, 1000) == 61);
	CHECK(batch_of(35, 50) == 35);
	CHECK(batch_of(61, 1000) == 61);
}

int main(void)
{
	char cmd[64];

	setup();
	RUN(test_a_shared_folder_cannot_mount_the_root_namespace);
	RUN(test_a_shared_folder_holds_no_mount_of_any_namespace);
	RUN(test_the_root_cannot_mount_a_namespace_twice);
	RUN(test_a_page_places_a_moved_folder_whose_folder_comes_later);
	RUN(test_a_moved_folder_waits_for_its_folder_on_a_later_page);
	RUN(test_reading_a_cursor_leaves_no_snapshot_behind);
	RUN(test_an_unknown_upkeep_command_runs_nothing);
	RUN(test_a_batch_reads_on_to_a_folders_delete_only);
	RUN(test_a_new_file_is_counted_once_and_never_takes_an_old_inode);
	RUN(test_a_new_folder_link_and_fifo_are_none_on_the_server);
	RUN(test_a_conflicted_copy_is_none_on_the_server);
	cache_close(cache);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return CHECK_DONE();
}
