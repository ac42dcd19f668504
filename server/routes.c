/* The route table of cloudfsd (server/routes.h). */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cloudfs/proto.h"
#include "server/routes.h"

#define ROUTE(m, p, h, b)                                                  \
	{                                                                  \
		.method = (m), .pattern = (p), .handler = (h), .body = (b) \
	}

static const struct route routes[] = {
	{ .method = "GET",
	  .pattern = "/",
	  .handler = api_health,
	  .public = true },
	ROUTE("GET", "/meta/namespaces", api_namespaces, ROUTE_BODY_NONE),
	ROUTE("GET", "/meta/ns/{ns}/list", api_list, ROUTE_BODY_NONE),
	ROUTE("GET", "/meta/ns/{ns}/history", api_history, ROUTE_BODY_NONE),
	{ .method = "POST",
	  .pattern = "/meta/ns/{ns}/commit",
	  .handler = api_commit,
	  .body = ROUTE_BODY_JSON,
	  .cap = CFS_MAX_COMMIT_BODY },
	{ .method = "POST",
	  .pattern = "/meta/ns/{ns}/announce",
	  .handler = api_announce,
	  .body = ROUTE_BODY_JSON,
	  .cap = CFS_MAX_COMMIT_BODY },
	ROUTE("POST", "/meta/ns/{ns}/share", api_share, ROUTE_BODY_JSON),
	ROUTE("GET", "/meta/ns/{ns}/members", api_members, ROUTE_BODY_NONE),
	ROUTE("POST", "/meta/ns/{ns}/invite", api_invite, ROUTE_BODY_JSON),
	ROUTE("POST", "/meta/ns/{ns}/remove", api_remove, ROUTE_BODY_JSON),
	ROUTE("POST", "/meta/ns/{ns}/leave", api_leave, ROUTE_BODY_JSON),
	{ .method = "POST",
	  .pattern = "/meta/longpoll",
	  .handler = api_longpoll,
	  .resume = api_longpoll_resume,
	  .body = ROUTE_BODY_JSON,
	  .cap = CFS_MAX_LONGPOLL_BODY },
	{ .method = "GET",
	  .pattern = "/metrics",
	  .handler = api_metrics,
	  .public = true },
	ROUTE("POST", "/block/need", api_blocks_need, ROUTE_BODY_JSON),
	{ .method = "POST",
	  .pattern = "/block/batch",
	  .handler = api_blocks_put,
	  .body = ROUTE_BODY_RAW,
	  .cap = CFS_MAX_BATCH_BODY },
	ROUTE("GET", "/block/{block}", api_block_get, ROUTE_BODY_NONE),
	ROUTE("PUT", "/block/{block}", api_block_put, ROUTE_BODY_BLOCK),
};

#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))
_Static_assert(N_ROUTES <= ROUTES_MAX, "raise ROUTES_MAX");

size_t route_count(void)
{
	return N_ROUTES;
}

const struct route *route_nth(size_t i)
{
	assert(i < N_ROUTES);
	return &routes[i];
}

size_t route_index(const struct route *route)
{
	assert(route >= routes && route < routes + N_ROUTES);
	return (size_t)(route - routes);
}

/* A namespace id: decimal, no sign, no leading zero, fits in int64. */
static bool parse_ns(const char *s, size_t len, int64_t *ns)
{
	char buf[24];
	char *end;
	long long v;

	if (len == 0 || len >= sizeof(buf) || s[0] < '1' || s[0] > '9')
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (errno || *end)
		return false;
	*ns = v;
	return true;
}

enum match {
	MATCH,
	NO_MATCH,
	BAD_BLOCK_ID, /* matches but for a malformed {block} segment */
};

/* Whether path matches pattern, filling the segments it stands for. */
static enum match match(const char *pattern, const char *path,
			struct api_req *req)
{
	enum match result = MATCH;

	while (*pattern && *path) {
		const char *pe = strchr(pattern, '/'), *se = strchr(path, '/');
		size_t plen = pe ? (size_t)(pe - pattern) : strlen(pattern);
		size_t slen = se ? (size_t)(se - path) : strlen(path);

		if (plen == 4 && strncmp(pattern, "{ns}", 4) == 0) {
			if (!parse_ns(path, slen, &req->ns))
				return NO_MATCH;
		} else if (plen == 7 && strncmp(pattern, "{block}", 7) == 0) {
			if (!cfs_block_id_from_hex(path, slen, &req->block))
				result = BAD_BLOCK_ID;
		} else if (plen != slen || strncmp(pattern, path, plen) != 0) {
			return NO_MATCH;
		}
		pattern += plen;
		path += slen;
		if (*pattern != *path)
			return NO_MATCH;
		if (*pattern == '/') {
			pattern++;
			path++;
		}
	}
	return *pattern == *path ? result : NO_MATCH;
}

const struct route *route_match(const char *method, const char *path,
				struct api_req *req, char *allow,
				size_t allow_len, struct cfs_error *err)
{
	bool path_known = false, bad_block = false;

	allow[0] = '\0';
	for (size_t i = 0; i < N_ROUTES; i++) {
		enum match m = match(routes[i].pattern, path, req);

		bad_block |= m == BAD_BLOCK_ID;
		if (m != MATCH)
			continue;
		if (strcmp(routes[i].method, method) == 0)
			return &routes[i];
		path_known = true;
		if (strlen(allow) + strlen(routes[i].method) + 3 < allow_len) {
			if (allow[0])
				strcat(allow, ", ");
			strcat(allow, routes[i].method);
		}
	}
	if (path_known)
		cfs_fail(err, CFS_ERR_METHOD,
			 "%s is not allowed on %s (use %s)", method, path,
			 allow);
	else if (bad_block)
		cfs_fail(
			err, CFS_ERR_BAD_BLOCK,
			"'%s' does not end in a block id (64 lowercase hex digits)",
			path);
	else
		cfs_fail(err, CFS_ERR_NOT_FOUND, "no endpoint %s", path);
	return NULL;
}
