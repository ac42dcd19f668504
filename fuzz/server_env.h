/*
 * A server for the harnesses of the endpoints (fuzz_route, fuzz_api): the
 * real SQLite metadata store and block store in a scratch directory, a
 * long-poll registry, and two users with a small tree and a shared
 * folder, as cloudfsd serve would have them.
 *
 * The handlers reach the store through a checking proxy: each call asserts
 * what server/meta.h says its caller has already checked (paths valid,
 * block lists matching sizes, limits kept, ...) before the real store
 * runs it, and some of what the store promises back.  A handler that lets
 * unchecked input through is a crash, not a quiet bad row.
 */
#ifndef FUZZ_SERVER_ENV_H
#define FUZZ_SERVER_ENV_H

#include "server/api.h"

struct server_env {
	struct api_ctx ctx;	/* ctx.meta is the checking proxy */
	struct meta_user user;	/* "fuzz": owns root_ns and shared_ns */
	struct meta_user other; /* "other": a member of shared_ns */
	int64_t shared_ns;
	int64_t other_ns; /* other's root: fuzz may not read it */
};

/* The environment, made on the first call; made anew (an empty store
 * with the same users and tree) every `every` calls, so that the store
 * stays small and fast. */
struct server_env *server_env_get(unsigned every);

/* The query arguments http_query() answers for the next handler call:
 * "k=v&k2=v2" (%XX decoded, as the HTTP layer does); NULL for none. */
void server_env_set_query(struct api_req *req, const char *query);

/* Checks what the HTTP layer would answer: an error carries a protocol
 * code, an HTTP status of 400 or above and a message; a success a JSON
 * object that can be written out. */
void server_env_check_answer(enum cfs_err rc, const struct cfs_error *err,
			     const struct api_resp *resp);

/* Releases what a handler left in req and resp (as http.c does). */
void server_env_release(struct api_req *req, struct api_resp *resp);

#endif
