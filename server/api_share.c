/* The shared-folder endpoints: share, invite, remove, leave, members. */
#include "cloudfs/json.h"
#include "cloudfs/path.h"
#include "server/api.h"

enum cfs_err api_share(struct api_req *req, struct api_resp *resp,
		       struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	const char *path;
	size_t len;
	int64_t shared;
	bool created;
	enum cfs_err rc;

	rc = cfs_json_string(req->body, "path", &path, &len, err);
	if (rc == CFS_OK)
		rc = cfs_path_check(path, len, false, "field 'path'", err);
	if (rc == CFS_OK)
		rc = m->ops->share(m, req->user, req->ns, path, &shared,
				   &created, err);
	if (rc)
		return rc;
	return api_reply(resp,
			 json_pack("{s:I, s:b}", "ns", (json_int_t)shared,
				   "created", created),
			 err);
}

/* The "user" field of a body, checked as a user name. */
static enum cfs_err user_field(struct api_req *req, const char **name,
			       struct cfs_error *err)
{
	size_t len;
	enum cfs_err rc = cfs_json_string(req->body, "user", name, &len, err);

	if (rc == CFS_OK && (rc = meta_user_name_check(*name, len, err)))
		cfs_error_prefix(err, "field 'user'");
	return rc;
}

static enum cfs_err ns_reply(struct api_req *req, struct api_resp *resp,
			     struct cfs_error *err)
{
	return api_reply(resp, json_pack("{s:I}", "ns", (json_int_t)req->ns),
			 err);
}

enum cfs_err api_invite(struct api_req *req, struct api_resp *resp,
			struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	const char *user;
	enum cfs_err rc = user_field(req, &user, err);

	if (rc == CFS_OK)
		rc = m->ops->invite(m, req->user, req->ns, user, err);
	return rc ? rc : ns_reply(req, resp, err);
}

enum cfs_err api_remove(struct api_req *req, struct api_resp *resp,
			struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	const char *user;
	enum cfs_err rc = user_field(req, &user, err);

	if (rc == CFS_OK)
		rc = m->ops->remove_member(m, req->user, req->ns, user, err);
	return rc ? rc : ns_reply(req, resp, err);
}

enum cfs_err api_leave(struct api_req *req, struct api_resp *resp,
		       struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	enum cfs_err rc = m->ops->leave(m, req->user, req->ns, err);

	return rc ? rc : ns_reply(req, resp, err);
}

static enum cfs_err append_member(void *arg, const struct meta_member *mm,
				  struct cfs_error *err)
{
	return api_append(
		arg,
		json_pack("{s:s, s:b}", "user", mm->user, "owner", mm->owner),
		err);
}

enum cfs_err api_members(struct api_req *req, struct api_resp *resp,
			 struct cfs_error *err)
{
	struct meta *m = req->ctx->meta;
	json_t *list = json_array();
	enum cfs_err rc;

	if (!list)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	rc = m->ops->members(m, req->user, req->ns, append_member, list, err);
	if (rc) {
		json_decref(list);
		return rc;
	}
	return api_reply(resp,
			 json_pack("{s:I, s:o}", "ns", (json_int_t)req->ns,
				   "members", list),
			 err);
}
