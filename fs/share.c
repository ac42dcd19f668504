/* Sharing through the server (fs/share.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/local.h"
#include "cache/mirror.h"
#include "cloudfs/clock.h"
#include "fs/fs.h"
#include "fs/invalidate.h"
#include "fs/remote.h"
#include "fs/session.h"
#include "fs/share.h"
#include "fs/upload.h"

static json_t *failure(const char *msg)
{
	return json_pack("{s:s}", "error", msg);
}

/* Entry ino and the root namespace. */
static enum cfs_err look(struct fs *fs, uint64_t ino, struct mirror_entry *e,
			 int64_t *root_ns, struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(fs->cache, err);
	struct mirror_entry root;
	enum cfs_err rc =
		db ? mirror_get(db, MIRROR_ROOT_INO, &root, err) : err->code;

	if (rc == CFS_OK) {
		*root_ns = root.ns;
		mirror_entry_release(&root);
		rc = mirror_get(db, ino, e, err);
	}
	if (rc == CFS_ERR_NOT_FOUND)
		rc = cfs_fail(err, rc, "inode %llu is not in the mount",
			      (unsigned long long)ino);
	if (db)
		cache_db_release(fs->cache, db);
	return rc;
}

/* The path of entry ino in the mount (malloc'd). */
static enum cfs_err folder_path(struct fs *fs, uint64_t ino, char **path,
				struct cfs_error *err)
{
	struct cfs_sql *db = cache_db(fs->cache, err);
	enum cfs_err rc = db ? mirror_path(db, ino, path, err) : err->code;

	if (db)
		cache_db_release(fs->cache, db);
	return rc;
}

/*
 * What is on its way to folder path of root_ns goes first: files closed a
 * moment ago are committed now, without their settling delay, and the
 * changes queued under the folder are sent, waited for up to the mount's
 * network timeout.  Whatever is still queued then (a large upload), or
 * written after, follows the folder into its namespace once the mirror
 * sees it shared (cache/mirror.c, invariant 10): the wait only spares it
 * the detour.
 */
static void send_first(struct fs *fs, int64_t root_ns, const char *path)
{
	uint64_t until =
		cfs_monotonic_ms() + 1000 * (uint64_t)fs->opt.timeout_s;
	struct cfs_error err;

	sessions_settle_now(fs->sessions);
	uploader_wake(fs->upload);
	for (;;) {
		struct cfs_sql *db = cache_db(fs->cache, &err);
		int64_t n = 0;
		enum cfs_err rc =
			db ? queue_length_under(db, root_ns, path, &n, &err)
			   : err.code;

		if (db)
			cache_db_release(fs->cache, db);
		if (rc || n == 0 || cfs_monotonic_ms() >= until)
			return;
		/* Nothing signals the end of one folder's operations. */
		usleep(20 * 1000);
	}
}

/* The shared namespace of folder e, sharing it first if need be. */
static int64_t shared_ns(struct fs *fs, const struct mirror_entry *e,
			 int64_t root_ns, struct cfs_error *err)
{
	char path[64], *p = NULL;
	json_t *a;
	int64_t ns;

	if (e->kind == CFS_KIND_MOUNT)
		return e->mount_ns;
	if (e->kind != CFS_KIND_DIR || e->ns != root_ns) {
		cfs_fail(
			err, CFS_ERR_FORBIDDEN,
			"only a folder of your own tree can be shared, and '%s' is not one",
			e->name);
		return 0;
	}
	if (folder_path(fs, e->ino, &p, err))
		return 0;
	send_first(fs, root_ns, p);
	snprintf(path, sizeof(path), "/meta/ns/%lld/share", (long long)root_ns);
	a = remote_ask(&fs->remote, "POST", path, json_pack("{s:s}", "path", p),
		       err);
	free(p);
	ns = json_integer_value(json_object_get(a, "ns"));
	json_decref(a);
	return a ? ns : 0;
}

/* Whether folder e shows as the mount of shared namespace ns now; *parent
 * gets its folder's inode. */
static bool shows_shared(struct fs *fs, const struct mirror_entry *e,
			 int64_t ns, uint64_t *parent)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);
	struct mirror_entry dir, now;
	bool shown = false;

	if (db && mirror_parent(db, e, parent, &err) == CFS_OK &&
	    mirror_get(db, *parent, &dir, &err) == CFS_OK) {
		if (mirror_lookup(db, &dir, e->name, &now, &err) == CFS_OK) {
			shown = now.kind == CFS_KIND_MOUNT &&
				now.mount_ns == ns;
			mirror_entry_release(&now);
		}
		mirror_entry_release(&dir);
	}
	if (db)
		cache_db_release(fs->cache, db);
	return shown;
}

/*
 * A share returns once this mount shows it, so that what comes next (an
 * unshare, a listing by a script) finds the shared folder; the server's
 * notice of it comes within moments, bounded by the network timeout.
 * The kernel is told at once too (the sync thread tells it a moment after
 * the mirror changed): its entry of the folder names an inode that is
 * gone (cache/mirror.c, invariant 6).
 */
static void await_shown(struct fs *fs, const struct mirror_entry *e, int64_t ns)
{
	uint64_t until =
		cfs_monotonic_ms() + 1000 * (uint64_t)fs->opt.timeout_s;
	uint64_t parent = 0;
	bool shown;

	while (!(shown = shows_shared(fs, e, ns, &parent)) &&
	       cfs_monotonic_ms() < until)
		usleep(10 * 1000);
	if (shown)
		fs_invalidate_child(fs, parent, e->name);
}

static json_t *do_share(struct fs *fs, const char *cmd, json_t *req)
{
	const char *user = json_string_value(json_object_get(req, "user"));
	uint64_t ino =
		(uint64_t)json_integer_value(json_object_get(req, "ino"));
	struct mirror_entry e;
	struct cfs_error err;
	int64_t root_ns = 0, ns = 0;
	char path[64];
	json_t *a = NULL;

	if (!user && strcmp(cmd, "leave") != 0)
		return failure("a user is needed");
	if (look(fs, ino, &e, &root_ns, &err))
		return failure(err.msg);
	if (strcmp(cmd, "share") == 0)
		ns = shared_ns(fs, &e, root_ns, &err);
	else if (e.kind == CFS_KIND_MOUNT)
		ns = e.mount_ns;
	else
		cfs_fail(&err, CFS_ERR_NOT_FOUND, "'%s' is not a shared folder",
			 e.name);
	if (ns && strcmp(cmd, "share") == 0)
		await_shown(fs, &e, ns);
	mirror_entry_release(&e);
	if (!ns)
		return failure(err.msg);
	snprintf(path, sizeof(path), "/meta/ns/%lld/%s", (long long)ns,
		 strcmp(cmd, "share") == 0     ? "invite"
		 : strcmp(cmd, "unshare") == 0 ? "remove"
					       : "leave");
	a = remote_ask(&fs->remote, "POST", path,
		       user ? json_pack("{s:s}", "user", user) : json_object(),
		       &err);
	if (!a)
		return failure(err.msg);
	json_decref(a);
	return json_pack("{s:I}", "ns", (json_int_t)ns);
}

static json_t *do_shares(struct fs *fs)
{
	struct cfs_error err;
	json_t *all =
		remote_ask(&fs->remote, "GET", "/meta/namespaces", NULL, &err);
	json_t *out = json_array(), *o;
	size_t i;

	if (!all) {
		json_decref(out);
		return failure(err.msg);
	}
	json_array_foreach(json_object_get(all, "namespaces"), i, o)
	{
		char path[64];
		json_t *m;

		if (json_is_true(json_object_get(o, "root")))
			continue;
		snprintf(path, sizeof(path), "/meta/ns/%lld/members",
			 (long long)json_integer_value(
				 json_object_get(o, "ns")));
		m = remote_ask(&fs->remote, "GET", path, NULL, &err);
		if (!m) {
			json_decref(out);
			json_decref(all);
			return failure(err.msg);
		}
		json_array_append_new(
			out, json_pack("{s:O, s:O, s:O, s:O}", "ns",
				       json_object_get(o, "ns"), "path",
				       json_object_get(o, "path"), "owner",
				       json_object_get(o, "owner"), "members",
				       json_object_get(m, "members")));
		json_decref(m);
	}
	json_decref(all);
	return json_pack("{s:o}", "shares", out);
}

json_t *share_answer(struct fs *fs, const char *cmd, json_t *req)
{
	if (strcmp(cmd, "share") == 0 || strcmp(cmd, "unshare") == 0 ||
	    strcmp(cmd, "leave") == 0)
		return do_share(fs, cmd, req);
	if (strcmp(cmd, "shares") == 0)
		return do_shares(fs);
	return NULL;
}
