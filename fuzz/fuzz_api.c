/*
 * fuzz_api: the JSON bodies of cloudfsd's POST endpoints, through the real
 * handlers (server/api_meta.c, api_block.c, api_share.c, api_longpoll.c)
 * and the real SQLite store behind the checking proxy (server_env.h).
 *
 * Feeds: byte 0 picks the endpoint (commit, share, invite, remove, leave,
 * long poll, blocks needed), byte 1 the namespace of the path (the user's
 * root, the shared folder, another user's root, one that does not
 * exist), the rest is the body, parsed as the HTTP layer does (empty: {}).
 * Checks: nothing unchecked reaches the store (the proxy's asserts); the
 * answer is a protocol error (code, 4xx/5xx status, message) or a JSON
 * object; a commit answers one result per operation, and a refused commit
 * changes nothing (the namespace's head stays); a long poll either
 * answers or parks, and a parked one is cancelled cleanly.
 */
#include <stdlib.h>
#include <string.h>

#include "cloudfs/json.h"
#include "fuzz_util.h"
#include "server_env.h"

static const api_handler endpoints[] = {
	api_commit, api_share,	  api_invite,	   api_remove,
	api_leave,  api_longpoll, api_blocks_need,
};

#define N_ENDPOINTS (sizeof(endpoints) / sizeof(endpoints[0]))

static int64_t head_of(struct server_env *env, int64_t ns)
{
	struct cfs_error err;
	int64_t head = -1;

	FUZZ_CHECK(env->ctx.meta->ops->heads(env->ctx.meta, &env->user, &ns,
					     &head, 1, &err) == CFS_OK,
		   "cannot read a head: %s", err.msg);
	return head;
}

static void check_commit(struct api_req *req, const struct api_resp *resp,
			 enum cfs_err rc, int64_t before, int64_t after)
{
	json_t *results, *r;
	size_t i;

	if (rc) {
		FUZZ_CHECK(before == after,
			   "a refused commit moved the head from %lld to %lld",
			   (long long)before, (long long)after);
		return;
	}
	results = json_object_get(resp->json, "results");
	FUZZ_CHECK(json_array_size(results) ==
			   json_array_size(json_object_get(req->body, "ops")),
		   "%zu results for %zu operations", json_array_size(results),
		   json_array_size(json_object_get(req->body, "ops")));
	FUZZ_CHECK(json_integer_value(json_object_get(resp->json, "head")) ==
			   after,
		   "the answer's head is not the head");
	json_array_foreach(results, i, r)
	{
		const char *s = json_string_value(json_object_get(r, "status"));

		FUZZ_CHECK(s && (!strcmp(s, "committed") ||
				 !strcmp(s, "need_blocks") ||
				 !strcmp(s, "conflict") || !strcmp(s, "error")),
			   "result %zu has status %s", i, s ? s : "(none)");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct server_env *env = server_env_get(2000);
	struct api_req req = { .ctx = &env->ctx };
	struct api_resp resp = { 0 };
	struct cfs_error err = { 0 };
	api_handler handler;
	int64_t namespaces[4], before = -1, after = -1;
	enum cfs_err rc;

	if (size < 2)
		return 0;
	namespaces[0] = env->user.root_ns;
	namespaces[1] = env->shared_ns;
	namespaces[2] = env->other_ns;
	namespaces[3] = 999999;
	handler = endpoints[data[0] % N_ENDPOINTS];
	req.ns = namespaces[data[1] % 4];
	req.user = &env->user;
	server_env_set_query(&req, NULL);
	data += 2;
	size -= 2;
	if (size)
		rc = cfs_json_parse_object((const char *)data, size, &req.body,
					   &err);
	else
		rc = (req.body = json_object()) ? CFS_OK : CFS_ERR_INTERNAL;
	if (rc) {
		server_env_check_answer(rc, &err, &resp);
		return 0;
	}
	if (handler == api_commit)
		before = head_of(env, req.ns);
	rc = handler(&req, &resp, &err);
	server_env_check_answer(rc, &err, &resp);
	if (handler == api_commit) {
		after = head_of(env, req.ns);
		check_commit(&req, &resp, rc, before, after);
	}
	if (resp.park)
		FUZZ_CHECK(handler == api_longpoll && req.state,
			   "parked without a waiter");
	server_env_release(&req, &resp);
	return 0;
}
