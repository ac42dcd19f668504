/*
 * The metadata endpoints: health, namespaces, listings and commits.
 *
 * A commit body is checked whole before anything is applied: one bad
 * operation refuses the batch with 400 and changes nothing.  Checked
 * batches are applied operation by operation (meta_ops.commit), each with
 * its own result.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cloudfs/clock.h"
#include "cloudfs/json.h"
#include "cloudfs/log.h"
#include "cloudfs/num.h"
#include "cloudfs/path.h"
#include "cloudfs/proto.h"
#include "config.h"
#include "server/api.h"
#include "server/http.h"
#include "server/metrics.h"

enum cfs_err api_reply(struct api_resp *resp, json_t *json,
		       struct cfs_error *err)
{
	if (!json)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"out of memory building the response");
	resp->json = json;
	return CFS_OK;
}

enum cfs_err api_health(struct api_req *req, struct api_resp *resp,
			struct cfs_error *err)
{
	(void)req;
	return api_reply(resp,
			 json_pack("{s:s, s:s, s:i}", "name", "cloudfsd",
				   "version", CLOUDFS_VERSION, "protocol",
				   CFS_PROTOCOL_VERSION),
			 err);
}

enum cfs_err api_append(json_t *arr, json_t *o, struct cfs_error *err)
{
	if (!o || json_array_append_new(arr, o))
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"out of memory building the response");
	return CFS_OK;
}

static enum cfs_err append_ns(void *arg, const struct meta_ns_info *ns,
			      struct cfs_error *err)
{
	json_t *o = json_pack("{s:I, s:I, s:b, s:s, s:s?}", "ns",
			      (json_int_t)ns->ns, "head", (json_int_t)ns->head,
			      "root", ns->root, "path", ns->path, "owner",
			      ns->owner);

	return api_append(arg, o, err);
}

enum cfs_err api_namespaces(struct api_req *req, struct api_resp *resp,
			    struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	json_t *list = json_array();
	enum cfs_err rc;

	if (!list)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	rc = m->ops->namespaces(m, req->user, append_ns, list, err);
	if (rc) {
		json_decref(list);
		return rc;
	}
	return api_reply(resp, json_pack("{s:o}", "namespaces", list), err);
}

static json_t *entry_json(const struct meta_entry *e)
{
	json_t *o =
		json_pack("{s:I, s:I, s:s, s:s*, s:s, s:I}", "node",
			  (json_int_t)e->node, "parent", (json_int_t)e->parent,
			  "name", e->name, "path", e->path, "kind",
			  cfs_kind_name(e->kind), "jid", (json_int_t)e->jid);
	int rc = 0;

	if (o && e->at) /* a version in a history */
		rc |= json_object_set_new(o, "at", json_integer(e->at)) |
		      json_object_set_new(o, "author", json_string(e->author));
	if (o && e->before)
		rc |= json_object_set_new(o, "before", json_integer(e->before));
	/* A link's name is all it has of its own: the node it names holds
	 * the rest (cloudfs-protocol(7)). */
	if (o && e->kind == CFS_KIND_LINK)
		rc |= json_object_set_new(o, "of", json_integer(e->link_of));
	if (!o || e->kind == CFS_KIND_DELETED || e->kind == CFS_KIND_LINK)
		return rc ? (json_decref(o), NULL) : o;
	rc |= json_object_set_new(o, "size", json_integer((json_int_t)e->size));
	rc |= json_object_set_new(o, "atime_ns", json_integer(e->atime_ns));
	rc |= json_object_set_new(o, "mtime_ns", json_integer(e->mtime_ns));
	rc |= json_object_set_new(o, "ctime_ns", json_integer(e->ctime_ns));
	rc |= json_object_set_new(o, "mode", json_integer(e->mode));
	if (e->kind == CFS_KIND_FILE)
		rc |= json_object_set_new(
			o, "blocks",
			cfs_json_block_ids(e->blocks.ids, e->blocks.n));
	if (cfs_kind_has_target(e->kind))
		rc |= json_object_set_new(o, "target", json_string(e->target));
	if (e->kind == CFS_KIND_MOUNT)
		rc |= json_object_set_new(o, "ns", json_integer(e->mount_ns));
	if (rc) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static enum cfs_err append_entry(void *arg, const struct meta_entry *e,
				 struct cfs_error *err)
{
	return api_append(arg, entry_json(e), err);
}

/* An optional integer query argument within [min, max]: decimal digits
 * only, an overflow out of range rather than saturated (cloudfs/num.h). */
static enum cfs_err query_int(struct api_req *req, const char *key, int64_t min,
			      int64_t max, int64_t def, int64_t *out,
			      struct cfs_error *err)
{
	const char *s = http_query(req, key);

	*out = def;
	if (!s || cfs_num_parse_i64(s, min, max, out) == 0)
		return CFS_OK;
	return cfs_fail(
		err, CFS_ERR_BAD_FIELD,
		"query argument '%s' must be an integer from %lld to %lld, not '%.40s'",
		key, (long long)min, (long long)max, s);
}

enum cfs_err api_list(struct api_req *req, struct api_resp *resp,
		      struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	struct meta_page page;
	int64_t cursor, limit, as_of, at;
	json_t *entries;
	enum cfs_err rc;

	rc = query_int(req, "cursor", 0, INT64_MAX, 0, &cursor, err);
	if (rc == CFS_OK)
		rc = query_int(req, "limit", 1, CFS_LIST_MAX_LIMIT,
			       CFS_LIST_DEFAULT_LIMIT, &limit, err);
	if (rc == CFS_OK)
		rc = query_int(req, "as_of", 0, INT64_MAX, -1, &as_of, err);
	if (rc == CFS_OK)
		rc = query_int(req, "at", 1, INT64_MAX, 0, &at, err);
	if (rc == CFS_OK && as_of >= 0 && at)
		rc = cfs_fail(err, CFS_ERR_BAD_FIELD,
			      "give 'as_of' or 'at', not both");
	if (rc)
		return rc;
	entries = json_array();
	if (!entries)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	if (as_of >= 0 || at)
		rc = m->ops->list_as_of(m, req->user, req->ns, as_of, at,
					cursor, (unsigned)limit, append_entry,
					entries, &page, err);
	else
		rc = m->ops->list(m, req->user, req->ns, cursor,
				  (unsigned)limit, append_entry, entries, &page,
				  err);
	if (rc) {
		json_decref(entries);
		return rc;
	}
	return api_reply(resp,
			 json_pack("{s:I, s:o, s:I, s:I, s:b}", "ns",
				   (json_int_t)req->ns, "entries", entries,
				   "cursor", (json_int_t)page.cursor, "head",
				   (json_int_t)page.head, "more", page.more),
			 err);
}

/* A history answer: the newest versions, as many as a list page holds. */
struct history_page {
	json_t *versions;
	struct meta_page page;
};

static enum cfs_err append_version(void *arg, const struct meta_entry *e,
				   struct cfs_error *err)
{
	struct history_page *h = arg;

	if (h->page.more || !meta_page_take(&h->page, e)) {
		h->page.more = true; /* the older ones are left out */
		return CFS_OK;
	}
	return api_append(h->versions, entry_json(e), err);
}

enum cfs_err api_history(struct api_req *req, struct api_resp *resp,
			 struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	const char *path = http_query(req, "path");
	struct history_page page = { 0 };
	enum cfs_err rc;

	if (!path)
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"query argument 'path' is required");
	rc = cfs_path_check(path, strlen(path), false, "query argument 'path'",
			    err);
	if (rc)
		return rc;
	page.versions = json_array();
	if (!page.versions)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	rc = m->ops->history(m, req->user, req->ns, path, append_version, &page,
			     err);
	if (rc) {
		json_decref(page.versions);
		return rc;
	}
	return api_reply(resp,
			 json_pack("{s:I, s:s, s:o, s:b}", "ns",
				   (json_int_t)req->ns, "path", path,
				   "versions", page.versions, "more",
				   page.page.more),
			 err);
}

static enum cfs_err op_path(json_t *o, const char *key, const char **out,
			    struct cfs_error *err)
{
	char what[32];
	size_t len;
	enum cfs_err rc = cfs_json_string(o, key, out, &len, err);

	snprintf(what, sizeof(what), "field '%s'", key);
	return rc ? rc : cfs_path_check(*out, len, false, what, err);
}

static enum cfs_err op_target(json_t *o, const char **out,
			      struct cfs_error *err)
{
	size_t len;
	enum cfs_err rc = cfs_json_string(o, "target", out, &len, err);

	if (rc)
		return rc;
	if (len == 0 || len > CFS_MAX_SYMLINK_TARGET)
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"field 'target' must be 1 to %d bytes long",
				CFS_MAX_SYMLINK_TARGET);
	if (memchr(*out, '\0', len))
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"field 'target' contains a NUL byte");
	return CFS_OK;
}

/* A device's target: which device, "MAJOR:MINOR". */
static enum cfs_err op_device(json_t *o, const char **out,
			      struct cfs_error *err)
{
	size_t len;
	uint32_t major, minor;
	enum cfs_err rc = cfs_json_string(o, "target", out, &len, err);

	if (rc == CFS_OK &&
	    (len != strlen(*out) || !cfs_device_parse(*out, &major, &minor)))
		rc = cfs_fail(err, CFS_ERR_BAD_FIELD,
			      "field 'target' of a device must be MAJOR:MINOR");
	return rc;
}

/* The node's ctime an operation sets: the client's, or now (now, so
 * that an API client that sends none still gets POSIX's ctime). */
static enum cfs_err op_ctime(json_t *o, struct meta_op *op, int64_t now,
			     struct cfs_error *err)
{
	json_t *v = json_object_get(o, "ctime_ns");

	op->ctime_said = v && !json_is_null(v);
	return cfs_json_int_opt(o, "ctime_ns", INT64_MIN, INT64_MAX, now,
				&op->ctime_ns, err);
}

/* Fields of the "file", "dir", "symlink" and special files' operations. */
static enum cfs_err op_attrs(json_t *o, struct meta_op *op, int64_t mode,
			     struct cfs_error *err)
{
	int64_t v, now = cfs_now_ns();
	enum cfs_err rc;

	rc = cfs_json_int_opt(o, "mtime_ns", INT64_MIN, INT64_MAX, now,
			      &op->mtime_ns, err);
	if (rc == CFS_OK)
		rc = cfs_json_int_opt(o, "atime_ns", INT64_MIN, INT64_MAX,
				      op->mtime_ns, &op->atime_ns, err);
	if (rc == CFS_OK)
		rc = op_ctime(o, op, now, err);
	if (rc == CFS_OK && op->type != META_OP_SYMLINK)
		rc = cfs_json_int_opt(o, "mode", 0, 07777, mode, &mode, err);
	op->mode = (uint32_t)mode & CFS_MODE_MASK;
	if (rc == CFS_OK && op->type != META_OP_DIR)
		rc = cfs_json_int_opt(o, "base_jid", 0, INT64_MAX, 0,
				      &op->base_jid, err);
	if (rc || op->type != META_OP_FILE)
		return rc;
	rc = cfs_json_int(o, "size", 0, (int64_t)CFS_MAX_FILE_SIZE, &v, err);
	if (rc == CFS_OK)
		op->size = (uint64_t)v;
	if (rc == CFS_OK)
		rc = cfs_json_blocklist(o, "blocks",
					cfs_block_count(CFS_MAX_FILE_SIZE),
					&op->blocks, err);
	if (rc == CFS_OK && op->blocks.n != cfs_block_count(op->size))
		rc = cfs_fail(err, CFS_ERR_BAD_FIELD,
			      "a file of %llu bytes has %llu blocks, not %zu",
			      (unsigned long long)op->size,
			      (unsigned long long)cfs_block_count(op->size),
			      op->blocks.n);
	return rc;
}

static const struct {
	const char *name;
	enum meta_op_type type;
	enum cfs_kind kind; /* what the operation makes (none: deleted) */
} op_names[] = {
	{ "file", META_OP_FILE, CFS_KIND_FILE },
	{ "dir", META_OP_DIR, CFS_KIND_DIR },
	{ "symlink", META_OP_SYMLINK, CFS_KIND_SYMLINK },
	{ "delete", META_OP_DELETE, CFS_KIND_DELETED },
	{ "move", META_OP_MOVE, CFS_KIND_DELETED },
	{ "link", META_OP_LINK, CFS_KIND_LINK },
	{ "fifo", META_OP_SPECIAL, CFS_KIND_FIFO },
	{ "socket", META_OP_SPECIAL, CFS_KIND_SOCKET },
	{ "chardev", META_OP_SPECIAL, CFS_KIND_CHARDEV },
	{ "blockdev", META_OP_SPECIAL, CFS_KIND_BLOCKDEV },
};

static enum cfs_err parse_op(json_t *o, struct meta_op *op,
			     struct cfs_error *err)
{
	const char *name;
	size_t len, i;
	enum cfs_err rc;

	if (!json_is_object(o))
		return cfs_fail(err, CFS_ERR_BAD_FIELD, "must be an object");
	rc = cfs_json_string(o, "op", &name, &len, err);
	if (rc)
		return rc;
	for (i = 0; i < sizeof(op_names) / sizeof(op_names[0]); i++)
		if (strcmp(op_names[i].name, name) == 0)
			break;
	if (i == sizeof(op_names) / sizeof(op_names[0]))
		return cfs_fail(
			err, CFS_ERR_BAD_FIELD,
			"field 'op' must be file, dir, symlink, fifo, socket, chardev, blockdev, delete, move or link");
	op->type = op_names[i].type;
	op->kind = op_names[i].kind;
	op->base_jid = -1;
	rc = cfs_json_int_opt(o, "seq", 1, INT64_MAX, 0, &op->seq, err);
	if (rc == CFS_OK)
		rc = op_path(o, "path", &op->path, err);
	if (rc)
		return rc;
	switch (op->type) {
	case META_OP_FILE:
		return op_attrs(o, op, 0644, err);
	case META_OP_DIR:
		return op_attrs(o, op, 0755, err);
	case META_OP_SYMLINK:
		rc = op_target(o, &op->target, err);
		return rc ? rc : op_attrs(o, op, 0777, err);
	case META_OP_SPECIAL:
		if (cfs_kind_has_target(op->kind))
			rc = op_device(o, &op->target, err);
		return rc ? rc : op_attrs(o, op, 0644, err);
	case META_OP_DELETE:
		rc = cfs_json_int_opt(o, "base_jid", 0, INT64_MAX, -1,
				      &op->base_jid, err);
		if (rc == CFS_OK)
			rc = cfs_json_int_opt(o, "node", 1, INT64_MAX, 0,
					      &op->node, err);
		if (rc == CFS_OK)
			rc = cfs_json_int_opt(o, "unchanged_since", 1,
					      INT64_MAX, 0,
					      &op->unchanged_since, err);
		return rc ? rc
			  : cfs_json_bool_opt(o, "recursive", false,
					      &op->recursive, err);
	case META_OP_MOVE:
		rc = op_path(o, "to", &op->to, err);
		if (rc == CFS_OK)
			rc = cfs_json_int_opt(o, "base_jid", 0, INT64_MAX, -1,
					      &op->base_jid, err);
		if (rc == CFS_OK)
			rc = cfs_json_int_opt(o, "node", 1, INT64_MAX, 0,
					      &op->node, err);
		if (rc == CFS_OK)
			rc = op_ctime(o, op, cfs_now_ns(), err);
		return rc ? rc
			  : cfs_json_bool_opt(o, "replace", false, &op->replace,
					      err);
	case META_OP_LINK:
		rc = op_path(o, "to", &op->to, err);
		if (rc == CFS_OK)
			rc = cfs_json_int_opt(o, "base_jid", 0, INT64_MAX, -1,
					      &op->base_jid, err);
		return rc ? rc : op_ctime(o, op, cfs_now_ns(), err);
	}
	return CFS_OK;
}

static json_t *result_json(const struct meta_op_result *r)
{
	switch (r->status) {
	case META_COMMITTED:
		return r->prev_jid ? json_pack("{s:s, s:I, s:I, s:I}", "status",
					       "committed", "jid",
					       (json_int_t)r->jid, "node",
					       (json_int_t)r->node, "prev_jid",
					       (json_int_t)r->prev_jid)
				   : json_pack("{s:s, s:I, s:I}", "status",
					       "committed", "jid",
					       (json_int_t)r->jid, "node",
					       (json_int_t)r->node);
	case META_NEED_BLOCKS:
		return json_pack("{s:s, s:o}", "status", "need_blocks",
				 "blocks",
				 cfs_json_block_ids(r->need.ids, r->need.n));
	case META_CONFLICT:
		return json_pack("{s:s, s:I, s:s}", "status", "conflict", "jid",
				 (json_int_t)r->jid, "message", r->err.msg);
	case META_FAILED:
		break;
	}
	return json_pack("{s:s, s:{s:s, s:s}}", "status", "error", "error",
			 "code", cfs_err_name(r->err.code), "message",
			 r->err.msg);
}

static enum cfs_err commit_reply(struct api_resp *resp,
				 const struct meta_op_result *res, size_t n,
				 int64_t head, struct cfs_error *err)
{
	json_t *results = json_array();

	for (size_t i = 0; results && i < n; i++) {
		if (json_array_append_new(results, result_json(&res[i]))) {
			json_decref(results);
			results = NULL;
		}
	}
	return api_reply(resp,
			 results ? json_pack("{s:o, s:I}", "results", results,
					     "head", (json_int_t)head)
				 : NULL,
			 err);
}

static size_t count_committed(const struct meta_op_result *res, size_t n)
{
	size_t committed = 0;

	for (size_t i = 0; i < n; i++)
		committed += res[i].status == META_COMMITTED;
	return committed;
}

/* The optional "client" and "keep_from" of a commit (meta_sender). */
static enum cfs_err parse_sender(json_t *body, struct meta_sender *from,
				 struct cfs_error *err)
{
	size_t len = 0;
	enum cfs_err rc =
		cfs_json_string_opt(body, "client", &from->client, &len, err);

	if (rc == CFS_OK && from->client &&
	    (len == 0 || len > META_CLIENT_MAX ||
	     strspn(from->client, "0123456789abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ-_") != len))
		rc = cfs_fail(
			err, CFS_ERR_BAD_FIELD,
			"field 'client' must be 1 to %d letters, digits, '-' or '_'",
			META_CLIENT_MAX);
	if (rc == CFS_OK)
		rc = cfs_json_int_opt(body, "keep_from", 0, INT64_MAX, 0,
				      &from->keep_from, err);
	return rc;
}

/* A commit, or with announce, an announcement of pending lists (file
 * operations only, none applied). */
static enum cfs_err commit_or_announce(struct api_req *req,
				       struct api_resp *resp, bool announce,
				       struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	struct meta_sender from = { 0 };
	struct meta_op *ops = NULL;
	struct meta_op_result *res = NULL;
	json_t *arr, *o;
	size_t n = 0, i;
	int64_t head = 0;
	enum cfs_err rc;

	rc = cfs_json_array(req->body, "ops", CFS_MAX_BATCH_OPS, &arr, err);
	if (rc == CFS_OK && !announce)
		rc = parse_sender(req->body, &from, err);
	if (rc)
		return rc;
	n = json_array_size(arr);
	ops = calloc(n ? n : 1, sizeof(*ops));
	res = calloc(n ? n : 1, sizeof(*res));
	if (!ops || !res) {
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		goto out;
	}
	json_array_foreach(arr, i, o)
	{
		rc = parse_op(o, &ops[i], err);
		if (rc == CFS_OK && announce && ops[i].type != META_OP_FILE)
			rc = cfs_fail(err, CFS_ERR_BAD_FIELD,
				      "only file operations are announced");
		if (rc) {
			cfs_error_prefix(err, "op %zu", i);
			goto out;
		}
		ops[i].announce = announce;
		if (announce)
			ops[i].seq = 0; /* nothing applied: no answer kept */
	}
	rc = m->ops->commit(m, req->user, req->ns, &from, ops, res, n, &head,
			    err);
	if (rc == CFS_OK) {
		if (!announce)
			metrics_commit(count_committed(res, n));
		rc = commit_reply(resp, res, n, head, err);
	}
out:
	for (i = 0; ops && i < n; i++) {
		cfs_blocklist_release(&ops[i].blocks);
		meta_op_result_release(&res[i]);
	}
	free(ops);
	free(res);
	return rc;
}

enum cfs_err api_commit(struct api_req *req, struct api_resp *resp,
			struct cfs_error *err)
{
	return commit_or_announce(req, resp, false, err);
}

enum cfs_err api_announce(struct api_req *req, struct api_resp *resp,
			  struct cfs_error *err)
{
	return commit_or_announce(req, resp, true, err);
}
