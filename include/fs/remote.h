/*
 * The client side of cloudfs-protocol(7) over libcurl.
 *
 * A struct remote holds what every request to one server needs (the base
 * URL, the token, TLS and timeout settings); a struct remote_conn is one
 * thread's keep-alive connection to it.  Parallel block downloads are
 * driven by fs/fetch.c on a libcurl multi handle, with easy handles that
 * remote_block_easy() prepares.
 *
 * Errors: an HTTP error answer becomes its protocol code and message; a
 * connection that fails, stalls for timeout_s, or answers something that
 * is not the protocol becomes CFS_ERR_UNREACHABLE.  Messages name the
 * request ("GET /meta/namespaces: ...").
 */
#ifndef FS_REMOTE_H
#define FS_REMOTE_H

#include <curl/curl.h>
#include <jansson.h>
#include <stdbool.h>

#include "cloudfs/block.h"
#include "cloudfs/error.h"

struct remote {
	char url[512];	    /* the base URL, without a trailing '/' */
	char auth[128];	    /* "Authorization: Bearer TOKEN" */
	char ca_file[512];  /* absolute; "" for the system's CAs */
	unsigned timeout_s; /* to connect, and the longest stall */
};

/* Checks and copies the settings (ca_file, if not NULL, must be readable;
 * it is kept by its absolute path); curl_global_init() must have run. */
enum cfs_err remote_init(struct remote *r, const char *url, const char *token,
			 const char *ca_file, unsigned timeout_s,
			 struct cfs_error *err);

struct remote_conn;

struct remote_conn *remote_conn_new(const struct remote *r);
void remote_conn_free(struct remote_conn *c);

/* Makes a call running on c look at its stop flag now (any thread). */
void remote_conn_wake(struct remote_conn *c);

/*
 * Sends METHOD path with an optional JSON body and returns the answer's
 * JSON object in *out (the caller's).  With max_s 0 the request gives up
 * once the transfer stalls for timeout_s; otherwise it may stay silent
 * (a long poll) and gives up after max_s seconds in all.  Either way it
 * stops when *stop is true and remote_conn_wake() is called, or within a
 * second of *stop turning true (stop may be NULL).
 */
enum cfs_err remote_call(struct remote_conn *c, const char *method,
			 const char *path, json_t *body, unsigned max_s,
			 const bool *stop, json_t **out, struct cfs_error *err);

/*
 * Whether c's last call failed because the server's certificate did not
 * verify.  Its error is CFS_ERR_UNREACHABLE, which the threads retry; a
 * mount that starts refuses it instead of starting offline.
 */
bool remote_conn_untrusted(const struct remote_conn *c);

/*
 * A new easy handle that GETs block id into write(data, 1, n, arg) and
 * gives up when the transfer stalls for timeout_s; headers must outlive it
 * (remote_block_headers()).  NULL when out of memory.
 */
CURL *remote_block_easy(const struct remote *r, const struct cfs_block_id *id,
			struct curl_slist *headers, curl_write_callback write,
			void *arg);
/* One call on a connection of its own (for the control socket's
 * commands): the answer, or NULL with err set.  Consumes body. */
json_t *remote_ask(const struct remote *r, const char *method, const char *path,
		   json_t *body, struct cfs_error *err);

struct curl_slist *remote_block_headers(const struct remote *r);

/* Applies what every request to r shares to an easy handle: TLS, the
 * connect and stall timeouts, a large receive buffer. */
void remote_setup(const struct remote *r, CURL *curl);

/* The error of an HTTP answer that is not 200: its protocol code and
 * message when the body is the protocol's error object. */
enum cfs_err remote_http_error(const char *what, long status, const char *body,
			       size_t len, struct cfs_error *err);

#endif
