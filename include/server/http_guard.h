/*
 * What keeps one client from taking cloudfsd from the others: deadlines
 * on the connections, budgets for request bodies, a cap on the long polls
 * each user keeps waiting.  The HTTP layer (server/http.c) reports each
 * connection's phase here; a thread of this module cuts the connections
 * past their deadlines.
 *
 * A connection is in one phase at a time:
 *
 *	IDLE    waiting for a request's headers (just accepted, or between
 *	        two requests on a kept-alive connection)
 *	BODY    headers read, the body arriving
 *	BUSY    the request is being answered (handler, response)
 *	PARKED  a long poll waits, its connection suspended
 *
 * IDLE ends within header_timeout_s, or within 1 s while three quarters
 * of max_connections are taken: a client doing real work sends its
 * headers in milliseconds, so the connections trickling bytes are the ones
 * cut to make room (slowloris).  BODY ends within body_timeout_s plus one
 * second per 64 KiB expected.  A PARKED connection whose client hung up is
 * cut and handed to gone(), which wakes the long poll so that the
 * connection ends and frees its slot (a resumed connection whose socket
 * still works but whose client is gone would hang).  A cut is
 * a shutdown(2) of the socket: libmicrohttpd then sees the connection end
 * and closes it as it would any other.
 *
 * Locks: the guard's lock is taken after none of ours; gone() is called
 * under it and may take the long-poll registry's lock, never the guard's.
 */
#ifndef SERVER_HTTP_GUARD_H
#define SERVER_HTTP_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "cloudfs/error.h"

struct http_limits {
	unsigned max_connections;  /* in all */
	unsigned max_per_address;  /* from one client address */
	unsigned header_timeout_s; /* IDLE, unless under pressure */
	unsigned body_timeout_s;   /* BODY, plus 1 s per 64 KiB */
	uint64_t body_budget;	   /* bytes of bodies being received, in all */
	uint64_t user_body_budget; /* ... by one user */
	unsigned user_longpolls;   /* long polls waiting, per user */
};

#define HTTP_LIMITS_DEFAULT                                               \
	{                                                                 \
		.max_connections = 1000, .max_per_address = 128,          \
		.header_timeout_s = 30, .body_timeout_s = 10,             \
		.body_budget = 256u << 20, .user_body_budget = 64u << 20, \
		.user_longpolls = 64,                                     \
	}

struct http_guard;
struct http_guard_conn;

/* Starts the guard and its thread; NULL when out of memory or threads. */
struct http_guard *http_guard_new(const struct http_limits *lim,
				  void (*gone)(void *arg));

/* Stops the thread and frees the guard; every connection must be closed. */
void http_guard_free(struct http_guard *g);

/* A connection was accepted on socket fd; NULL when out of memory (the
 * connection then goes unguarded, as it went before). */
struct http_guard_conn *http_guard_open(struct http_guard *g, int fd);

/* The connection is closed; c is freed.  NULL is ignored. */
void http_guard_close(struct http_guard *g, struct http_guard_conn *c);

/* A request's headers are in; body bytes are expected (0: none). */
void http_guard_request(struct http_guard *g, struct http_guard_conn *c,
			uint64_t body);

/* The body is in, or the parked request woke: the request is BUSY. */
void http_guard_busy(struct http_guard *g, struct http_guard_conn *c);

/* The request parked; gone(arg) is called if its client hangs up. */
void http_guard_parked(struct http_guard *g, struct http_guard_conn *c,
		       void *arg);

/* The request was answered: the connection waits for the next one. */
void http_guard_idle(struct http_guard *g, struct http_guard_conn *c);

/*
 * Reserves bytes of body for user (a user id): UNAVAILABLE with *err set
 * when the user's or the server's budget has no room; give them back with
 * http_guard_unreserve().
 */
enum cfs_err http_guard_reserve(struct http_guard *g, int64_t user,
				uint64_t bytes, struct cfs_error *err);
void http_guard_unreserve(struct http_guard *g, int64_t user, uint64_t bytes);

/* Counts a long poll of user about to park: UNAVAILABLE when the user
 * has user_longpolls waiting; undo with http_guard_unpark(). */
enum cfs_err http_guard_park(struct http_guard *g, int64_t user,
			     struct cfs_error *err);
void http_guard_unpark(struct http_guard *g, int64_t user);

/*
 * Bounds the JSON parses of large bodies running at once (each may take
 * many times its body in memory): a few in all, one per user.  A parse
 * never waits for a turn, which would hold one of the few threads that
 * serve everyone: UNAVAILABLE when there is none (the client retries).
 */
enum cfs_err http_guard_parse_begin(struct http_guard *g, int64_t user,
				    struct cfs_error *err);
void http_guard_parse_end(struct http_guard *g, int64_t user);

#endif
