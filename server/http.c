/*
 * cloudfsd's HTTP layer (server/http.h) over libmicrohttpd.
 *
 * A request goes through these states, driven by MHD's calls to
 * on_request() and on_completed():
 *
 *	NEW     first call: route, token and Content-Length are checked,
 *	        and the body's bytes reserved from the user's budget; a
 *	        failure is answered at once, before any body is read
 *	BODY    body bytes arrive: JSON is buffered up to its cap, a block
 *	        streams to the upload; a body over its cap is drained and
 *	        answered 413 (or the connection dropped if it goes on)
 *	PARKED  a long poll waits, its connection suspended; the registry's
 *	        wake-up resumes it and the route's resume handler answers
 *	DONE    a response is queued; on_completed() logs and frees
 *
 * Each step is reported to the guard (server/http_guard.h), which holds
 * the deadlines and budgets that keep one client from starving the rest.
 * Only this file turns error codes into statuses and JSON error bodies.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cloudfs/buf.h"
#include "cloudfs/json.h"
#include "cloudfs/log.h"
#include "cloudfs/num.h"
#include "cloudfs/platform.h"
#include "cloudfs/proto.h"
#include "server/http.h"
#include "server/http_guard.h"
#include "server/metrics.h"
#include "server/routes.h"
#include "server/tls.h"
#include "server/token.h"

/* A body this far over its cap is not drained: the connection is cut. */
#define DRAIN_MAX	 (8u * 1024 * 1024)
/* JSON bodies from this size on take turns to be parsed (and the memory
 * their parse took is handed back to the system once they are freed). */
#define LARGE_JSON	 (64u * 1024)
/* What one JSON parse may allocate: the largest honest body (a commit of
 * block ids) takes about twice its size; nested empty arrays, 35 times. */
#define PARSE_MEMORY_MAX (4u * CFS_MAX_COMMIT_BODY)
/* The most a streamed block's read is asked for at once. */
#define BLOCK_PULL_CHUNK (64u * 1024)

struct http_server {
	struct MHD_Daemon *daemon;
	const struct api_ctx *ctx;
	struct http_guard *guard;
};

struct request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	const struct route *route;
	enum { RQ_NEW, RQ_BODY, RQ_PARKED, RQ_DONE } state;
	char method[16];
	char *path;
	struct timespec start;
	struct meta_user user;
	struct api_req req;
	struct api_resp resp;
	struct http_guard_conn *guarded; /* the connection's, or NULL */
	struct cfs_buf body;		 /* JSON bodies */
	uint64_t received;		 /* body bytes, however consumed */
	size_t cap;			 /* the route's body cap */
	uint64_t reserved;		 /* of the user's body budget */
	struct longpoll_waiter *parked;	 /* while a long poll is counted */
	enum cfs_err failed;		 /* answered once the body is drained */
	struct cfs_error err;
	unsigned status; /* for the access log */
	uint64_t sent;
	bool parsed_large; /* its memory goes back to the system when freed */
};

const char *http_query(struct api_req *req, const char *key)
{
	struct request *rq = req->http;

	return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND,
					   key);
}

static enum MHD_Result queue(struct request *rq, unsigned status,
			     struct MHD_Response *r, uint64_t len)
{
	enum MHD_Result ok;

	if (!r)
		return MHD_NO;
	rq->status = status;
	rq->sent = len;
	rq->state = RQ_DONE;
	ok = MHD_queue_response(rq->conn, status, r);
	MHD_destroy_response(r);
	return ok;
}

static struct MHD_Response *json_response(json_t *json, size_t *len)
{
	char *text = json_dumps(json, JSON_COMPACT);
	struct MHD_Response *r;

	if (!text)
		return NULL;
	*len = strlen(text);
	r = MHD_create_response_from_buffer(*len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return NULL;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"application/json");
	return r;
}

static enum MHD_Result respond_error(struct request *rq,
				     const struct cfs_error *failed,
				     const char *allow)
{
	unsigned status = cfs_err_http_status(failed->code);
	struct cfs_error e = *failed, *err = &e;
	json_t *body;
	struct MHD_Response *r;
	size_t len = 0;

	/* The server's own failures name the request they failed, for the
	 * client that reports them and for the operator who reads the log
	 * (a 503 is a limit or a stop, not a failure). */
	if (status >= 500) {
		cfs_error_prefix(err, "%s %s", rq->method, rq->path);
		if (status != MHD_HTTP_SERVICE_UNAVAILABLE)
			cfs_log_error("%s", err->msg);
	}
	body = json_pack("{s:{s:s, s:s}}", "error", "code",
			 cfs_err_name(err->code), "message", err->msg);
	r = body ? json_response(body, &len) : NULL;
	json_decref(body);
	if (r && err->code == CFS_ERR_UNAUTHORIZED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"cloudfs\"");
	if (r && allow && allow[0])
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
	return queue(rq, status, r, len);
}

/* The Prometheus exposition format names its version in the type. */
static enum MHD_Result text_response(struct request *rq)
{
	size_t len = strlen(rq->resp.text);
	struct MHD_Response *r = MHD_create_response_from_buffer(
		len, rq->resp.text, MHD_RESPMEM_MUST_FREE);

	if (!r)
		return MHD_NO;
	rq->resp.text = NULL; /* the response frees it */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain; version=0.0.4; charset=utf-8");
	return queue(rq, MHD_HTTP_OK, r, len);
}

/* MHD pulls a streamed block's bytes (a backend without descriptors). */
static ssize_t block_pull(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct blockstore_reader *r = cls;
	struct cfs_error err;
	size_t got;

	(void)pos; /* MHD reads in order */
	if (r->bs->ops->read(r, buf, max, &got, &err)) {
		/* The status went out already: cutting the connection is
		 * how the client learns, and it never gets a whole block. */
		cfs_log_error("%s", err.msg);
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return got ? (ssize_t)got : MHD_CONTENT_READER_END_OF_STREAM;
}

static void block_pull_done(void *cls)
{
	struct blockstore_reader *r = cls;

	r->bs->ops->read_close(r);
}

/* A block's bytes: sendfile(2) from the backend's descriptor where it
 * has one, else pulled through the interface. */
static struct MHD_Response *block_response(struct api_resp *resp)
{
	struct blockstore_reader *r = resp->reader;
	struct MHD_Response *mr;
	int fd;

	resp->reader = NULL; /* closed here or by the response */
	if (!r->bs->ops->read_take_fd) {
		mr = MHD_create_response_from_callback(
			resp->size, BLOCK_PULL_CHUNK, block_pull, r,
			block_pull_done);
		if (!mr)
			r->bs->ops->read_close(r);
		return mr;
	}
	fd = r->bs->ops->read_take_fd(r);
	r->bs->ops->read_close(r);
	mr = MHD_create_response_from_fd64(resp->size, fd);
	if (!mr)
		close(fd); /* else the response closes it */
	return mr;
}

static enum MHD_Result respond(struct request *rq, enum cfs_err rc)
{
	struct api_resp *resp = &rq->resp;
	struct MHD_Response *r;
	size_t len = 0;

	if (rc)
		return respond_error(rq, &rq->err, NULL);
	if (resp->reader) {
		r = block_response(resp);
		if (!r)
			return MHD_NO;
		MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
					"application/octet-stream");
		return queue(rq, MHD_HTTP_OK, r, resp->size);
	}
	if (resp->text)
		return text_response(rq);
	r = json_response(resp->json, &len);
	if (!r) {
		cfs_fail(&rq->err, CFS_ERR_INTERNAL,
			 "out of memory writing the response");
		return respond_error(rq, &rq->err, NULL);
	}
	return queue(rq, MHD_HTTP_OK, r, len);
}

static enum cfs_err authenticate(struct request *rq)
{
	struct meta *m = rq->srv->ctx->meta;
	const char *h = MHD_lookup_connection_value(
		rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
	uint8_t hash[META_TOKEN_HASH_LEN];
	enum cfs_err rc;

	if (!h || strncasecmp(h, "Bearer ", 7) != 0)
		return cfs_fail(&rq->err, CFS_ERR_UNAUTHORIZED,
				"missing 'Authorization: Bearer TOKEN' header");
	h += 7;
	token_hash(h, strlen(h), hash);
	rc = m->ops->auth(m, hash, &rq->user, &rq->err);
	if (rc == CFS_OK)
		rq->req.user = &rq->user;
	return rc;
}

static size_t body_cap(const struct route *route)
{
	switch (route->body) {
	case ROUTE_BODY_JSON:
		return route->cap ? route->cap : CFS_MAX_JSON_BODY;
	case ROUTE_BODY_BLOCK:
		return CFS_BLOCK_SIZE;
	case ROUTE_BODY_RAW:
		return route->cap;
	case ROUTE_BODY_NONE:
		break;
	}
	return 0;
}

/*
 * The body's bytes are reserved before any arrives, so that bodies in
 * flight never hold more memory or disk than the budgets allow: the
 * Content-Length, or the cap for a chunked body.
 */
static enum cfs_err reserve_body(struct request *rq)
{
	const char *cl = MHD_lookup_connection_value(
		rq->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	int64_t len = (int64_t)rq->cap;
	int e = cl ? cfs_num_parse_i64(cl, 0, len, &len) : 0;

	if (e == -EINVAL)
		return cfs_fail(&rq->err, CFS_ERR_BAD_FIELD,
				"header Content-Length '%.40s' of %s %s is not "
				"a number",
				cl, rq->method, rq->path);
	if (e == -ERANGE)
		return cfs_fail(&rq->err, CFS_ERR_TOO_LARGE,
				"body of %.40s bytes is over the limit of %zu "
				"for %s %s",
				cl, rq->cap, rq->method, rq->path);
	if (len == 0 || !rq->req.user)
		return CFS_OK;
	if (http_guard_reserve(rq->srv->guard, rq->user.id, (uint64_t)len,
			       &rq->err))
		return rq->err.code; /* named by respond_error() */
	rq->reserved = (uint64_t)len;
	return CFS_OK;
}

/* The first call: everything that can be refused before the body. */
static enum MHD_Result start(struct request *rq)
{
	char allow[64];
	enum cfs_err rc;

	rq->route = route_match(rq->method, rq->path, &rq->req, allow,
				sizeof(allow), &rq->err);
	if (!rq->route)
		return respond_error(rq, &rq->err, allow);
	if (!rq->route->public) {
		rc = authenticate(rq);
		if (rc)
			return respond_error(rq, &rq->err, NULL);
	}
	rq->cap = body_cap(rq->route);
	if (reserve_body(rq))
		return respond_error(rq, &rq->err, NULL);
	http_guard_request(rq->srv->guard, rq->guarded, rq->reserved);
	cfs_buf_init(&rq->body, rq->cap);
	if (rq->route->body == ROUTE_BODY_BLOCK)
		api_upload_begin(&rq->req);
	rq->state = RQ_BODY;
	return MHD_YES;
}

static enum MHD_Result take_body(struct request *rq, const char *data,
				 size_t *size)
{
	size_t len = *size;

	*size = 0; /* all of it is consumed, one way or another */
	rq->received += len;
	if (rq->failed)
		return rq->received > rq->cap + DRAIN_MAX ? MHD_NO : MHD_YES;
	if (rq->route->body == ROUTE_BODY_BLOCK) {
		api_upload_data(&rq->req, data, len);
		if (rq->req.upload.failed == CFS_ERR_TOO_LARGE) {
			rq->failed = CFS_ERR_TOO_LARGE;
			rq->err = rq->req.upload.err;
		}
	} else if (cfs_buf_append(&rq->body, data, len)) {
		rq->failed = cfs_fail(
			&rq->err, CFS_ERR_TOO_LARGE,
			"body is over the limit of %zu bytes for %s %s",
			rq->cap, rq->method, rq->path);
	}
	return MHD_YES;
}

static void suspend_cb(void *arg)
{
	struct request *rq = arg;

	MHD_suspend_connection(rq->conn);
}

static void resume_cb(void *arg)
{
	struct request *rq = arg;

	MHD_resume_connection(rq->conn);
}

/* The guard saw the client of a parked long poll hang up: answering it
 * now ends the connection and frees its slot. */
static void gone_cb(void *arg)
{
	struct request *rq = arg;

	longpoll_expire(rq->srv->ctx->longpoll, rq->parked);
}

/* Counts the long poll of the request's user as waiting (or not). */
static enum cfs_err count_parked(struct request *rq, struct longpoll_waiter *w)
{
	struct http_guard *g = rq->srv->guard;

	if (rq->parked) {
		http_guard_unpark(g, rq->user.id);
		metrics_longpoll_held(-1);
	}
	rq->parked = NULL;
	if (w && http_guard_park(g, rq->user.id, &rq->err))
		return rq->err.code;
	rq->parked = w;
	if (w)
		metrics_longpoll_held(1);
	return CFS_OK;
}

/*
 * Runs handler and answers, unless the handler parks the request (a long
 * poll); a wake-up that comes before the connection is suspended runs the
 * route's resume handler at once.
 */
static enum MHD_Result run(struct request *rq, api_handler handler)
{
	enum cfs_err rc;

	for (;;) {
		rq->resp.park = NULL;
		rc = handler(&rq->req, &rq->resp, &rq->err);
		if (!rc && rq->resp.park)
			rc = count_parked(rq, rq->resp.park);
		if (rc || !rq->resp.park)
			return respond(rq, rc);
		if (longpoll_park(rq->srv->ctx->longpoll, rq->resp.park,
				  suspend_cb, resume_cb, rq)) {
			rq->state = RQ_PARKED;
			http_guard_parked(rq->srv->guard, rq->guarded, rq);
			return MHD_YES;
		}
		count_parked(rq, NULL);
		handler = rq->route->resume;
	}
}

/* A JSON body; an empty one is an empty object. */
static enum cfs_err parse_body(struct request *rq)
{
	struct http_guard *g = rq->srv->guard;
	enum cfs_err rc;

	if (rq->body.len >= LARGE_JSON) {
		rc = http_guard_parse_begin(g, rq->user.id, &rq->err);
		if (rc)
			return rc;
		rq->parsed_large = true;
		rc = cfs_json_parse_object_within(rq->body.data, rq->body.len,
						  PARSE_MEMORY_MAX,
						  &rq->req.body, &rq->err);
		http_guard_parse_end(g, rq->user.id);
		return rc;
	}
	if (rq->body.len)
		return cfs_json_parse_object(rq->body.data, rq->body.len,
					     &rq->req.body, &rq->err);
	rq->req.body = json_object();
	return rq->req.body
		       ? CFS_OK
		       : cfs_fail(&rq->err, CFS_ERR_INTERNAL, "out of memory");
}

/* The last call: the body is complete; run the handler. */
static enum MHD_Result finish(struct request *rq)
{
	const struct route *route = rq->route;
	enum cfs_err rc;

	http_guard_busy(rq->srv->guard, rq->guarded);
	if (rq->failed)
		return respond_error(rq, &rq->err, NULL);
	if (route->body == ROUTE_BODY_JSON) {
		rc = parse_body(rq);
		if (rc)
			return respond_error(rq, &rq->err, NULL);
	} else if (route->body == ROUTE_BODY_RAW) {
		rq->req.raw = rq->body.data;
		rq->req.raw_len = rq->body.len;
	}
	return run(rq, route->handler);
}

static void request_free(struct request *rq)
{
	bool trim = rq->parsed_large;

	count_parked(rq, NULL);
	if (rq->reserved)
		http_guard_unreserve(rq->srv->guard, rq->user.id, rq->reserved);
	if (rq->req.state_free)
		rq->req.state_free(rq->req.state);
	if (rq->route && rq->route->body == ROUTE_BODY_BLOCK)
		api_upload_release(&rq->req);
	if (rq->resp.reader)
		rq->resp.reader->bs->ops->read_close(rq->resp.reader);
	json_decref(rq->resp.json);
	free(rq->resp.text);
	json_decref(rq->req.body);
	cfs_buf_release(&rq->body);
	free(rq->path);
	free(rq);
	/* A large parse leaves its memory in the allocator's free lists,
	 * where an attack's would stay for good. Only a parse: trimming walks
	 * every arena and flushes every CPU's TLB, a sixth of the server's CPU
	 * when it ran after each batch of small blocks. */
	if (trim)
		platform_trim_heap();
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_data_size, void **con_cls)
{
	struct request *rq = *con_cls;

	(void)version;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		rq->srv = cls;
		rq->conn = conn;
		rq->req.ctx = rq->srv->ctx;
		rq->req.http = rq;
		snprintf(rq->method, sizeof(rq->method), "%s", method);
		rq->path = strdup(url);
		rq->guarded = MHD_get_connection_info(
				      conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT)
				      ->socket_context;
		clock_gettime(CLOCK_MONOTONIC, &rq->start);
		*con_cls = rq;
		if (!rq->path)
			return MHD_NO;
		return start(rq);
	}
	switch (rq->state) {
	case RQ_PARKED:
		http_guard_busy(rq->srv->guard, rq->guarded);
		count_parked(rq, NULL);
		return run(rq, rq->route->resume);
	case RQ_BODY:
		if (*upload_data_size == 0)
			return finish(rq);
		return take_body(rq, upload_data, upload_data_size);
	case RQ_NEW:
	case RQ_DONE:
		break;
	}
	*upload_data_size = 0; /* answered already: drop what still comes */
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct request *rq = *con_cls;
	struct timespec end;
	double ms;

	(void)conn;
	if (!rq)
		return;
	http_guard_idle(((struct http_server *)cls)->guard, rq->guarded);
	clock_gettime(CLOCK_MONOTONIC, &end);
	ms = (double)(end.tv_sec - rq->start.tv_sec) * 1e3 +
	     (double)(end.tv_nsec - rq->start.tv_nsec) / 1e6;
	metrics_request(rq->route, rq->status);
	cfs_log_info("%s %s %u %lluB %.1fms %s%s", rq->method,
		     rq->path ? rq->path : "?", rq->status,
		     (unsigned long long)rq->sent, ms,
		     rq->req.user ? rq->user.name : "-",
		     toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? ""
								: " (aborted)");
	request_free(rq);
	*con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn,
			  void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct http_server *s = cls;
	const union MHD_ConnectionInfo *ci;

	if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		metrics_connection(-1);
		http_guard_close(s->guard, *socket_context);
		*socket_context = NULL;
		return;
	}
	metrics_connection(1);
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	*socket_context = ci ? http_guard_open(s->guard, ci->connect_fd) : NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t len;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	while (len && msg[len - 1] == '\n')
		msg[--len] = '\0';
	cfs_log_warn("http: %s", msg);
}

/* Splits "HOST:PORT" or "[V6]:PORT". */
static enum cfs_err split_listen(const char *where, char *host, size_t host_len,
				 const char **port, struct cfs_error *err)
{
	const char *colon = strrchr(where, ':');
	const char *h = where;
	size_t len;

	if (!colon || !colon[1])
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"listen address '%s' is not HOST:PORT", where);
	len = (size_t)(colon - where);
	if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
		h++;
		len -= 2;
	}
	if (len == 0 || len >= host_len)
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"listen address '%s' has no usable host",
				where);
	memcpy(host, h, len);
	host[len] = '\0';
	*port = colon + 1;
	return CFS_OK;
}

/* Whether only this machine can reach an address. */
static bool is_loopback(const struct sockaddr_storage *ss)
{
	const struct in6_addr *a6 =
		&((const struct sockaddr_in6 *)ss)->sin6_addr;
	const struct in_addr *a4 = &((const struct sockaddr_in *)ss)->sin_addr;

	if (ss->ss_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(a6) ||
		       (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
	return (ntohl(a4->s_addr) >> 24) == 127;
}

/* Binds where; *bound is the URL it serves at, with scheme. */
static enum cfs_err open_listener(const char *where, const char *scheme,
				  int *fd, char *bound, size_t bound_len,
				  bool *loopback, struct cfs_error *err)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[256], addr[INET6_ADDRSTRLEN];
	const char *port = NULL;
	enum cfs_err rc;
	int one = 1, e;

	rc = split_listen(where, host, sizeof(host), &port, err);
	if (rc)
		return rc;
	e = getaddrinfo(host, port, &hints, &ai);
	if (e)
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"cannot resolve listen address '%s': %s", where,
				gai_strerror(e));
	*fd = platform_socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
	if (*fd < 0 ||
	    setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(*fd, ai->ai_addr, ai->ai_addrlen) || listen(*fd, 128) ||
	    getsockname(*fd, (struct sockaddr *)&ss, &sl)) {
		rc = cfs_fail(err, CFS_ERR_INTERNAL,
			      "cannot listen on '%s': %s", where,
			      strerror(errno));
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	*loopback = is_loopback(&ss);
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, addr, sizeof(addr));
		snprintf(bound, bound_len, "%s://[%s]:%u", scheme, addr,
			 ntohs(in6->sin6_port));
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &in->sin_addr, addr, sizeof(addr));
		snprintf(bound, bound_len, "%s://%s:%u", scheme, addr,
			 ntohs(in->sin_port));
	}
	return CFS_OK;
}

/*
 * Every connection is a file descriptor: the soft limit is raised to what
 * *max_connections needs (and the rest of the server, say 64 more); where
 * the hard limit is lower, *max_connections is lowered to fit, with a
 * warning, rather than the server failing on its busiest day.
 */
static enum cfs_err fit_file_limit(unsigned *max_connections,
				   struct cfs_error *err)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)*max_connections + 64;

	if (getrlimit(RLIMIT_NOFILE, &rl) || rl.rlim_cur >= want)
		return CFS_OK;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want) {
		if (rl.rlim_max < 64 + 16)
			return cfs_fail(
				err, CFS_ERR_BAD_FIELD,
				"this process may open only %llu files, "
				"too few to serve",
				(unsigned long long)rl.rlim_max);
		cfs_log_warn("this process may open %llu files: serving at "
			     "most %llu connections, not %u",
			     (unsigned long long)rl.rlim_max,
			     (unsigned long long)(rl.rlim_max - 64),
			     *max_connections);
		*max_connections = (unsigned)(rl.rlim_max - 64);
		want = rl.rlim_max;
	}
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot raise the open-file limit to %llu: %s",
				(unsigned long long)want, strerror(errno));
	return CFS_OK;
}

bool http_tls_supported(void)
{
	return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

enum cfs_err http_start(const char *where, unsigned threads,
			const struct http_limits *lim,
			const struct tls_pair *tls, const struct api_ctx *ctx,
			struct http_server **out, char *bound, size_t bound_len,
			struct cfs_error *err)
{
	struct http_server *s = calloc(1, sizeof(*s));
	struct http_limits fit = *lim;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	/* Only with TLS: libmicrohttpd warns of TLS options without it. */
	struct MHD_OptionItem tls_opts[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, tls ? tls->cert : NULL },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, tls ? tls->key : NULL },
		{ MHD_OPTION_END, 0, NULL },
	};
	struct MHD_OptionItem plain_opts[] = { { MHD_OPTION_END, 0, NULL } };
	enum cfs_err rc;
	bool loopback = false;
	int listen_fd = -1;

	if (!s)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	s->ctx = ctx;
	rc = fit_file_limit(&fit.max_connections, err);
	if (rc) {
		free(s);
		return rc;
	}
	s->guard = http_guard_new(&fit, gone_cb);
	if (!s->guard) {
		free(s);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot start the connection guard");
	}
	rc = open_listener(where, tls ? "https" : "http", &listen_fd, bound,
			   bound_len, &loopback, err);
	if (rc) {
		http_guard_free(s->guard);
		free(s);
		return rc;
	}
	if (!tls && !loopback)
		cfs_log_warn("serving %s beyond this machine without TLS: "
			     "tokens and file contents travel in clear text "
			     "(see --tls-cert in cloudfsd(8))",
			     bound);
	/* Suspended long polls need ITC (part of ALLOW_SUSPEND_RESUME) so
	 * that a resume from another thread wakes the polling thread.  The
	 * daemon owns listen_fd from here on, started or not: it closes it
	 * when it fails to start and when it stops (libmicrohttpd 0.9.75,
	 * seen with strace), and a second close() could close what another
	 * thread opened meanwhile. */
	s->daemon = MHD_start_daemon(
		flags | (tls ? MHD_USE_TLS : 0), 0, NULL, NULL, on_request, s,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
		MHD_OPTION_LISTEN_SOCKET, listen_fd,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
		/* libmicrohttpd's own 32 KiB: it zeroes a connection's whole
		 * pool before each request, and at 256 KiB that was a tenth
		 * of the server's CPU for small files; bodies stream through
		 * in pieces either way. */
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32 * 1024,
		MHD_OPTION_CONNECTION_LIMIT, fit.max_connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, fit.max_per_address,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_ARRAY,
		tls ? tls_opts : plain_opts, MHD_OPTION_END);
	if (!s->daemon) {
		http_guard_free(s->guard);
		free(s);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot start the HTTP server on '%s'", where);
	}
	*out = s;
	return CFS_OK;
}

void http_stop(struct http_server *s)
{
	MHD_stop_daemon(s->daemon); /* and the listen socket (http_start) */
	http_guard_free(s->guard);
	free(s);
}
