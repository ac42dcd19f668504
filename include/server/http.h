/*
 * cloudfsd's HTTP layer over libmicrohttpd: a listening socket, a pool of
 * threads, and for each request the route, the token check, the body
 * (capped), the handler, the JSON error body and one access-log line
 * (method, path, status, bytes, milliseconds, user).
 */
#ifndef SERVER_HTTP_H
#define SERVER_HTTP_H

#include "cloudfs/error.h"
#include "server/api.h"
#include "server/http_guard.h"
#include "server/tls.h"

struct http_server;

/* Whether this libmicrohttpd can serve TLS (it is built with GnuTLS). */
bool http_tls_supported(void);

/*
 * Listens on where ("HOST:PORT"; "[V6]:PORT"; port 0 picks a free one)
 * and serves with threads threads, within lim: HTTPS with tls (which
 * must outlive the server; http_tls_supported() must be true), or plain
 * HTTP when tls is NULL, with a warning in the log unless where is a
 * loopback address.  *bound receives the address actually bound, as
 * "http://HOST:PORT" or "https://HOST:PORT".
 */
enum cfs_err http_start(const char *where, unsigned threads,
			const struct http_limits *lim,
			const struct tls_pair *tls, const struct api_ctx *ctx,
			struct http_server **out, char *bound, size_t bound_len,
			struct cfs_error *err);

/* Closes the listen socket and every connection and frees the server;
 * long polls must have been woken first (longpoll_shutdown). */
void http_stop(struct http_server *s);

/* The value of query argument key of the request, or NULL. */
const char *http_query(struct api_req *req, const char *key);

#endif
