/*
 * The protocol's endpoints as the HTTP layer calls them.  A handler reads
 * an api_req, fills an api_resp, and returns CFS_OK or an error code with
 * *err set; only the HTTP layer (server/http.c) turns that into a status
 * and a JSON body.  The endpoints are documented in cloudfs-protocol(7).
 */
#ifndef SERVER_API_H
#define SERVER_API_H

#include <pthread.h>

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "cloudfs/block.h"
#include "cloudfs/error.h"
#include "server/blockstore.h"
#include "server/longpoll.h"
#include "server/meta.h"

/* What every handler may use; shared by all requests. */
struct api_ctx {
	struct meta *meta;
	struct blockstore *blocks;
	struct longpoll *longpoll;
	/* Held (read) by an upload from storing a block's bytes to recording
	 * them; garbage collection holds it (write) while it removes bytes
	 * (server/gc.h). */
	pthread_rwlock_t *uploads;
};

/* A block upload as it streams in (PUT /block/ID). */
struct api_upload {
	struct blockstore_writer *writer; /* NULL once finished or dropped */
	struct cfs_sha256 *hash;
	uint64_t size;
	enum cfs_err failed; /* set once; later bytes are only drained */
	struct cfs_error err;
};

struct api_req {
	const struct api_ctx *ctx;
	const struct meta_user *user; /* NULL only for the health check */
	int64_t ns;		      /* from the route's namespace segment */
	struct cfs_block_id block;    /* from the route's block segment */
	json_t *body;		  /* POST: the parsed object ({} if empty) */
	struct api_upload upload; /* PUT /block/ID */
	void *http;		  /* the HTTP layer's, for http_query() */
	void *state;		  /* a long poll's, between its phases */
	void (*state_free)(void *state);
	/* A RAW route's body: raw_len bytes, the HTTP layer's. */
	const char *raw;
	size_t raw_len;
};

struct api_resp {
	json_t *json; /* the body, or NULL with reader or text set */
	char *text;   /* a malloc'ed text/plain body (GET /metrics) */
	/* NULL, or a block to send (size bytes); the HTTP layer closes it */
	struct blockstore_reader *reader;
	uint64_t size;
	/* Long poll: park waiter (suspend the connection); the route's
	 * resume handler answers once the registry wakes it. */
	struct longpoll_waiter *park;
};

typedef enum cfs_err (*api_handler)(struct api_req *req, struct api_resp *resp,
				    struct cfs_error *err);

/* server/api_meta.c */
enum cfs_err api_health(struct api_req *, struct api_resp *,
			struct cfs_error *);
enum cfs_err api_namespaces(struct api_req *, struct api_resp *,
			    struct cfs_error *);
enum cfs_err api_list(struct api_req *, struct api_resp *, struct cfs_error *);
enum cfs_err api_history(struct api_req *, struct api_resp *,
			 struct cfs_error *);
enum cfs_err api_commit(struct api_req *, struct api_resp *,
			struct cfs_error *);
enum cfs_err api_announce(struct api_req *, struct api_resp *,
			  struct cfs_error *);

/* server/metrics.c */
enum cfs_err api_metrics(struct api_req *, struct api_resp *,
			 struct cfs_error *);

/* server/api_longpoll.c */
enum cfs_err api_longpoll(struct api_req *, struct api_resp *,
			  struct cfs_error *);
enum cfs_err api_longpoll_resume(struct api_req *, struct api_resp *,
				 struct cfs_error *);

/* server/api_share.c */
enum cfs_err api_share(struct api_req *, struct api_resp *, struct cfs_error *);
enum cfs_err api_invite(struct api_req *, struct api_resp *,
			struct cfs_error *);
enum cfs_err api_remove(struct api_req *, struct api_resp *,
			struct cfs_error *);
enum cfs_err api_leave(struct api_req *, struct api_resp *, struct cfs_error *);
enum cfs_err api_members(struct api_req *, struct api_resp *,
			 struct cfs_error *);

/* server/api_block.c */
enum cfs_err api_blocks_need(struct api_req *, struct api_resp *,
			     struct cfs_error *);
enum cfs_err api_block_get(struct api_req *, struct api_resp *,
			   struct cfs_error *);
enum cfs_err api_block_put(struct api_req *, struct api_resp *,
			   struct cfs_error *);
enum cfs_err api_blocks_put(struct api_req *, struct api_resp *,
			    struct cfs_error *);
/* Called by the HTTP layer as the body of PUT /block/ID streams in;
 * api_block_put then finishes the upload, api_upload_release drops what
 * is left of it (any number of times). */
void api_upload_begin(struct api_req *req);
void api_upload_data(struct api_req *req, const char *data, size_t len);
void api_upload_release(struct api_req *req);

/* Answers with json, the result of a builder that may fail (jansson's
 * json_pack): NULL is reported as out of memory. */
enum cfs_err api_reply(struct api_resp *resp, json_t *json,
		       struct cfs_error *err);

/* Appends o (may be NULL, as above) to the array arr, taking o over. */
enum cfs_err api_append(json_t *arr, json_t *o, struct cfs_error *err);

#endif
