/* Sharing through the server (fs/share.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/local.h"
#include "cache/mirror.h"
#include "cloudfs/clock.h"
#include "cloudfs/cmdtable.h"
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
	struct remote_conn *c;
	char *p = NULL;
	int64_t ns = 0;

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
	if (!(c = remote_conn_new(fs->remote)))
		cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	else if (fs->remote->ops->share(c, root_ns, p, &ns, err))
		ns = 0;
	remote_conn_free(c);
	free(p);
	return ns;
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

/* The verbs of share_member_answer(): what each asks of the server, and
 * whether it makes the folder a shared one first (or needs it shared
 * already) and names a user. */
static const struct share_verb {
	const char *name;
	enum remote_member_verb verb;
	bool shares, needs_user;
} verbs[] = {
	{ .name = "share",
	  .verb = REMOTE_INVITE,
	  .shares = true,
	  .needs_user = true },
	{ .name = "unshare", .verb = REMOTE_REMOVE, .needs_user = true },
	{ .name = "leave", .verb = REMOTE_LEAVE },
};

json_t *share_member_answer(struct fs *fs, const char *cmd, json_t *req)
{
	const struct share_verb *v = CFS_CMDTABLE_FIND(verbs, cmd);
	const char *user = json_string_value(json_object_get(req, "user"));
	uint64_t ino =
		(uint64_t)json_integer_value(json_object_get(req, "ino"));
	struct mirror_entry e;
	struct cfs_error err;
	int64_t root_ns = 0, ns = 0;
	struct remote_conn *c;
	enum cfs_err rc;

	if (!v)
		return failure("a share request is share, unshare or leave");
	if (!user && v->needs_user)
		return failure("a user is needed");
	if (look(fs, ino, &e, &root_ns, &err))
		return failure(err.msg);
	if (v->shares)
		ns = shared_ns(fs, &e, root_ns, &err);
	else if (e.kind == CFS_KIND_MOUNT)
		ns = e.mount_ns;
	else
		cfs_fail(&err, CFS_ERR_NOT_FOUND, "'%s' is not a shared folder",
			 e.name);
	if (ns && v->shares)
		await_shown(fs, &e, ns);
	mirror_entry_release(&e);
	if (!ns)
		return failure(err.msg);
	if (!(c = remote_conn_new(fs->remote)))
		rc = cfs_fail(&err, CFS_ERR_INTERNAL, "out of memory");
	else
		rc = fs->remote->ops->member(c, ns, v->verb, user, &err);
	remote_conn_free(c);
	if (rc)
		return failure(err.msg);
	return json_pack("{s:I}", "ns", (json_int_t)ns);
}

/* A member as `cloudfs shares` shows it. */
static json_t *members_json(const struct remote_member *m, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_pack("{s:s?, s:b}", "user",
						   m[i].user, "owner",
						   m[i].owner));
	return a;
}

static json_t *do_shares(struct fs *fs)
{
	struct remote_conn *c = remote_conn_new(fs->remote);
	struct remote_ns *all = NULL;
	struct cfs_error err;
	json_t *out = json_array();
	size_t n = 0;
	enum cfs_err rc = c ? remote_namespaces(c, 0, NULL, &all, &n, &err)
			    : cfs_fail(&err, CFS_ERR_INTERNAL, "out of memory");

	for (size_t i = 0; rc == CFS_OK && i < n; i++) {
		struct remote_member *m = NULL;
		size_t k = 0;

		if (all[i].root)
			continue;
		rc = fs->remote->ops->members(c, all[i].ns, &m, &k, &err);
		if (rc == CFS_OK)
			json_array_append_new(
				out,
				json_pack("{s:I, s:s?, s:s?, s:o}", "ns",
					  (json_int_t)all[i].ns, "path",
					  all[i].path, "owner", all[i].owner,
					  "members", members_json(m, k)));
		remote_members_free(m, k);
	}
	remote_ns_free(all, n);
	remote_conn_free(c);
	if (rc) {
		json_decref(out);
		return failure(err.msg);
	}
	return json_pack("{s:o}", "shares", out);
}

json_t *share_list_answer(struct fs *fs, const char *cmd, json_t *req)
{
	(void)cmd, (void)req;
	return do_shares(fs);
}
