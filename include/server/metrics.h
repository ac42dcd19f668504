/*
 * What cloudfsd has done since it started, for GET /metrics (Prometheus
 * text format 0.0.4, documented in cloudfsd(8)).
 *
 * The counters are process-wide relaxed atomics: the request path adds to
 * them without a lock, and a scrape reads each one on its own, so a scrape
 * may see one request's effects half counted; every counter only grows
 * (the gauges excepted), which is all Prometheus needs.
 *
 * Nothing here names a user, a namespace or a path: the only labels are
 * route patterns from the route table and HTTP statuses.
 */
#ifndef SERVER_METRICS_H
#define SERVER_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "cloudfs/error.h"
#include "server/routes.h"

enum metrics_store_op {
	METRICS_STORE_WRITE, /* a block's bytes made durable */
	METRICS_STORE_OPEN,  /* a block opened for sending */
	METRICS_STORE_OPS,
};

/* An answered request; route is NULL for a path no route serves. */
void metrics_request(const struct route *route, unsigned status);
/* A commit answered, of which n operations were committed (the others
 * need blocks, conflict or failed). */
void metrics_commit(size_t committed);
/* A transaction that held several commits (group commit), durable. */
void metrics_commit_group(size_t commits);
/* A block stored by an upload, of size bytes. */
void metrics_block_uploaded(uint64_t size);
/* A long poll parked (+1) or answered (-1). */
void metrics_longpoll_held(int delta);
/* A connection opened (+1) or closed (-1). */
void metrics_connection(int delta);
/* A block store operation that began at start (CLOCK_MONOTONIC). */
void metrics_store_time(enum metrics_store_op op, const struct timespec *start);

/* The exposition text, malloc'ed and NUL-terminated, in *text. */
enum cfs_err metrics_render(char **text, struct cfs_error *err);

#endif
