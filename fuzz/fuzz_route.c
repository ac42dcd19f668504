/*
 * fuzz_route: what cloudfsd makes of a request line: the route table and
 * its {ns} and {block} segments (server/routes.c), then the query
 * arguments of the GET endpoints (cursor, limit, as_of, at, path) as
 * their handlers parse them, against the real store (server_env.h).
 *
 * Feeds: the first line of the input as "METHOD PATH[?QUERY]" (a line
 * without a space is a GET of it).
 * Checks: a route is found only for its own method, and its pattern with
 * the parsed namespace (decimal) and block id (hex) put back is the path
 * itself, byte for byte; a miss is not_found, method_not_allowed (with
 * the methods that are allowed) or bad_block; GET handlers pass the store
 * only checked values (the proxy's contract) and answer a protocol error
 * or a JSON object.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "server/routes.h"
#include "server_env.h"

/* The pattern of a route with its segments as the request gave them. */
static void rebuild(const char *pattern, const struct api_req *req, char *out,
		    size_t len)
{
	size_t at = 0;

	while (*pattern && at < len - 1) {
		char seg[CFS_BLOCK_ID_HEX_LEN + 1];
		const char *put = NULL;

		if (strncmp(pattern, "{ns}", 4) == 0) {
			snprintf(seg, sizeof(seg), "%lld", (long long)req->ns);
			put = seg;
			pattern += 4;
		} else if (strncmp(pattern, "{block}", 7) == 0) {
			cfs_block_id_to_hex(&req->block, seg);
			put = seg;
			pattern += 7;
		}
		if (!put) {
			out[at++] = *pattern++;
			continue;
		}
		at += (size_t)snprintf(out + at, len - at, "%s", put);
		if (at >= len)
			at = len - 1;
	}
	out[at] = '\0';
}

/* Whether method is one of the ", "-separated list allow. */
static bool allowed(const char *allow, const char *method)
{
	size_t len = strlen(method);

	for (const char *p = allow; p; p = strstr(p, ", ")) {
		if (*p == ',')
			p += 2;
		if (strncmp(p, method, len) == 0 && (!p[len] || p[len] == ','))
			return true;
	}
	return false;
}

static void check_miss(const char *method, const char *allow,
		       const struct cfs_error *err)
{
	switch (err->code) {
	case CFS_ERR_METHOD:
		FUZZ_CHECK(allow[0] && !allowed(allow, method),
			   "%s refused, allowing '%s'", method, allow);
		break;
	case CFS_ERR_NOT_FOUND:
	case CFS_ERR_BAD_BLOCK:
		FUZZ_CHECK(!allow[0], "a miss allows '%s'", allow);
		break;
	default:
		FUZZ_CHECK(false, "a miss answered %s",
			   cfs_err_name(err->code));
	}
	FUZZ_CHECK(err->msg[0], "a miss without a message");
}

static void run_get(const struct route *route, struct api_req *req)
{
	struct api_resp resp = { 0 };
	struct cfs_error err = { 0 };
	enum cfs_err rc;

	rc = route->handler(req, &resp, &err);
	server_env_check_answer(rc, &err, &resp);
	FUZZ_CHECK(!resp.park, "a GET parked");
	server_env_release(req, &resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct server_env *env = server_env_get(10000);
	struct api_req req = { .ctx = &env->ctx };
	const uint8_t *nl = memchr(data, '\n', size);
	char *line = fuzz_strndup(data, nl ? (size_t)(nl - data) : size);
	char *sp = strchr(line, ' '), *q, allow[64], again[8192];
	const char *method = "GET", *path = line;
	const struct route *route;
	struct cfs_error err = { 0 };

	if (sp) {
		*sp = '\0';
		method = line;
		path = sp + 1;
	}
	q = strchr(path, '?');
	if (q)
		*q++ = '\0';
	memset(allow, 'x', sizeof(allow));
	route = route_match(method, path, &req, allow, sizeof(allow), &err);
	FUZZ_CHECK(memchr(allow, '\0', sizeof(allow)),
		   "the allowed methods overflow their buffer");
	if (!route) {
		check_miss(method, allow, &err);
		free(line);
		return 0;
	}
	FUZZ_CHECK(strcmp(route->method, method) == 0, "%s routed to %s %s",
		   method, route->method, route->pattern);
	rebuild(route->pattern, &req, again, sizeof(again));
	FUZZ_CHECK(strcmp(again, path) == 0, "'%s' routed as '%s'", path,
		   again);
	FUZZ_CHECK(!strstr(route->pattern, "{ns}") || req.ns >= 1,
		   "namespace %lld", (long long)req.ns);
	if (route->body == ROUTE_BODY_NONE) {
		req.user = route->public ? NULL : &env->user;
		server_env_set_query(&req, q);
		run_get(route, &req);
	}
	free(line);
	return 0;
}
