/*
 * Hard links in the mirror and the queue (mount.cloudfs(8), "POSIX
 * BEHAVIOUR"), on a real cache directory in /tmp: a further name shows
 * its node and counts in its link count; link(2) queues a link after the
 * file's creation, and waits for it; unlinking the file's first name
 * leaves it at a further name at once, as the server does.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/local.h"
#include "cache/mirror.h"
#include "check.h"

#define ROOT_NS 1

static char dir[] = "/tmp/test_links.XXXXXX";
static struct cache *cache;
static struct cfs_sql *db;

static struct mirror_entry entry(int64_t node, const char *name, int64_t jid,
				 enum cfs_kind kind, int64_t link_of)
{
	struct mirror_entry e = { .ns = ROOT_NS,
				  .node = node,
				  .jid = jid,
				  .kind = kind,
				  .mode = 0644,
				  .link_of = link_of };

	strcpy(e.name, name);
	return e;
}

/* Applies entries as one page up to jid; *dropped: whether the kernel is
 * told to drop inode ino's attributes. */
static void apply(struct mirror_entry *v, size_t n, int64_t jid, uint64_t ino,
		  bool *dropped)
{
	struct cfs_error err;
	struct mirror_changes ch = { 0 };

	CHECK(mirror_apply(db, ROOT_NS, v, n, jid, true, &ch, &err) == CFS_OK);
	*dropped = false;
	for (size_t i = 0; i < ch.n; i++)
		*dropped |= ch.v[i].ino == ino && !ch.v[i].name;
	mirror_changes_release(&ch);
}

/* What name in the root shows (0 ino: nothing), and its link count. */
static uint64_t shown(const char *name, int64_t *nlink)
{
	struct cfs_error err;
	struct mirror_entry root, e = { 0 };
	uint64_t ino = 0;

	*nlink = 0;
	CHECK(mirror_get(db, MIRROR_ROOT_INO, &root, &err) == CFS_OK);
	if (mirror_lookup(db, &root, name, &e, &err) == CFS_OK &&
	    mirror_named(db, &e, &err) == CFS_OK) {
		ino = e.ino;
		CHECK(mirror_names(db, &e, nlink, &err) == CFS_OK);
	}
	mirror_entry_release(&e);
	mirror_entry_release(&root);
	return ino;
}

/* The queue, in order: *n operations in ops (released by the caller). */
static void queued(struct queued_op **ops, size_t *n)
{
	struct cfs_error err;

	CHECK(queue_batch(db, 100, 100, ops, n, &err) == CFS_OK);
}

static void release(struct queued_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++)
		queued_op_release(&ops[i]);
	free(ops);
}

static void test_a_further_name_shows_its_node_and_counts(void)
{
	struct mirror_entry page[] = {
		entry(1, "a", 1, CFS_KIND_FILE, 0),
		entry(2, "b", 2, CFS_KIND_LINK, 1),
	};
	struct mirror_entry gone = entry(2, "b", 3, CFS_KIND_DELETED, 0);
	int64_t na, nb;
	uint64_t a;
	bool dropped;

	apply(&page[0], 1, 1, 0, &dropped);
	a = shown("a", &na);
	CHECK(a != 0 && na == 1);
	apply(&page[1], 1, 2, a, &dropped);
	CHECK(dropped); /* the kernel's link count is out of date */
	CHECK(shown("b", &nb) == a && nb == 2 && shown("a", &na) && na == 2);
	apply(&gone, 1, 3, a, &dropped);
	CHECK(dropped);
	CHECK(shown("b", &nb) == 0 && shown("a", &na) == a && na == 1);
}

/* A new empty file NAME, written and closed, and its hard link NAME2 in
 * the root: both queued, neither sent. */
static void make_linked(const char *name, const char *name2,
			struct mirror_entry *f, struct mirror_entry *node,
			struct mirror_changes *ch)
{
	struct cfs_error err;
	struct local_new n = { .kind = CFS_KIND_FILE, .mode = 0644 };
	struct cfs_blocklist none = { 0 };
	struct local_content c = { .blocks = &none };

	CHECK(local_mknode(db, MIRROR_ROOT_INO, name, &n, f, &err) == CFS_OK);
	CHECK(local_write_end(db, f->ino, &c, ch, &err) == CFS_OK);
	CHECK(local_link(db, f->ino, MIRROR_ROOT_INO, name2, node, &err) ==
	      CFS_OK);
}

static void test_a_link_waits_for_its_files_creation(void)
{
	struct cfs_error err;
	struct mirror_entry f, node;
	struct mirror_changes ch = { 0 };
	struct queued_op *ops;
	size_t k;
	int64_t nl;
	bool waits = false;

	make_linked("new", "new2", &f, &node, &ch);
	CHECK(node.ino == f.ino);
	CHECK(shown("new2", &nl) == f.ino && nl == 2);
	queued(&ops, &k);
	CHECK(k == 2 && ops[0].type == QUEUE_FILE && ops[1].type == QUEUE_LINK);
	CHECK(k == 2 && strcmp(ops[1].path, "new") == 0 &&
	      strcmp(ops[1].to, "new2") == 0);
	/* Not found while the file waits: tried again, not refused. */
	CHECK(k == 2 && local_link_waits(db, &ops[1], &waits, &err) == CFS_OK &&
	      waits);
	CHECK(k == 2 &&
	      queue_confirm(db, &ops[0], 40, 5, 0, &ch, &err) == CFS_OK);
	CHECK(shown("new2", &nl) == f.ino && nl == 2); /* it follows */
	CHECK(k == 2 && local_link_waits(db, &ops[1], &waits, &err) == CFS_OK &&
	      !waits);
	CHECK(k == 2 &&
	      queue_confirm(db, &ops[1], 41, 6, 0, &ch, &err) == CFS_OK);
	CHECK(shown("new2", &nl) == f.ino && nl == 2);
	release(ops, k);
	mirror_changes_release(&ch);
	mirror_entry_release(&f);
	mirror_entry_release(&node);
}

/*
 * link(2) answers with the entry it read in its transaction; the file's
 * creation may be confirmed before the kernel's reply is built from it
 * (harness seed 1907: nlink 1 after a successful link).  The count must
 * follow the node to its new id.
 */
static void test_a_link_count_read_before_the_creation_is_confirmed(void)
{
	struct cfs_error err;
	struct mirror_entry f, node;
	struct mirror_changes ch = { 0 };
	struct queued_op *ops;
	size_t k;
	int64_t nl = 0;

	make_linked("early", "early2", &f, &node, &ch);
	CHECK(node.node < 0); /* not on the server yet */
	queued(&ops, &k);
	CHECK(k == 2 && ops[0].type == QUEUE_FILE);
	CHECK(k == 2 &&
	      queue_confirm(db, &ops[0], 60, 7, 0, &ch, &err) == CFS_OK);
	CHECK(mirror_names(db, &node, &nl, &err) == CFS_OK && nl == 2);
	CHECK(k == 2 &&
	      queue_confirm(db, &ops[1], 61, 8, 0, &ch, &err) == CFS_OK);
	release(ops, k);
	mirror_changes_release(&ch);
	mirror_entry_release(&f);
	mirror_entry_release(&node);
}

static void test_link_refuses_folders_and_taken_names(void)
{
	struct cfs_error err;
	struct mirror_entry d, node;
	struct local_new n = { .kind = CFS_KIND_DIR, .mode = 0755 };
	int64_t nl;
	uint64_t a = shown("a", &nl);

	CHECK(local_mknode(db, MIRROR_ROOT_INO, "d", &n, &d, &err) == CFS_OK);
	CHECK(local_link(db, d.ino, MIRROR_ROOT_INO, "d2", &node, &err) ==
	      CFS_ERR_FORBIDDEN);
	CHECK(local_link(db, a, MIRROR_ROOT_INO, "d", &node, &err) ==
	      CFS_ERR_EXISTS);
	mirror_entry_release(&d);
}

static void test_unlinking_the_first_name_moves_the_file_to_a_link(void)
{
	struct mirror_entry page[] = {
		entry(50, "first", 10, CFS_KIND_FILE, 0),
		entry(51, "second", 11, CFS_KIND_LINK, 50),
	};
	struct cfs_error err;
	struct queued_op *ops;
	size_t k;
	int64_t nl;
	uint64_t ino, gone;
	bool dropped;

	apply(page, 2, 11, 0, &dropped);
	ino = shown("first", &nl);
	CHECK(nl == 2);
	CHECK(local_remove(db, MIRROR_ROOT_INO, "first", false, &gone, &err) ==
	      CFS_OK);
	CHECK(shown("first", &nl) == 0);
	CHECK(shown("second", &nl) == ino && nl == 1);
	queued(&ops, &k);
	/* The link's delete and the node's move: what the server does. */
	CHECK(k >= 2 && ops[k - 2].type == QUEUE_DELETE &&
	      strcmp(ops[k - 2].path, "second") == 0);
	CHECK(k >= 2 && ops[k - 1].type == QUEUE_MOVE &&
	      strcmp(ops[k - 1].path, "first") == 0 &&
	      strcmp(ops[k - 1].to, "second") == 0);
	release(ops, k);
}

/*
 * The kernel keeps a folder's inode until it is told to drop it; a link
 * (or a create, or a remove) into a folder the mirror replaced meanwhile
 * says ESTALE, so that the kernel looks the path up again, not ENOENT
 * for a name that exists (harness seed 1907: a folder shared by another
 * mount gets a new inode).
 */
static void test_a_change_in_a_folder_replaced_meanwhile_is_stale(void)
{
	struct mirror_entry page[] = {
		entry(80, "dir", 20, CFS_KIND_DIR, 0),
		entry(81, "file", 21, CFS_KIND_FILE, 0),
	};
	struct mirror_entry gone = entry(80, "dir", 22, CFS_KIND_DELETED, 0);
	struct local_new n = { .kind = CFS_KIND_DIR, .mode = 0755 };
	struct mirror_entry node = { 0 }, made = { 0 };
	struct cfs_error err;
	uint64_t dir_ino, file_ino, ino;
	int64_t nl;
	bool dropped;

	apply(page, 2, 21, 0, &dropped);
	dir_ino = shown("dir", &nl);
	file_ino = shown("file", &nl);
	CHECK(dir_ino != 0 && file_ino != 0);
	apply(&gone, 1, 22, 0, &dropped);
	CHECK(local_link(db, file_ino, dir_ino, "x", &node, &err) ==
	      CFS_ERR_STALE);
	CHECK(cfs_err_errno(err.code) == ESTALE);
	CHECK(local_mknode(db, dir_ino, "x", &n, &made, &err) == CFS_ERR_STALE);
	CHECK(local_remove(db, dir_ino, "x", false, &ino, &err) ==
	      CFS_ERR_STALE);
	/* A missing name in a folder that is there is ENOENT still. */
	CHECK(local_remove(db, MIRROR_ROOT_INO, "x", false, &ino, &err) ==
	      CFS_ERR_NOT_FOUND);
}

/* The queued operation of type at path (or, for a link, to), read with
 * its seq; false when none is. */
static bool queued_at(enum queue_type type, const char *path,
		      struct queued_op *op)
{
	struct queued_op *ops;
	size_t k;
	bool found = false;

	queued(&ops, &k);
	for (size_t i = 0; i < k && !found; i++) {
		const char *p = type == QUEUE_LINK ? ops[i].to : ops[i].path;

		found = ops[i].type == type && strcmp(p, path) == 0;
		if (found) {
			*op = ops[i];
			ops[i] = (struct queued_op){ 0 };
		}
	}
	release(ops, k);
	return found;
}

/* How many operations of type at path are queued before op. */
static int64_t queued_before(enum queue_type type, const char *path,
			     const struct queued_op *op)
{
	struct cfs_error err;
	int64_t n = -1;
	bool found;

	CHECK(cfs_sql_int64(
		      db,
		      cfs_sql_stmt(db,
				   "SELECT COUNT(*) FROM ops WHERE type = ?1"
				   " AND path = ?2 AND ord < (SELECT ord"
				   " FROM ops WHERE seq = ?3)",
				   &err, "iti", (int64_t)type, path, op->seq),
		      &n, &found, &err) == CFS_OK);
	return n;
}

/*
 * A link answered "not found" into a folder this mount made, which the
 * server does not have yet (its create, before the link in the batch,
 * went again): the answer does not say whether the file or the folder is
 * missing.  Refused, the name went for good while the folder was made
 * again.  It waits for the listing, then for the folder, queued first;
 * only with every folder on the server is the file what is gone.
 */
static void test_a_link_into_a_folder_the_server_lacks_waits_for_it(void)
{
	struct mirror_entry page[] = {
		entry(90, "lp", 30, CFS_KIND_DIR, 0),
		entry(91, "la", 31, CFS_KIND_FILE, 0),
	};
	struct local_new n = { .kind = CFS_KIND_DIR, .mode = 0755 };
	struct mirror_entry root, p, d, node;
	struct mirror_changes ch = { 0 };
	struct queued_op mk, ln;
	struct cfs_error err;
	uint64_t la;
	int64_t nl;
	bool dropped, waits = false;

	apply(page, 2, 31, 0, &dropped);
	la = shown("la", &nl);
	CHECK(mirror_get(db, MIRROR_ROOT_INO, &root, &err) == CFS_OK);
	CHECK(mirror_lookup(db, &root, "lp", &p, &err) == CFS_OK);
	CHECK(local_mknode(db, p.ino, "d", &n, &d, &err) == CFS_OK);
	CHECK(local_link(db, la, d.ino, "l", &node, &err) == CFS_OK);
	CHECK(queued_at(QUEUE_DIR, "lp/d", &mk));
	CHECK(queued_at(QUEUE_LINK, "lp/d/l", &ln));
	/* The listing is behind the answer's head: it waits, uncounted. */
	CHECK(queue_link_folders(db, &ln, 32, &waits, &err) == CFS_OK && waits);
	CHECK(queued_before(QUEUE_DIR, "lp/d", &ln) == 1);
	/* Listed: the folder the server lacks is created first. */
	CHECK(queue_link_folders(db, &ln, 31, &waits, &err) == CFS_OK && waits);
	CHECK(queued_before(QUEUE_DIR, "lp/d", &ln) == 2);
	CHECK(queued_before(QUEUE_DIR, "lp", &ln) == 0);
	CHECK(shown("la", &nl) == la && nl == 2);
	/* Every folder on the server: the file is what is gone. */
	CHECK(queue_confirm(db, &mk, 92, 32, 0, &ch, &err) == CFS_OK);
	queued_op_release(&mk);
	CHECK(queued_at(QUEUE_DIR, "lp/d", &mk));
	CHECK(queue_confirm(db, &mk, 92, 32, 0, &ch, &err) == CFS_OK);
	CHECK(queue_link_folders(db, &ln, 31, &waits, &err) == CFS_OK &&
	      !waits);
	queued_op_release(&mk);
	queued_op_release(&ln);
	mirror_changes_release(&ch);
	mirror_entry_release(&node);
	mirror_entry_release(&d);
	mirror_entry_release(&p);
	mirror_entry_release(&root);
}

int main(void)
{
	struct cfs_error err;
	char cmd[64];

	CHECK(mkdtemp(dir) != NULL);
	CHECK(cache_open(dir, &cache, &err) == CFS_OK);
	db = cache_db(cache, &err);
	CHECK(db && mirror_init_root(db, ROOT_NS, &err) == CFS_OK);
	RUN(test_a_further_name_shows_its_node_and_counts);
	RUN(test_a_link_waits_for_its_files_creation);
	RUN(test_a_link_count_read_before_the_creation_is_confirmed);
	RUN(test_link_refuses_folders_and_taken_names);
	RUN(test_unlinking_the_first_name_moves_the_file_to_a_link);
	RUN(test_a_change_in_a_folder_replaced_meanwhile_is_stale);
	RUN(test_a_link_into_a_folder_the_server_lacks_waits_for_it);
	cache_db_release(cache, db);
	cache_close(cache);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return CHECK_DONE();
}
