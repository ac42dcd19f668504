/*
 * The mirror against listings a broken or hostile server could send
 * (cache/mirror.c, invariant 3): a mount is followed only from the root
 * namespace, and never takes the place of a namespace already followed,
 * so no listing makes the mount forget its own tree.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/cache.h"
#include "cache/mirror.h"
#include "check.h"

#define ROOT_NS	  1
#define SHARED_NS 2

static char dir[] = "/tmp/test_mirror.XXXXXX";
static struct cache *cache;

/* A MOUNT entry of ns: node, called name, of namespace mount_ns. */
static struct mirror_entry mount_entry(int64_t ns, int64_t node,
				       const char *name, int64_t mount_ns)
{
	struct mirror_entry e = { .ns = ns,
				  .node = node,
				  .jid = node,
				  .kind = CFS_KIND_MOUNT,
				  .mount_ns = mount_ns,
				  .mode = 0755 };

	strcpy(e.name, name);
	return e;
}

/* Applies a page of one entry e to its namespace, at JID e.jid. */
static enum cfs_err apply(struct mirror_entry e, struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(cache, err);
	struct mirror_changes ch = { 0 };
	enum cfs_err rc;

	CHECK(db != NULL);
	rc = mirror_apply(db, e.ns, &e, 1, e.jid, true, &ch, err);
	mirror_changes_release(&ch);
	cache_db_release(cache, db);
	return rc;
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

int main(void)
{
	char cmd[64];

	setup();
	RUN(test_a_shared_folder_cannot_mount_the_root_namespace);
	RUN(test_a_shared_folder_holds_no_mount_of_any_namespace);
	RUN(test_the_root_cannot_mount_a_namespace_twice);
	cache_close(cache);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0);
	return CHECK_DONE();
}
