/*
 * The URL space of cloudfsd: which handler serves which method and path.
 *
 *	/meta/...   metadata endpoints (JSON)
 *	/block/...  block bytes
 *
 * Paths may hold one namespace id (decimal) or one block id (64 hex
 * digits) as a segment.
 */
#ifndef SERVER_ROUTES_H
#define SERVER_ROUTES_H

#include <stdbool.h>

#include "server/api.h"

enum route_body {
	ROUTE_BODY_NONE,  /* a body is refused (400) */
	ROUTE_BODY_JSON,  /* a JSON object of at most the route's cap */
	ROUTE_BODY_BLOCK, /* block bytes, streamed to api_upload_data() */
	ROUTE_BODY_RAW,	  /* bytes of at most the route's cap (req->raw) */
};

struct route {
	const char *method;
	const char *pattern; /* '{ns}' and '{block}' stand for a segment */
	api_handler handler;
	api_handler resume; /* long polls: answers after the wake-up */
	enum route_body body;
	size_t cap;  /* JSON: the body's cap, 0 for CFS_MAX_JSON_BODY; RAW:
		      * the body's cap */
	bool public; /* no token needed */
};

/* The table's size is at most this (metrics keep a row per route). */
#define ROUTES_MAX 32

/* The routes in table order: route_nth(route_index(r)) == r. */
size_t route_count(void);
const struct route *route_nth(size_t i);
size_t route_index(const struct route *route);

/*
 * The route for method and path, with its segments parsed into req.  NULL
 * with *err set: NOT_FOUND for a path nothing serves, METHOD for a path
 * served under other methods (*allow lists them, as for an Allow header).
 */
const struct route *route_match(const char *method, const char *path,
				struct api_req *req, char *allow,
				size_t allow_len, struct cfs_error *err);

#endif
