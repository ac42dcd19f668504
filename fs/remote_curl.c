/*
 * The libcurl remote (fs/remote.h): cloudfs-protocol(7) over HTTP, the
 * one place that builds URLs, writes and reads the protocol's JSON and
 * turns HTTP statuses into errors.
 *
 * Calls of a connection run on a libcurl multi handle of their own, so
 * that another thread can wake one (remote_conn_wake); block transfers
 * run many at once on the multi handle of their set, each thread reusing
 * its set's connections.  Downloaded bytes go from libcurl's receive
 * buffer straight to the caller's sink; uploaded ones are read from the
 * caller's file into libcurl's send buffer: no copy of ours either way.
 */
#include <assert.h>
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloudfs/buf.h"
#include "cloudfs/json.h"
#include "cloudfs/platform.h"
#include "cloudfs/proto.h"
#include "fs/remote.h"

/* The largest JSON answer accepted: a full page of a listing is far less. */
#define MAX_ANSWER  (64u * 1024 * 1024)
/* libcurl's receive buffer: large buffers matter for 4 MiB blocks. */
#define RECV_BUFFER (512 * 1024)
/* libcurl's send buffer for block uploads (64 KiB by default): a 4 MiB
 * block went out in 64 reads of its file, sends and polls. */
#define SEND_BUFFER (1024 * 1024)

struct curl_remote {
	struct remote base;
	char auth[128];	    /* "Authorization: Bearer TOKEN" */
	char ca_file[512];  /* absolute; "" for the system's CAs */
	unsigned timeout_s; /* to connect, and the longest stall */
};

struct curl_conn {
	struct remote_conn base;
	CURLM *multi; /* drives curl, so another thread can wake a call */
	CURL *curl;
	struct curl_slist *headers;
	struct cfs_buf answer;
	bool untrusted; /* the last call's certificate did not verify */
	char url[1024]; /* the last call's (remote_curl_last_url()) */
};

struct remote_xfers {
	struct curl_remote *r;
	CURLM *multi;
	struct curl_slist *headers;
	struct curl_slist *batch_headers; /* POST /block/batch's */
};

/* One block of a batch upload: its header line, then len bytes of fd. */
struct batch_part {
	char head[CFS_BATCH_HEADER_MAX + 1];
	size_t head_len;
	int fd;
	uint64_t len;
};

struct remote_xfer {
	CURL *curl;
	void *tag;
	bool put;
	bool batch; /* POST /block/batch */
	/* A download's. */
	remote_sink *sink;
	void *arg;
	/* An upload's: where in fd it reads. */
	int fd;
	uint64_t at, len;
	/* A batch upload's: its blocks, the one being sent (at: how far
	 * into its header line and bytes). */
	struct batch_part *parts;
	size_t n_parts, part;
};

static struct curl_remote *remote_of(struct remote *r)
{
	return (struct curl_remote *)r;
}

static struct curl_conn *conn_of(struct remote_conn *c)
{
	return (struct curl_conn *)c;
}

/*
 * The CA file by an absolute path (its symbolic links left as given, for
 * a renewal to replace): libcurl opens the file again whenever it sets up
 * TLS afresh, long after a daemonized mount has left the caller's
 * directory for '/'.
 */
static enum cfs_err ca_path(const char *ca_file, char *out, size_t len,
			    struct cfs_error *err)
{
	char cwd[PATH_MAX];
	int n;

	if (ca_file[0] == '/')
		n = snprintf(out, len, "%s", ca_file);
	else if (getcwd(cwd, sizeof(cwd)))
		n = snprintf(out, len, "%s/%s", cwd, ca_file);
	else
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot find the directory of CA file '%s': %s",
				ca_file, strerror(errno));
	if (n < 0 || (size_t)n >= len)
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"CA file name '%s' is too long", ca_file);
	if (access(out, R_OK))
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"cannot read CA file '%s': %s", ca_file,
				strerror(errno));
	return CFS_OK;
}

/* Applies what every request to r shares to an easy handle: TLS, the
 * connect and stall timeouts, a large receive buffer. */
static void setup(const struct curl_remote *r, CURL *curl)
{
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, (long)r->timeout_s);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, (long)r->timeout_s);
	curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER);
	curl_easy_setopt(curl, CURLOPT_TCP_NODELAY, 1L);
	if (r->ca_file[0])
		curl_easy_setopt(curl, CURLOPT_CAINFO, r->ca_file);
}

static struct curl_slist *block_headers(const struct curl_remote *r)
{
	struct curl_slist *h = curl_slist_append(NULL, r->auth);

	/* libcurl waits for "100 Continue" before a body of more than 1 KiB:
	 * a round trip for nothing. */
	return h ? curl_slist_append(h, "Expect:") : NULL;
}

static void conn_free(struct remote_conn *rc)
{
	struct curl_conn *c = conn_of(rc);

	curl_easy_cleanup(c->curl);
	curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->headers);
	cfs_buf_release(&c->answer);
	free(c);
}

static struct remote_conn *conn_new(struct remote *rr)
{
	struct curl_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base.r = rr;
	c->multi = curl_multi_init();
	c->curl = curl_easy_init();
	c->headers = block_headers(remote_of(rr));
	if (c->headers)
		c->headers = curl_slist_append(
			c->headers, "Content-Type: application/json");
	cfs_buf_init(&c->answer, MAX_ANSWER);
	if (!c->multi || !c->curl || !c->headers) {
		conn_free(&c->base);
		return NULL;
	}
	return &c->base;
}

static void conn_wake(struct remote_conn *c)
{
	curl_multi_wakeup(conn_of(c)->multi);
}

static bool conn_untrusted(const struct remote_conn *c)
{
	return ((const struct curl_conn *)c)->untrusted;
}

static size_t on_answer(char *data, size_t size, size_t n, void *arg)
{
	struct curl_conn *c = arg;

	return cfs_buf_append(&c->answer, data, size * n) ? 0 : size * n;
}

/* The error of an HTTP answer that is not 200: its protocol code and
 * message when the body is the protocol's error object. */
static enum cfs_err http_error(const char *what, long status, const char *body,
			       size_t len, struct cfs_error *err)
{
	json_t *o = json_loadb(body, len, 0, NULL);
	json_t *e = json_object_get(o, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	size_t what_len = strlen(what);
	enum cfs_err rc;

	/* The server names the request in its own failures (5xx): said
	 * once is enough. */
	if (msg && strncmp(msg, what, what_len) == 0 &&
	    strncmp(msg + what_len, ": ", 2) == 0)
		what = "";
	/* An error answer is never a success, whatever code it names. */
	if (code && msg && cfs_err_from_name(code) != CFS_OK)
		rc = cfs_fail(err, cfs_err_from_name(code), "%s%s%s", what,
			      what[0] ? ": " : "", msg);
	else
		rc = cfs_fail(
			err, CFS_ERR_UNREACHABLE,
			"%s: the server answered HTTP %ld, not the protocol",
			what, status);
	json_decref(o);
	return rc;
}

/* Runs the prepared request to its end, or until *stop turns true. */
static CURLcode transfer(struct curl_conn *c, const bool *stop)
{
	CURLcode cc = CURLE_OK;
	struct CURLMsg *msg;
	int running = 1, left;

	curl_multi_add_handle(c->multi, c->curl);
	while (running) {
		if (curl_multi_perform(c->multi, &running) != CURLM_OK) {
			cc = CURLE_FAILED_INIT;
			break;
		}
		if (stop && __atomic_load_n(stop, __ATOMIC_RELAXED)) {
			cc = CURLE_ABORTED_BY_CALLBACK;
			break;
		}
		if (running)
			curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
	}
	while ((msg = curl_multi_info_read(c->multi, &left)))
		if (msg->msg == CURLMSG_DONE && cc == CURLE_OK)
			cc = msg->data.result;
	curl_multi_remove_handle(c->multi, c->curl);
	return cc;
}

static enum cfs_err perform(struct curl_conn *c, const char *what,
			    const bool *stop, json_t **out,
			    struct cfs_error *err)
{
	char errbuf[CURL_ERROR_SIZE] = "";
	long status = 0;
	CURLcode cc;

	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, errbuf);
	cc = transfer(c, stop);
	curl_easy_setopt(c->curl, CURLOPT_ERRORBUFFER, NULL);
	c->untrusted = cc == CURLE_PEER_FAILED_VERIFICATION;
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return cfs_fail(err, CFS_ERR_UNREACHABLE, "%s: stopped", what);
	if (cc == CURLE_PEER_FAILED_VERIFICATION)
		return cfs_fail(err, CFS_ERR_UNREACHABLE,
				"%s: %s (for a server whose certificate a "
				"private CA signed, give -o ca=FILE)",
				what,
				errbuf[0] ? errbuf : curl_easy_strerror(cc));
	if (cc != CURLE_OK)
		return cfs_fail(err, CFS_ERR_UNREACHABLE, "%s: %s", what,
				errbuf[0] ? errbuf : curl_easy_strerror(cc));
	curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200)
		return http_error(what, status, c->answer.data, c->answer.len,
				  err);
	*out = json_loadb(c->answer.data, c->answer.len, 0, NULL);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return cfs_fail(err, CFS_ERR_UNREACHABLE,
				"%s: the answer is not a JSON object", what);
	}
	return CFS_OK;
}

/*
 * Sends METHOD path with an optional JSON body (the caller's) and returns
 * the answer's JSON object in *out (the caller's), within the bounds of
 * fs/remote.h; with max_s, a long poll may stay silent that long.
 */
static enum cfs_err call(struct remote_conn *rc, const char *method,
			 const char *path, json_t *body, unsigned max_s,
			 const bool *stop, json_t **out, struct cfs_error *err)
{
	struct curl_conn *c = conn_of(rc);
	struct curl_remote *r = remote_of(rc->r);
	char *url = c->url, what[256];
	char *text = NULL;
	enum cfs_err e;

	*out = NULL;
	snprintf(what, sizeof(what), "%s %s", method, path);
	if ((size_t)snprintf(url, sizeof(c->url), "%s%s", r->base.url, path) >=
	    sizeof(c->url))
		return cfs_fail(err, CFS_ERR_BAD_FIELD, "%s: URL too long",
				what);
	if (body && !(text = json_dumps(body, JSON_COMPACT)))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	cfs_buf_release(&c->answer);
	curl_easy_reset(c->curl);
	setup(r, c->curl);
	curl_easy_setopt(c->curl, CURLOPT_URL, url);
	curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
	curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_answer);
	curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, c);
	if (max_s) {
		/* A long poll is silent until it answers: bound it in all,
		 * and let TCP keepalive notice a peer that vanished. */
		curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, (long)max_s);
		curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, 0L);
		curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPIDLE, 10L);
		curl_easy_setopt(c->curl, CURLOPT_TCP_KEEPINTVL, 5L);
	}
	if (text) {
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, text);
		curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE,
				 (long)strlen(text));
	}
	e = perform(c, what, stop, out, err);
	free(text);
	return e;
}

/* call() with a body it consumes (NULL: out of memory). */
static enum cfs_err call_new(struct remote_conn *c, const char *method,
			     const char *path, json_t *body, unsigned max_s,
			     const bool *stop, json_t **out,
			     struct cfs_error *err)
{
	enum cfs_err rc;

	*out = NULL;
	if (!body)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	rc = call(c, method, path, body, max_s, stop, out, err);
	json_decref(body);
	return rc;
}

static enum cfs_err hello(struct remote_conn *c, struct cfs_error *err)
{
	json_t *answer = NULL;
	enum cfs_err rc = call(c, "GET", "/", NULL, 0, NULL, &answer, err);

	json_decref(answer);
	return rc;
}

static char *dup_string(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? strdup(s) : NULL;
}

static enum cfs_err namespaces(struct remote_conn *c, unsigned max_s,
			       const bool *stop, struct remote_ns **list,
			       size_t *n, struct cfs_error *err)
{
	json_t *answer = NULL, *arr, *o;
	enum cfs_err rc = call(c, "GET", "/meta/namespaces", NULL, max_s, stop,
			       &answer, err);
	size_t i;

	*list = NULL;
	*n = 0;
	arr = json_object_get(answer, "namespaces");
	if (rc == CFS_OK && !json_is_array(arr))
		rc = cfs_fail(err, CFS_ERR_UNREACHABLE,
			      "GET /meta/namespaces: no list of namespaces");
	if (rc == CFS_OK &&
	    !(*list = calloc(json_array_size(arr) + 1, sizeof(**list))))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	json_array_foreach(arr, i, o)
	{
		struct remote_ns *m;

		if (rc)
			break;
		m = &(*list)[(*n)++];
		m->ns = json_integer_value(json_object_get(o, "ns"));
		m->head = json_integer_value(json_object_get(o, "head"));
		m->root = json_is_true(json_object_get(o, "root"));
		m->path = dup_string(o, "path");
		m->owner = dup_string(o, "owner");
	}
	json_decref(answer);
	if (rc) {
		remote_ns_free(*list, *n);
		*list = NULL;
		*n = 0;
	}
	return rc;
}

/* Fields every kind of entry has. */
static enum cfs_err parse_common(json_t *o, int64_t head,
				 struct mirror_entry *e, struct cfs_error *err)
{
	const char *s;
	size_t len;
	enum cfs_err rc;

	rc = cfs_json_int(o, "node", 1, INT64_MAX, &e->node, err);
	if (rc == CFS_OK)
		rc = cfs_json_int(o, "parent", 0, INT64_MAX, &e->parent, err);
	if (rc == CFS_OK)
		rc = cfs_json_int(o, "jid", 1, head, &e->jid, err);
	if (rc == CFS_OK)
		rc = cfs_json_string(o, "name", &s, &len, err);
	if (rc == CFS_OK)
		rc = cfs_name_check(s, len, "entry", err);
	if (rc == CFS_OK)
		memcpy(e->name, s, len + 1);
	if (rc == CFS_OK)
		rc = cfs_json_string(o, "kind", &s, &len, err);
	if (rc == CFS_OK && !cfs_kind_from_name(s, &e->kind))
		rc = cfs_fail(err, CFS_ERR_BAD_FIELD, "unknown kind '%s'", s);
	return rc;
}

static enum cfs_err parse_entry(json_t *o, int64_t ns, int64_t head,
				struct mirror_entry *e, struct cfs_error *err)
{
	int64_t v;
	enum cfs_err rc;

	memset(e, 0, sizeof(*e));
	e->ns = ns;
	if (!json_is_object(o))
		return cfs_fail(err, CFS_ERR_BAD_FIELD, "not an object");
	rc = parse_common(o, head, e, err);
	if (rc || e->kind == CFS_KIND_DELETED)
		return rc;
	/* A further name of a node (a hard link): the node holds the rest,
	 * and the mount shows the name as that node's inode. */
	if (e->kind == CFS_KIND_LINK)
		return cfs_json_int(o, "of", 1, INT64_MAX, &e->link_of, err);
	rc = cfs_json_int(o, "size", 0, (int64_t)CFS_MAX_FILE_SIZE, &v, err);
	e->size = (uint64_t)v;
	if (rc == CFS_OK)
		rc = cfs_json_int(o, "mtime_ns", INT64_MIN, INT64_MAX,
				  &e->mtime_ns, err);
	/* A server from before atime and ctime were kept sends neither:
	 * mtime is the best guess of both, as its own upgrade makes it. */
	if (rc == CFS_OK)
		rc = cfs_json_int_opt(o, "atime_ns", INT64_MIN, INT64_MAX,
				      e->mtime_ns, &e->atime_ns, err);
	if (rc == CFS_OK)
		rc = cfs_json_int_opt(o, "ctime_ns", INT64_MIN, INT64_MAX,
				      e->mtime_ns, &e->ctime_ns, err);
	if (rc == CFS_OK)
		rc = cfs_json_int(o, "mode", 0, CFS_MODE_MASK, &v, err);
	e->mode = (uint32_t)v;
	if (rc == CFS_OK && e->kind == CFS_KIND_FILE) {
		rc = cfs_json_blocklist(o, "blocks",
					cfs_block_count(CFS_MAX_FILE_SIZE),
					&e->blocks, err);
		if (rc == CFS_OK && e->blocks.n != cfs_block_count(e->size))
			rc = cfs_fail(err, CFS_ERR_BAD_FIELD,
				      "%zu blocks for %llu bytes", e->blocks.n,
				      (unsigned long long)e->size);
	}
	if (rc == CFS_OK && cfs_kind_has_target(e->kind)) {
		const char *t;
		size_t len;
		uint32_t major, minor;

		rc = cfs_json_string(o, "target", &t, &len, err);
		if (rc == CFS_OK && (len == 0 || len > CFS_MAX_SYMLINK_TARGET ||
				     memchr(t, '\0', len)))
			rc = cfs_fail(err, CFS_ERR_BAD_FIELD,
				      "bad symlink target");
		if (rc == CFS_OK && e->kind != CFS_KIND_SYMLINK &&
		    !cfs_device_parse(t, &major, &minor))
			rc = cfs_fail(err, CFS_ERR_BAD_FIELD, "bad device '%s'",
				      t);
		if (rc == CFS_OK && !(e->target = strdup(t)))
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	if (rc == CFS_OK && e->kind == CFS_KIND_MOUNT)
		rc = cfs_json_int(o, "ns", 1, INT64_MAX, &e->mount_ns, err);
	/* Followed as a mount, a namespace mounted in itself would take the
	 * place of its own row in the mirror, and be forgotten with the
	 * mount (cache/mirror.c, invariant 3). */
	if (rc == CFS_OK && e->kind == CFS_KIND_MOUNT && e->mount_ns == ns)
		rc = cfs_fail(err, CFS_ERR_BAD_FIELD,
			      "namespace %lld mounted in itself",
			      (long long)ns);
	if (rc)
		mirror_entry_release(e);
	return rc;
}

/*
 * Checks a listing's page of namespace ns, asked from cursor, entry by
 * entry: one bad entry refuses the page whole, as a server's answer that
 * is not the protocol (CFS_ERR_UNREACHABLE).
 */
static enum cfs_err parse_page(json_t *o, int64_t ns, int64_t cursor,
			       struct remote_page *page, struct cfs_error *err)
{
	json_t *arr = NULL, *v;
	enum cfs_err rc;
	size_t i;

	memset(page, 0, sizeof(*page));
	page->cursor = cursor;
	rc = cfs_json_int(o, "head", cursor, INT64_MAX, &page->head, err);
	if (rc == CFS_OK)
		rc = cfs_json_int(o, "cursor", cursor, page->head,
				  &page->cursor, err);
	if (rc == CFS_OK)
		rc = cfs_json_bool_opt(o, "more", false, &page->more, err);
	if (rc == CFS_OK)
		rc = cfs_json_array(o, "entries", CFS_LIST_MAX_LIMIT, &arr,
				    err);
	if (rc == CFS_OK &&
	    (!(page->entries = calloc(json_array_size(arr) + 1,
				      sizeof(*page->entries))) ||
	     !(page->paths =
		       calloc(json_array_size(arr) + 1, sizeof(*page->paths)))))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	json_array_foreach(arr, i, v)
	{
		if (rc)
			break;
		rc = parse_entry(v, ns, page->head, &page->entries[i], err);
		if (rc)
			cfs_error_prefix(err, "entry %zu", i);
		else
			page->paths[page->n++] = dup_string(v, "path");
	}
	if (rc)
		remote_page_release(page);
	return remote_bad_listing(rc, ns, err);
}

static enum cfs_err list(struct remote_conn *c,
			 const struct remote_list_req *req, const bool *stop,
			 struct remote_page *page, struct cfs_error *err)
{
	char path[128];
	json_t *answer = NULL;
	enum cfs_err rc;

	memset(page, 0, sizeof(*page));
	snprintf(path, sizeof(path), "/meta/ns/%lld/list?cursor=%lld&limit=%u",
		 (long long)req->ns, (long long)req->cursor, req->limit);
	/* A point-in-time mount lists each namespace as of then, and so
	 * does a restore. */
	if (req->as_of_jid)
		snprintf(path + strlen(path), sizeof(path) - strlen(path),
			 "&as_of=%lld", (long long)req->as_of);
	else if (req->at)
		snprintf(path + strlen(path), sizeof(path) - strlen(path),
			 "&at=%lld", (long long)req->at);
	rc = call(c, "GET", path, NULL, 0, stop, &answer, err);
	if (rc == CFS_OK)
		rc = parse_page(answer, req->ns, req->cursor, page, err);
	json_decref(answer);
	return rc;
}

/* One landed block of a pending list of the answer; false when it is
 * not the protocol. */
static bool parse_landed(json_t *list, json_t *b, struct remote_landed *l)
{
	json_t *id = json_object_get(b, "id"),
	       *size = json_object_get(b, "size"),
	       *ns = json_object_get(list, "ns");

	if (!json_is_string(id) || !json_is_integer(size) ||
	    !json_is_integer(ns) || json_integer_value(ns) < 1 ||
	    json_integer_value(size) < 1 ||
	    json_integer_value(size) > CFS_BLOCK_SIZE ||
	    !cfs_block_id_from_hex(json_string_value(id),
				   json_string_length(id), &l->id))
		return false;
	l->ns = json_integer_value(ns);
	l->size = (uint32_t)json_integer_value(size);
	l->expires = json_integer_value(json_object_get(list, "expires"));
	return true;
}

/* The pending part of a long poll's answer, checked whole: a bad one is
 * not the protocol. */
static enum cfs_err parse_pending(json_t *answer, struct remote_pending *p,
				  struct cfs_error *err)
{
	json_t *lists = json_object_get(answer, "pending"), *list, *b;
	json_t *next = json_object_get(answer, "pending_cursor");
	size_t i, j, count = 0;

	/* A server from before streaming sync. */
	if (!lists && !next)
		return CFS_OK;
	if (!json_is_array(lists) || !json_is_integer(next) ||
	    json_integer_value(next) < p->cursor)
		return cfs_fail(
			err, CFS_ERR_UNREACHABLE,
			"POST /meta/longpoll: no pending lists in the answer");
	json_array_foreach(lists, i, list)
	{
		count += json_array_size(json_object_get(list, "blocks"));
	}
	if (count > CFS_PENDING_MAX_BLOCKS)
		return cfs_fail(
			err, CFS_ERR_UNREACHABLE,
			"POST /meta/longpoll: %zu pending blocks, more than %d",
			count, CFS_PENDING_MAX_BLOCKS);
	if (count && !(p->landed = calloc(count, sizeof(*p->landed))))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	json_array_foreach(lists, i, list)
	{
		json_array_foreach(json_object_get(list, "blocks"), j, b)
		{
			if (!parse_landed(list, b, &p->landed[p->n])) {
				remote_pending_release(p);
				return cfs_fail(
					err, CFS_ERR_UNREACHABLE,
					"POST /meta/longpoll: pending list %zu has a bad block %zu",
					i, j);
			}
			p->n++;
		}
	}
	p->cursor = json_integer_value(next);
	return CFS_OK;
}

static enum cfs_err longpoll(struct remote_conn *c,
			     const struct remote_cursor *cursors, size_t n,
			     unsigned timeout_s, const bool *stop,
			     struct remote_pending *pending,
			     struct cfs_error *err)
{
	json_t *arr = json_array(), *answer = NULL, *body;
	enum cfs_err rc;

	for (size_t i = 0; arr && i < n; i++)
		json_array_append_new(
			arr,
			json_pack("{s:I, s:I}", "ns", (json_int_t)cursors[i].ns,
				  "cursor", (json_int_t)cursors[i].cursor));
	body = pending ? json_pack("{s:o, s:I, s:I}", "cursors", arr, "timeout",
				   (json_int_t)timeout_s, "pending",
				   (json_int_t)pending->cursor)
		       : json_pack("{s:o, s:I}", "cursors", arr, "timeout",
				   (json_int_t)timeout_s);
	rc = call_new(c, "POST", "/meta/longpoll", body, timeout_s + 30, stop,
		      &answer, err);
	if (rc == CFS_OK && pending) {
		pending->n = 0;
		pending->landed = NULL;
		pending->moved =
			json_array_size(json_object_get(answer, "changes")) ||
			json_array_size(json_object_get(answer, "gone"));
		rc = parse_pending(answer, pending, err);
	}
	json_decref(answer);
	return rc;
}

static enum cfs_err need_blocks(struct remote_conn *c,
				const struct cfs_block_id *ids, size_t n,
				unsigned max_s, const bool *stop,
				struct cfs_blocklist *needed,
				struct cfs_error *err)
{
	json_t *answer = NULL, *v;
	size_t i, room = needed->n + n;
	enum cfs_err rc = call_new(
		c, "POST", "/block/need",
		json_pack("{s:o}", "blocks", cfs_json_block_ids(ids, n)), max_s,
		stop, &answer, err);

	json_array_foreach(json_object_get(answer, "needed"), i, v)
	{
		/* More than asked for is not the protocol: left out. */
		if (needed->n < room && json_is_string(v) &&
		    cfs_block_id_from_hex(json_string_value(v),
					  json_string_length(v),
					  &needed->ids[needed->n]))
			needed->n++;
	}
	json_decref(answer);
	return rc;
}

/* The protocol's form of a queued operation. */
static json_t *op_json(const struct queued_op *op, bool queued)
{
	json_t *o = json_pack("{s:s, s:s}", "op", remote_op_name(op), "path",
			      op->path);
	int rc = 0;

	if (!o)
		return NULL;
	if (queued)
		rc |= json_object_set_new(o, "seq", json_integer(op->seq));
	if (op->base_jid >= 0)
		rc |= json_object_set_new(o, "base_jid",
					  json_integer(op->base_jid));
	/* The node a delete or a move means: a retry of one the server
	 * applied (its answer lost) is then committed as it stands. */
	if ((op->type == QUEUE_DELETE || op->type == QUEUE_MOVE) &&
	    op->node > 0)
		rc |= json_object_set_new(o, "node", json_integer(op->node));
	switch (op->type) {
	case QUEUE_FILE:
		rc |= json_object_set_new(o, "size",
					  json_integer((json_int_t)op->size));
		rc |= json_object_set_new(
			o, "blocks",
			cfs_json_block_ids(op->blocks.ids, op->blocks.n));
		/* fall through */
	case QUEUE_DIR:
	case QUEUE_SPECIAL:
		rc |= json_object_set_new(o, "mode", json_integer(op->mode));
		/* fall through */
	case QUEUE_SYMLINK:
		rc |= json_object_set_new(o, "atime_ns",
					  json_integer(op->atime_ns));
		rc |= json_object_set_new(o, "mtime_ns",
					  json_integer(op->mtime_ns));
		if (queued)
			rc |= json_object_set_new(o, "ctime_ns",
						  json_integer(op->ctime_ns));
		if (cfs_kind_has_target(op->kind))
			rc |= json_object_set_new(o, "target",
						  json_string(op->target));
		break;
	case QUEUE_DELETE:
		if (op->unchanged_since > 0) {
			rc |= json_object_set_new(o, "recursive", json_true());
			rc |= json_object_set_new(
				o, "unchanged_since",
				json_integer(op->unchanged_since));
		}
		break;
	case QUEUE_LINK:
		rc |= json_object_set_new(o, "to", json_string(op->to));
		break;
	case QUEUE_MOVE:
		rc |= json_object_set_new(o, "to", json_string(op->to));
		rc |= json_object_set_new(o, "replace",
					  json_boolean(op->replace));
		rc |= json_object_set_new(o, "ctime_ns",
					  json_integer(op->ctime_ns));
		break;
	}
	if (rc) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static const struct {
	const char *name;
	enum remote_status status;
} statuses[] = {
	{ "committed", REMOTE_COMMITTED },
	{ "need_blocks", REMOTE_NEED_BLOCKS },
	{ "conflict", REMOTE_CONFLICT },
	{ "error", REMOTE_ERROR },
};

/* One operation's answer; lax, as the settling reads it: what is missing
 * reads as 0, and a code this build does not know as none (CFS_OK). */
static void parse_result(json_t *o, struct remote_result *r)
{
	const char *status = json_string_value(json_object_get(o, "status"));
	json_t *e = json_object_get(o, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));

	memset(r, 0, sizeof(*r));
	r->status = REMOTE_OTHER;
	for (size_t i = 0; status && i < sizeof(statuses) / sizeof(*statuses);
	     i++)
		if (strcmp(status, statuses[i].name) == 0)
			r->status = statuses[i].status;
	r->jid = json_integer_value(json_object_get(o, "jid"));
	r->node = json_integer_value(json_object_get(o, "node"));
	r->prev_jid = json_integer_value(json_object_get(o, "prev_jid"));
	if (code && strcmp(cfs_err_name(cfs_err_from_name(code)), code) == 0)
		r->code = cfs_err_from_name(code);
	r->has_message = msg != NULL;
	snprintf(r->message, sizeof(r->message), "%s",
		 msg	  ? msg
		 : status ? status
			  : "");
}

static enum cfs_err commit(struct remote_conn *c,
			   const struct remote_commit_req *req, unsigned max_s,
			   const bool *stop, struct remote_commit *out,
			   struct cfs_error *err)
{
	json_t *arr = json_array(), *answer = NULL, *results, *body = NULL;
	char path[64];
	enum cfs_err rc;

	out->head = 0;
	out->results = NULL;
	for (size_t i = 0; arr && i < req->n; i++)
		if (json_array_append_new(
			    arr, op_json(&req->ops[i], req->client != NULL))) {
			json_decref(arr);
			arr = NULL;
		}
	snprintf(path, sizeof(path), "/meta/ns/%lld/%s", (long long)req->ns,
		 req->announce ? "announce" : "commit");
	if (arr && !req->client)
		body = json_pack("{s:o}", "ops", arr);
	else if (arr)
		body = json_pack("{s:o, s:s, s:I}", "ops", arr, "client",
				 req->client, "keep_from",
				 (json_int_t)req->keep_from);
	rc = call_new(c, "POST", path, body, max_s, stop, &answer, err);
	results = json_object_get(answer, "results");
	if (rc == CFS_OK && json_array_size(results) != req->n)
		rc = cfs_fail(err, CFS_ERR_UNREACHABLE,
			      "POST %s: %zu answers to %zu operations", path,
			      json_array_size(results), req->n);
	if (rc == CFS_OK &&
	    !(out->results = calloc(req->n + 1, sizeof(*out->results))))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; rc == CFS_OK && i < req->n; i++)
		parse_result(json_array_get(results, i), &out->results[i]);
	if (rc == CFS_OK)
		out->head = json_integer_value(json_object_get(answer, "head"));
	json_decref(answer);
	return rc;
}

static enum cfs_err share(struct remote_conn *c, int64_t root_ns,
			  const char *folder, int64_t *ns,
			  struct cfs_error *err)
{
	char path[64];
	json_t *a = NULL;
	enum cfs_err rc;

	snprintf(path, sizeof(path), "/meta/ns/%lld/share", (long long)root_ns);
	rc = call_new(c, "POST", path, json_pack("{s:s}", "path", folder), 0,
		      NULL, &a, err);
	*ns = json_integer_value(json_object_get(a, "ns"));
	json_decref(a);
	return rc;
}

static enum cfs_err member(struct remote_conn *c, int64_t ns,
			   enum remote_member_verb verb, const char *user,
			   struct cfs_error *err)
{
	static const char *const verbs[] = {
		[REMOTE_INVITE] = "invite",
		[REMOTE_REMOVE] = "remove",
		[REMOTE_LEAVE] = "leave",
	};
	char path[64];
	json_t *a = NULL;
	enum cfs_err rc;

	snprintf(path, sizeof(path), "/meta/ns/%lld/%s", (long long)ns,
		 verbs[verb]);
	rc = call_new(c, "POST", path,
		      user ? json_pack("{s:s}", "user", user) : json_object(),
		      0, NULL, &a, err);
	json_decref(a);
	return rc;
}

static enum cfs_err members(struct remote_conn *c, int64_t ns,
			    struct remote_member **list, size_t *n,
			    struct cfs_error *err)
{
	char path[64];
	json_t *a = NULL, *arr, *o;
	enum cfs_err rc;
	size_t i;

	*list = NULL;
	*n = 0;
	snprintf(path, sizeof(path), "/meta/ns/%lld/members", (long long)ns);
	rc = call(c, "GET", path, NULL, 0, NULL, &a, err);
	arr = json_object_get(a, "members");
	if (rc == CFS_OK &&
	    !(*list = calloc(json_array_size(arr) + 1, sizeof(**list))))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	json_array_foreach(arr, i, o)
	{
		if (rc)
			break;
		(*list)[*n].user = dup_string(o, "user");
		(*list)[(*n)++].owner =
			json_is_true(json_object_get(o, "owner"));
	}
	json_decref(a);
	return rc;
}

/* The versions of a history's answer, each checked as a listing's entry
 * (their heads are their own JIDs). */
static enum cfs_err parse_history(json_t *o, int64_t ns,
				  struct remote_version **list, size_t *n,
				  struct cfs_error *err)
{
	json_t *arr = json_object_get(o, "versions"), *v;
	enum cfs_err rc = CFS_OK;
	size_t i;

	*n = 0;
	if (!(*list = calloc(json_array_size(arr) + 1, sizeof(**list))))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	json_array_foreach(arr, i, v)
	{
		struct remote_version *w = &(*list)[*n];

		rc = parse_entry(v, ns, INT64_MAX, &w->e, err);
		if (rc) {
			cfs_error_prefix(err, "version %zu", i);
			break;
		}
		w->at = json_integer_value(json_object_get(v, "at"));
		w->before = json_integer_value(json_object_get(v, "before"));
		w->author = dup_string(v, "author");
		(*n)++;
	}
	if (rc) {
		remote_versions_free(*list, *n);
		*list = NULL;
		*n = 0;
		cfs_error_prefix(err, "bad history");
		err->code = rc = CFS_ERR_UNREACHABLE;
	}
	return rc;
}

static enum cfs_err history(struct remote_conn *c, int64_t ns,
			    const char *folder, struct remote_version **list,
			    size_t *n, struct cfs_error *err)
{
	char *q = curl_easy_escape(NULL, folder, 0), *path = NULL;
	json_t *a = NULL;
	enum cfs_err rc;

	*list = NULL;
	*n = 0;
	if (!q || asprintf(&path, "/meta/ns/%lld/history?path=%s",
			   (long long)ns, q) < 0) {
		curl_free(q);
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	curl_free(q);
	rc = call(c, "GET", path, NULL, 0, NULL, &a, err);
	if (rc == CFS_OK)
		rc = parse_history(a, ns, list, n, err);
	json_decref(a);
	free(path);
	return rc;
}

/* Block transfers. */

static struct remote_xfers *xfers_new(struct remote *rr)
{
	struct remote_xfers *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->r = remote_of(rr);
	s->multi = curl_multi_init();
	s->headers = block_headers(s->r);
	s->batch_headers = block_headers(s->r);
	if (s->batch_headers)
		s->batch_headers = curl_slist_append(
			s->batch_headers,
			"Content-Type: application/octet-stream");
	if (!s->multi || !s->headers || !s->batch_headers) {
		curl_multi_cleanup(s->multi);
		curl_slist_free_all(s->headers);
		curl_slist_free_all(s->batch_headers);
		free(s);
		return NULL;
	}
	return s;
}

static void xfers_free(struct remote_xfers *s)
{
	if (!s)
		return;
	curl_multi_cleanup(s->multi);
	curl_slist_free_all(s->headers);
	curl_slist_free_all(s->batch_headers);
	free(s);
}

static size_t on_block(char *data, size_t size, size_t n, void *arg)
{
	struct remote_xfer *x = arg;

	return x->sink(x->arg, data, size * n);
}

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
	struct remote_xfer *x = arg;
	ssize_t k;

	if (x->at >= x->len)
		return 0;
	if (size * n > x->len - x->at)
		n = (size_t)(x->len - x->at) / size;
	k = pread(x->fd, buf, size * n, (off_t)x->at);
	if (k < 0)
		return CURL_READFUNC_ABORT;
	x->at += (uint64_t)k;
	return (size_t)k;
}

/* The body of a batch upload, part after part: each block's header line,
 * then its bytes, read from its fd as libcurl asks for them. */
static size_t on_batch_read(char *buf, size_t size, size_t n, void *arg)
{
	struct remote_xfer *x = arg;
	size_t max = size * n, got = 0;

	while (got < max && x->part < x->n_parts) {
		struct batch_part *p = &x->parts[x->part];
		uint64_t end = p->head_len + p->len;
		size_t k;

		if (x->at < p->head_len) {
			k = p->head_len - (size_t)x->at;
			k = k < max - got ? k : max - got;
			memcpy(buf + got, p->head + x->at, k);
		} else {
			ssize_t r;

			k = end - x->at < max - got ? (size_t)(end - x->at)
						    : max - got;
			r = pread(p->fd, buf + got, k,
				  (off_t)(x->at - p->head_len));
			if (r <= 0) /* a block file shorter than it was */
				return CURL_READFUNC_ABORT;
			k = (size_t)r;
		}
		got += k;
		x->at += k;
		if (x->at == end) {
			x->part++;
			x->at = 0;
		}
	}
	return got;
}

static size_t on_put_answer(char *data, size_t size, size_t n, void *arg)
{
	(void)data, (void)arg;
	return size * n; /* the answer only repeats the id */
}

/* A new transfer of block id in s, to finish setting up. */
static struct remote_xfer *xfer_new(struct remote_xfers *s,
				    const struct cfs_block_id *id, void *tag)
{
	char url[700], hex[CFS_BLOCK_ID_HEX_LEN + 1];
	struct remote_xfer *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->curl = curl_easy_init();
	if (!x->curl) {
		free(x);
		return NULL;
	}
	x->tag = tag;
	x->fd = -1;
	cfs_block_id_to_hex(id, hex);
	snprintf(url, sizeof(url), "%s/block/%s", s->r->base.url, hex);
	setup(s->r, x->curl);
	curl_easy_setopt(x->curl, CURLOPT_URL, url);
	curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, s->headers);
	curl_easy_setopt(x->curl, CURLOPT_PRIVATE, x);
	return x;
}

static struct remote_xfer *get(struct remote_xfers *s,
			       const struct cfs_block_id *id, remote_sink *sink,
			       void *arg, void *tag)
{
	struct remote_xfer *x = xfer_new(s, id, tag);

	if (!x)
		return NULL;
	x->sink = sink;
	x->arg = arg;
	curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, on_block);
	curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, x);
	curl_multi_add_handle(s->multi, x->curl);
	return x;
}

static struct remote_xfer *put(struct remote_xfers *s,
			       const struct cfs_block_id *id, int fd,
			       uint64_t len, void *tag)
{
	struct remote_xfer *x = xfer_new(s, id, tag);

	if (!x)
		return NULL;
	x->put = true;
	x->fd = fd;
	x->len = len;
	curl_easy_setopt(x->curl, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(x->curl, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(x->curl, CURLOPT_UPLOAD_BUFFERSIZE, (long)SEND_BUFFER);
	curl_easy_setopt(x->curl, CURLOPT_READFUNCTION, on_read);
	curl_easy_setopt(x->curl, CURLOPT_READDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, on_put_answer);
	curl_multi_add_handle(s->multi, x->curl);
	return x;
}

static struct remote_xfer *put_batch(struct remote_xfers *s,
				     const struct cfs_block_id *ids,
				     const int *fds, const uint64_t *lens,
				     size_t n, void *tag)
{
	char url[700];
	struct remote_xfer *x = calloc(1, sizeof(*x));
	uint64_t total = 0;

	assert(n >= 1 && n <= CFS_MAX_BATCH_BLOCKS);
	if (!x || !(x->parts = calloc(n, sizeof(*x->parts))) ||
	    !(x->curl = curl_easy_init())) {
		if (x)
			free(x->parts);
		free(x);
		return NULL;
	}
	x->tag = tag;
	x->fd = -1;
	x->put = true;
	x->batch = true;
	x->n_parts = n;
	for (size_t i = 0; i < n; i++) {
		struct batch_part *p = &x->parts[i];
		char hex[CFS_BLOCK_ID_HEX_LEN + 1];

		cfs_block_id_to_hex(&ids[i], hex);
		p->head_len =
			(size_t)snprintf(p->head, sizeof(p->head), "%s %llu\n",
					 hex, (unsigned long long)lens[i]);
		p->fd = fds[i];
		p->len = lens[i];
		total += p->head_len + p->len;
	}
	snprintf(url, sizeof(url), "%s/block/batch", s->r->base.url);
	setup(s->r, x->curl);
	curl_easy_setopt(x->curl, CURLOPT_URL, url);
	curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, s->batch_headers);
	curl_easy_setopt(x->curl, CURLOPT_PRIVATE, x);
	curl_easy_setopt(x->curl, CURLOPT_POST, 1L);
	curl_easy_setopt(x->curl, CURLOPT_POSTFIELDSIZE_LARGE,
			 (curl_off_t)total);
	curl_easy_setopt(x->curl, CURLOPT_UPLOAD_BUFFERSIZE, (long)SEND_BUFFER);
	curl_easy_setopt(x->curl, CURLOPT_READFUNCTION, on_batch_read);
	curl_easy_setopt(x->curl, CURLOPT_READDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, on_put_answer);
	curl_multi_add_handle(s->multi, x->curl);
	return x;
}

static void xfer_end(struct remote_xfers *s, struct remote_xfer *x)
{
	if (!x)
		return;
	curl_multi_remove_handle(s->multi, x->curl);
	curl_easy_cleanup(x->curl);
	free(x->parts);
	free(x);
}

/* How a transfer that libcurl says is done ended. */
static enum cfs_err xfer_result(struct remote_xfer *x, CURLcode cc,
				struct cfs_error *err)
{
	long status = 0;

	if (cc != CURLE_OK)
		return cfs_fail(err, CFS_ERR_UNREACHABLE, "%s",
				curl_easy_strerror(cc));
	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
	/* A server older than batch uploads takes "batch" for a malformed
	 * block id (400); a refused batch is sent again one by one all the
	 * same, where each block gets its own answer. */
	if (x->batch && (status == 400 || status == 404 || status == 405))
		return cfs_fail(err, CFS_ERR_NOT_FOUND,
				"the server has no batch uploads (HTTP %ld)",
				status);
	if (x->put && status == 507)
		return cfs_fail(err, CFS_ERR_STORAGE_FULL,
				"the server's disk is full");
	if (x->put && status != 200)
		return cfs_fail(err, CFS_ERR_UNREACHABLE, "HTTP %ld", status);
	if (status != 200)
		return cfs_fail(err, CFS_ERR_UNREACHABLE,
				"the server answered HTTP %ld", status);
	return CFS_OK;
}

static unsigned xfers_step(struct remote_xfers *s, remote_xfer_done *done,
			   void *arg)
{
	struct CURLMsg *msg;
	unsigned ended = 0;
	int still, left;

	curl_multi_perform(s->multi, &still);
	while ((msg = curl_multi_info_read(s->multi, &left))) {
		struct remote_xfer *x = NULL;
		struct cfs_error e = { 0 };
		enum cfs_err rc;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
				  (char **)&x);
		rc = xfer_result(x, msg->data.result, &e);
		done(arg, x, x->tag, rc, &e);
		ended++;
	}
	return ended;
}

static void xfers_wait(struct remote_xfers *s, unsigned ms)
{
	curl_multi_poll(s->multi, NULL, 0, (int)ms, NULL);
}

static void xfers_wake(struct remote_xfers *s)
{
	curl_multi_wakeup(s->multi);
}

static void remote_curl_free(struct remote *r)
{
	free(remote_of(r));
}

static const struct remote_ops curl_ops = {
	.conn_new = conn_new,
	.conn_free = conn_free,
	.conn_wake = conn_wake,
	.conn_untrusted = conn_untrusted,
	.hello = hello,
	.namespaces = namespaces,
	.list = list,
	.longpoll = longpoll,
	.need_blocks = need_blocks,
	.commit = commit,
	.share = share,
	.member = member,
	.members = members,
	.history = history,
	.xfers_new = xfers_new,
	.xfers_free = xfers_free,
	.get = get,
	.put = put,
	.put_batch = put_batch,
	.xfer_end = xfer_end,
	.xfers_step = xfers_step,
	.xfers_wait = xfers_wait,
	.xfers_wake = xfers_wake,
	.free = remote_curl_free,
};

struct remote *remote_curl_new(const char *url, const char *token,
			       const char *ca_file, unsigned timeout_s,
			       struct cfs_error *err)
{
	struct curl_remote *r;
	size_t len = strlen(url);

	if (strncmp(url, "http://", 7) != 0 &&
	    strncmp(url, "https://", 8) != 0) {
		cfs_fail(err, CFS_ERR_BAD_FIELD,
			 "server URL '%s' must start with http:// or https://",
			 url);
		return NULL;
	}
	while (len && url[len - 1] == '/')
		len--;
	if (!(r = calloc(1, sizeof(*r)))) {
		cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		return NULL;
	}
	if (len >= sizeof(r->base.url) || strlen(token) + 32 >= sizeof(r->auth))
		cfs_fail(err, CFS_ERR_BAD_FIELD,
			 "server URL or token is too long");
	else if (!ca_file ||
		 !ca_path(ca_file, r->ca_file, sizeof(r->ca_file), err)) {
		r->base.ops = &curl_ops;
		memcpy(r->base.url, url, len);
		snprintf(r->auth, sizeof(r->auth), "Authorization: Bearer %s",
			 token);
		r->timeout_s = timeout_s;
		return &r->base;
	}
	free(r);
	return NULL;
}

const char *remote_curl_last_url(const struct remote_conn *c)
{
	return ((const struct curl_conn *)c)->url;
}

void remote_curl_global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void remote_curl_global_cleanup(void)
{
	curl_global_cleanup();
}
