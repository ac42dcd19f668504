/*
 * The scale-out block store: one object per block in an S3-compatible
 * bucket, through libcurl (requests signed by CURLOPT_AWS_SIGV4).
 *
 *	PREFIX/ab/cd/abcd...   the bytes of block abcd... (64 hex digits)
 *
 * The two levels of hash prefix spread keys over the store's partitions
 * (S3 scales request rates per key prefix).  At its start the store lists
 * one key of the bucket, to show that the endpoint and the credentials
 * work.  The endpoint is addressed
 * path-style (ENDPOINT/BUCKET/KEY) or virtual-host style
 * (BUCKET.ENDPOINT-HOST/KEY).
 *
 * Invariants:
 *  1. An upload is spooled in memory (a block is at most 4 MiB, and the
 *     HTTP layer's body budget already bounds the bodies in flight), then
 *     sent by one PUT whose x-amz-content-sha256 is the block's id: the
 *     payload hash that SigV4 signs is the hash the HTTP layer checked,
 *     so the object store refuses bytes that do not match it too.  No
 *     byte touches the local disk.
 *  2. Storing a block does the same work whether or not the bucket holds
 *     it (Dropship, by timing): always one PUT, never a HEAD first.  A
 *     PUT answered 200 is durable (S3's promise), and replaces an object
 *     of the same bytes atomically.
 *  3. A download streams: read_open sends the GET and waits for the
 *     status only, so that a failure (no such object, the endpoint
 *     unreachable) is answered before the client is told 200; then the
 *     bytes go through a small buffer (the transfer pauses while it is
 *     full) as the HTTP layer pulls them.  The bytes are hashed as they
 *     pass, and the last byte is held back until the hash is the block's
 *     id: a corrupt object ends the client's connection short, never a
 *     whole wrong block.
 *  4. An unreachable endpoint, a time-out or a 5xx/SlowDown answer is
 *     CFS_ERR_UNAVAILABLE (503 to the client); every message names the
 *     method, the object, the endpoint, the HTTP status and S3's error
 *     code.
 *  5. Requests share one connection cache (a curl share handle, locked
 *     per kind of data), so uploads and downloads from any HTTP thread
 *     reuse connections to the endpoint.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cloudfs/buf.h"
#include "cloudfs/log.h"
#include "cloudfs/platform.h"
#include "server/blockstore.h"

/* What of an error answer is kept: S3's are a few hundred bytes. */
#define ERROR_BODY_MAX	  (16u * 1024)
/* Bytes of a download received and not yet pulled (invariant 3). */
#define READ_BUFFER	  (2u * CURL_MAX_WRITE_SIZE)
#define CONNECT_TIMEOUT_S 10L
/* A transfer slower than a byte a second for this long has failed. */
#define STALL_TIMEOUT_S	  30L
/* The SHA-256 of no bytes: the payload hash of GET and DELETE. */
#define EMPTY_SHA256 \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_store {
	struct blockstore base;
	char *base_url; /* up to the first byte of a key: ".../" */
	char *prefix;	/* "" or "PREFIX/" */
	char *where;	/* "s3://BUCKET at ENDPOINT", for messages */
	char *sigv4;	/* "aws:amz:REGION:s3" */
	char *access_key, *secret_key;
	CURLSH *share;
	/* Invariant 5: one lock per curl_lock_data, taken by curl only. */
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
};

/* One request to the bucket, as the blocking calls and readers make it. */
struct s3_call {
	struct s3_store *s;
	CURL *easy;
	struct curl_slist *headers;
	const char *method;
	char key[512];
	char what[600]; /* "'KEY'" or "the bucket", for messages */
	char errbuf[CURL_ERROR_SIZE];
	struct cfs_buf error_body; /* of an answer that is not 2xx */
};

struct s3_writer {
	struct blockstore_writer base;
	struct cfs_buf spool; /* invariant 1 */
	size_t sent;	      /* of spool, by the PUT's read callback */
};

struct s3_reader {
	struct blockstore_reader base;
	struct s3_call call;
	CURLM *multi;
	struct cfs_block_id id;
	struct cfs_sha256 *hash;
	long status;	   /* the final answer's, once headers_done */
	bool headers_done; /* the final answer's headers are in */
	bool done;	   /* the transfer ended, with result */
	CURLcode result;
	bool paused;	   /* the write callback refused bytes (buffer full) */
	bool verified;	   /* every byte is in and hashes to id */
	uint64_t size;	   /* Content-Length */
	uint64_t received; /* bytes hashed */
	uint64_t handed;   /* bytes given to read() callers */
	char *buf;	   /* READ_BUFFER (or more) bytes: [head, head+len) */
	size_t cap, head, len;
};

static void share_lock(CURL *easy, curl_lock_data data, curl_lock_access access,
		       void *cls)
{
	struct s3_store *s = cls;

	(void)easy;
	(void)access;
	pthread_mutex_lock(&s->locks[data]);
}

static void share_unlock(CURL *easy, curl_lock_data data, void *cls)
{
	struct s3_store *s = cls;

	(void)easy;
	pthread_mutex_unlock(&s->locks[data]);
}

/* S3's error code from an error body (<Code>NoSuchKey</Code>), or "". */
static void s3_error_code(const struct cfs_buf *body, char *code, size_t len)
{
	const char *p = body->data ? strstr(body->data, "<Code>") : NULL;
	const char *end = p ? strstr(p, "</Code>") : NULL;

	code[0] = '\0';
	if (p && end)
		snprintf(code, len, "%.*s", (int)(end - p - 6), p + 6);
}

static size_t keep_error_body(char *data, size_t one, size_t n, void *cls)
{
	struct s3_call *c = cls;
	size_t room = c->error_body.max - c->error_body.len;

	(void)one;
	/* What is past the cap is dropped: the code comes first. */
	if (cfs_buf_append(&c->error_body, data, n < room ? n : room))
		return 0;
	return n;
}

/*
 * Sets up c for method on the object of block id, with payload_hash as
 * x-amz-content-sha256; when id is NULL, for a listing of at most one
 * key of the bucket (a GET whose error answers carry S3's code, where a
 * HEAD's carry none).
 */
static enum cfs_err call_init(struct s3_call *c, struct s3_store *s,
			      const char *method, const struct cfs_block_id *id,
			      const char *payload_hash, struct cfs_error *err)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1], url[4096], header[128];
	struct curl_slist *h;
	CURLcode cc = CURLE_OK;

	memset(c, 0, sizeof(*c));
	c->s = s;
	c->method = method;
	cfs_buf_init(&c->error_body, ERROR_BODY_MAX);
	if (id) {
		cfs_block_id_to_hex(id, hex);
		snprintf(c->key, sizeof(c->key), "%s%.2s/%.2s/%s", s->prefix,
			 hex, hex + 2, hex);
	}
	if (id)
		snprintf(c->what, sizeof(c->what), "'%s'", c->key);
	else
		snprintf(c->what, sizeof(c->what), "the bucket");
	snprintf(url, sizeof(url), "%s%s", s->base_url,
		 id ? c->key : "?max-keys=1");
	snprintf(header, sizeof(header), "x-amz-content-sha256: %s",
		 payload_hash);
	c->easy = curl_easy_init();
	h = curl_slist_append(NULL, header);
	if (!c->easy || !h) {
		curl_slist_free_all(h);
		curl_easy_cleanup(c->easy);
		c->easy = NULL;
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	c->headers = h;
#define SET(opt, val)                                             \
	do {                                                      \
		if (cc == CURLE_OK)                               \
			cc = curl_easy_setopt(c->easy, opt, val); \
	} while (0)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
	SET(CURLOPT_AWS_SIGV4, s->sigv4);
	SET(CURLOPT_USERNAME, s->access_key);
	SET(CURLOPT_PASSWORD, s->secret_key);
	SET(CURLOPT_HTTPHEADER, c->headers);
	SET(CURLOPT_SHARE, s->share);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
	SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
	SET(CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_S);
	SET(CURLOPT_ERRORBUFFER, c->errbuf);
	SET(CURLOPT_WRITEFUNCTION, keep_error_body);
	SET(CURLOPT_WRITEDATA, c);
#undef SET
	if (cc)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot set up %s of %s: %s", method, c->what,
				curl_easy_strerror(cc));
	return CFS_OK;
}

static void call_release(struct s3_call *c)
{
	curl_easy_cleanup(c->easy);
	curl_slist_free_all(c->headers);
	cfs_buf_release(&c->error_body);
	c->easy = NULL;
	c->headers = NULL;
}

/* The interface's code for an answer of S3 (invariant 4). */
static enum cfs_err status_code(long status, const char *s3_code)
{
	if (status == 404)
		return CFS_ERR_NOT_FOUND;
	if (status >= 500 || strcmp(s3_code, "SlowDown") == 0)
		return CFS_ERR_UNAVAILABLE;
	return CFS_ERR_INTERNAL;
}

/*
 * The outcome of c, ended with cc and answered status (0 if none), as
 * the interface's code with a message naming what failed (invariant 4).
 */
static enum cfs_err call_outcome(struct s3_call *c, CURLcode cc, long status,
				 struct cfs_error *err)
{
	char code[64];

	if (cc != CURLE_OK)
		return cfs_fail(
			err, CFS_ERR_UNAVAILABLE, "%s of %s in %s failed: %s",
			c->method, c->what, c->s->where,
			c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc));
	if (status >= 200 && status < 300)
		return CFS_OK;
	s3_error_code(&c->error_body, code, sizeof(code));
	return cfs_fail(err, status_code(status, code),
			"%s of %s in %s failed: HTTP %ld%s%s", c->method,
			c->what, c->s->where, status, code[0] ? " " : "", code);
}

/* Runs c to its end: CFS_OK for a 2xx answer. */
static enum cfs_err call_perform(struct s3_call *c, struct cfs_error *err)
{
	CURLcode cc = curl_easy_perform(c->easy);
	long status = 0;

	if (cc == CURLE_OK)
		curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
	return call_outcome(c, cc, status, err);
}

static enum cfs_err s3_write_begin(struct blockstore *bs,
				   struct blockstore_writer **out,
				   struct cfs_error *err)
{
	struct s3_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	w->base.bs = bs;
	cfs_buf_init(&w->spool, CFS_BLOCK_SIZE);
	*out = &w->base;
	return CFS_OK;
}

static enum cfs_err s3_write(struct blockstore_writer *bw, const void *data,
			     size_t len, struct cfs_error *err)
{
	struct s3_writer *w = (struct s3_writer *)bw;
	int e = cfs_buf_append(&w->spool, data, len);

	if (e)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot keep %zu bytes of an upload: %s",
				w->spool.len + len, strerror(-e));
	return CFS_OK;
}

static void s3_write_abort(struct blockstore_writer *bw)
{
	struct s3_writer *w = (struct s3_writer *)bw;

	cfs_buf_release(&w->spool);
	free(w);
}

static size_t put_read(char *buf, size_t one, size_t n, void *cls)
{
	struct s3_writer *w = cls;
	size_t left = w->spool.len - w->sent;

	(void)one;
	if (n > left)
		n = left;
	memcpy(buf, w->spool.data + w->sent, n);
	w->sent += n;
	return n;
}

/* Rewinds the body when curl sends it again (a redirect, an auth retry). */
static int put_seek(void *cls, curl_off_t offset, int origin)
{
	struct s3_writer *w = cls;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > w->spool.len)
		return CURL_SEEKFUNC_FAIL;
	w->sent = (size_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* Invariants 1 and 2. */
static enum cfs_err s3_write_finish(struct blockstore_writer *bw,
				    const struct cfs_block_id *id,
				    struct cfs_error *err)
{
	struct s3_writer *w = (struct s3_writer *)bw;
	struct s3_store *s = (struct s3_store *)bw->bs;
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	struct s3_call c;
	enum cfs_err rc;
	CURLcode cc = CURLE_OK;

	cfs_block_id_to_hex(id, hex);
	rc = call_init(&c, s, "PUT", id, hex, err);
	if (rc == CFS_OK) {
		cc = curl_easy_setopt(c.easy, CURLOPT_UPLOAD, 1L);
		if (!cc)
			cc = curl_easy_setopt(c.easy, CURLOPT_INFILESIZE_LARGE,
					      (curl_off_t)w->spool.len);
		if (!cc)
			cc = curl_easy_setopt(c.easy, CURLOPT_READFUNCTION,
					      put_read);
		if (!cc)
			cc = curl_easy_setopt(c.easy, CURLOPT_READDATA, w);
		if (!cc)
			cc = curl_easy_setopt(c.easy, CURLOPT_SEEKFUNCTION,
					      put_seek);
		if (!cc)
			cc = curl_easy_setopt(c.easy, CURLOPT_SEEKDATA, w);
		rc = cc ? cfs_fail(err, CFS_ERR_INTERNAL,
				   "cannot set up PUT of '%s': %s", c.key,
				   curl_easy_strerror(cc))
			: call_perform(&c, err);
	}
	call_release(&c);
	s3_write_abort(bw);
	return rc;
}

/* Invariant 3: the headers of the final answer (not of a 100 Continue). */
static size_t reader_header(char *line, size_t one, size_t n, void *cls)
{
	struct s3_reader *r = cls;
	long status = 0;

	(void)one;
	if ((n == 2 && line[0] == '\r') || (n == 1 && line[0] == '\n')) {
		curl_easy_getinfo(r->call.easy, CURLINFO_RESPONSE_CODE,
				  &status);
		if (status >= 200) {
			r->status = status;
			r->headers_done = true;
		}
	}
	return n;
}

/* Invariant 3: bytes into the buffer, or a pause while it is full. */
static size_t reader_body(char *data, size_t one, size_t n, void *cls)
{
	struct s3_reader *r = cls;

	(void)one;
	if (r->status != 200)
		return keep_error_body(data, one, n, &r->call);
	if (n > CFS_BLOCK_SIZE - r->received)
		return 0; /* more than a block: the transfer fails */
	if (r->len == 0)
		r->head = 0;
	if (n > r->cap - r->head - r->len && r->head) {
		memmove(r->buf, r->buf + r->head, r->len);
		r->head = 0;
	}
	if (n > r->cap - r->len) {
		char *bigger;

		if (r->len) {
			r->paused = true;
			return CURL_WRITEFUNC_PAUSE;
		}
		/* An empty buffer takes whatever curl hands over at once. */
		bigger = realloc(r->buf, n);
		if (!bigger)
			return 0;
		r->buf = bigger;
		r->cap = n;
	}
	if (cfs_sha256_update(r->hash, data, n))
		return 0;
	memcpy(r->buf + r->head + r->len, data, n);
	r->len += n;
	r->received += n;
	return n;
}

/* Moves the transfer on: waits (up to a second) for the socket, then
 * lets curl do what it can.  CFS_OK or a failure of curl's multi API. */
static enum cfs_err reader_step(struct s3_reader *r, bool wait,
				struct cfs_error *err)
{
	CURLMcode mc = CURLM_OK;
	CURLMsg *m;
	int running, left;

	if (wait)
		mc = curl_multi_poll(r->multi, NULL, 0, 1000, NULL);
	if (mc == CURLM_OK)
		mc = curl_multi_perform(r->multi, &running);
	if (mc != CURLM_OK)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"GET of '%s' in %s failed: %s", r->call.key,
				r->call.s->where, curl_multi_strerror(mc));
	while ((m = curl_multi_info_read(r->multi, &left)))
		if (m->msg == CURLMSG_DONE) {
			r->done = true;
			r->result = m->data.result;
		}
	return CFS_OK;
}

static void s3_read_close(struct blockstore_reader *br)
{
	struct s3_reader *r = (struct s3_reader *)br;

	if (r->multi && r->call.easy)
		curl_multi_remove_handle(r->multi, r->call.easy);
	call_release(&r->call);
	curl_multi_cleanup(r->multi);
	cfs_sha256_free(r->hash);
	free(r->buf);
	free(r);
}

static enum cfs_err reader_start(struct s3_reader *r, uint64_t *size,
				 struct cfs_error *err)
{
	curl_off_t length = -1;
	enum cfs_err rc = CFS_OK;
	bool first = true;

	r->hash = cfs_sha256_new();
	r->buf = malloc(READ_BUFFER);
	r->cap = READ_BUFFER;
	r->multi = curl_multi_init();
	if (!r->hash || !r->buf || !r->multi ||
	    curl_easy_setopt(r->call.easy, CURLOPT_HEADERFUNCTION,
			     reader_header) ||
	    curl_easy_setopt(r->call.easy, CURLOPT_HEADERDATA, r) ||
	    curl_easy_setopt(r->call.easy, CURLOPT_WRITEFUNCTION,
			     reader_body) ||
	    curl_easy_setopt(r->call.easy, CURLOPT_WRITEDATA, r) ||
	    curl_multi_add_handle(r->multi, r->call.easy))
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot set up GET of '%s': out of memory",
				r->call.key);
	/* An error answer is read whole: its body names S3's code. */
	while (rc == CFS_OK && !r->done &&
	       !(r->headers_done && r->status == 200)) {
		rc = reader_step(r, !first, err);
		first = false;
	}
	if (rc)
		return rc;
	if (!r->headers_done || r->status != 200)
		return call_outcome(&r->call, r->result, r->status, err);
	curl_easy_getinfo(r->call.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
			  &length);
	if (length < 1 || length > CFS_BLOCK_SIZE)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"GET of '%s' in %s answered %lld bytes, not "
				"1 to 4194304",
				r->call.key, r->call.s->where,
				(long long)length);
	r->size = *size = (uint64_t)length;
	return CFS_OK;
}

static enum cfs_err s3_read_open(struct blockstore *bs,
				 const struct cfs_block_id *id,
				 struct blockstore_reader **out, uint64_t *size,
				 struct cfs_error *err)
{
	struct s3_reader *r = calloc(1, sizeof(*r));
	enum cfs_err rc;

	if (!r)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	r->base.bs = bs;
	r->id = *id;
	rc = call_init(&r->call, (struct s3_store *)bs, "GET", id, EMPTY_SHA256,
		       err);
	if (rc == CFS_OK)
		rc = reader_start(r, size, err);
	if (rc) {
		s3_read_close(&r->base);
		return rc;
	}
	*out = &r->base;
	return CFS_OK;
}

/* The transfer ended: all the bytes promised, hashing to the id. */
static enum cfs_err reader_verify(struct s3_reader *r, struct cfs_error *err)
{
	char hex[CFS_BLOCK_ID_HEX_LEN + 1];
	struct cfs_block_id got;
	enum cfs_err rc = call_outcome(&r->call, r->result, r->status, err);

	if (rc)
		return rc;
	if (r->received != r->size)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"GET of '%s' in %s ended after %llu of %llu "
				"bytes",
				r->call.key, r->call.s->where,
				(unsigned long long)r->received,
				(unsigned long long)r->size);
	if (cfs_sha256_final(r->hash, &got))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	if (!cfs_block_id_equal(&got, &r->id)) {
		cfs_block_id_to_hex(&got, hex);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"object '%s' in %s is corrupt: it hashes to %s",
				r->call.key, r->call.s->where, hex);
	}
	r->verified = true;
	return CFS_OK;
}

/* Invariant 3. */
static enum cfs_err s3_read(struct blockstore_reader *br, char *buf, size_t max,
			    size_t *got, struct cfs_error *err)
{
	struct s3_reader *r = (struct s3_reader *)br;
	enum cfs_err rc;
	size_t n;

	for (;;) {
		n = r->len < max ? r->len : max;
		/* The last byte waits for the hash (invariant 3). */
		if (!r->verified && n && r->handed + n == r->size)
			n--;
		if (n) {
			memcpy(buf, r->buf + r->head, n);
			r->head += n;
			r->len -= n;
			r->handed += n;
			*got = n;
			return CFS_OK;
		}
		if (r->verified && r->len == 0) {
			*got = 0;
			return CFS_OK;
		}
		if (r->paused) {
			r->paused = false;
			/* curl hands over what it held, in this call. */
			if (curl_easy_pause(r->call.easy, CURLPAUSE_CONT))
				return cfs_fail(err, CFS_ERR_INTERNAL,
						"cannot resume GET of '%s'",
						r->call.key);
			continue;
		}
		if (r->done) {
			rc = reader_verify(r, err);
			if (rc)
				return rc;
			continue;
		}
		rc = reader_step(r, true, err);
		if (rc)
			return rc;
	}
}

static enum cfs_err s3_remove(struct blockstore *bs,
			      const struct cfs_block_id *id,
			      struct cfs_error *err)
{
	struct s3_call c;
	enum cfs_err rc;

	rc = call_init(&c, (struct s3_store *)bs, "DELETE", id, EMPTY_SHA256,
		       err);
	if (rc == CFS_OK)
		rc = call_perform(&c, err);
	call_release(&c);
	return rc == CFS_ERR_NOT_FOUND ? CFS_OK : rc;
}

static void s3_close(struct blockstore *bs)
{
	struct s3_store *s = (struct s3_store *)bs;

	curl_share_cleanup(s->share);
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->locks[i]);
	free(s->base_url);
	free(s->prefix);
	free(s->where);
	free(s->sigv4);
	free(s->access_key);
	free(s->secret_key);
	free(s);
	curl_global_cleanup();
}

static const struct blockstore_ops s3_ops = {
	.close = s3_close,
	.write_begin = s3_write_begin,
	.write = s3_write,
	.write_finish = s3_write_finish,
	.write_abort = s3_write_abort,
	.read_open = s3_read_open,
	.read = s3_read,
	.read_close = s3_read_close,
	.remove = s3_remove,
};

/* ENDPOINT/BUCKET/ or, virtual-host style, BUCKET.HOST of ENDPOINT/. */
static char *make_base_url(const struct blockstore_s3_config *c)
{
	CURLU *u = curl_url();
	char *host = NULL, *vhost = NULL, *url = NULL, *base = NULL;
	size_t len = strlen(c->endpoint);

	if (c->path_style) {
		if (len && c->endpoint[len - 1] == '/')
			len--;
		if (asprintf(&base, "%.*s/%s/", (int)len, c->endpoint,
			     c->bucket) < 0)
			base = NULL;
		curl_url_cleanup(u);
		return base;
	}
	if (u && !curl_url_set(u, CURLUPART_URL, c->endpoint, 0) &&
	    !curl_url_get(u, CURLUPART_HOST, &host, 0) &&
	    asprintf(&vhost, "%s.%s", c->bucket, host) >= 0 &&
	    !curl_url_set(u, CURLUPART_HOST, vhost, 0) &&
	    !curl_url_set(u, CURLUPART_PATH, "/", 0) &&
	    !curl_url_get(u, CURLUPART_URL, &url, 0))
		base = strdup(url);
	curl_free(host);
	curl_free(url);
	free(vhost);
	curl_url_cleanup(u);
	return base;
}

static enum cfs_err s3_setup(struct s3_store *s,
			     const struct blockstore_s3_config *c,
			     struct cfs_error *err)
{
	size_t plen = strlen(c->prefix);

	s->base_url = make_base_url(c);
	if (!s->base_url)
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot make a URL of endpoint '%s' and bucket "
				"'%s'",
				c->endpoint, c->bucket);
	if (asprintf(&s->prefix, "%.*s%s", (int)plen, c->prefix,
		     plen && c->prefix[plen - 1] != '/' ? "/" : "") < 0 ||
	    asprintf(&s->where, "s3://%s at %s", c->bucket, c->endpoint) < 0 ||
	    asprintf(&s->sigv4, "aws:amz:%s:s3", c->region) < 0 ||
	    !(s->access_key = strdup(c->access_key)) ||
	    !(s->secret_key = strdup(c->secret_key)))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	s->share = curl_share_init();
	if (!s->share ||
	    curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock) ||
	    curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock) ||
	    curl_share_setopt(s->share, CURLSHOPT_USERDATA, s) ||
	    curl_share_setopt(s->share, CURLSHOPT_SHARE,
			      CURL_LOCK_DATA_CONNECT) ||
	    curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS))
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot set up a connection cache for %s",
				s->where);
	return CFS_OK;
}

/* The bucket answers a listing with these credentials: a wrong key,
 * secret, bucket or endpoint stops the server at its start, not at its
 * first upload. */
static enum cfs_err check_bucket(struct s3_store *s, struct cfs_error *err)
{
	struct s3_call c;
	enum cfs_err rc;

	rc = call_init(&c, s, "GET", NULL, EMPTY_SHA256, err);
	if (rc == CFS_OK)
		rc = call_perform(&c, err);
	call_release(&c);
	return rc;
}

enum cfs_err blockstore_s3_open(const struct blockstore_s3_config *c,
				struct blockstore **out, struct cfs_error *err)
{
	struct s3_store *s;
	enum cfs_err rc;

	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot initialize libcurl");
	s = calloc(1, sizeof(*s));
	if (!s) {
		curl_global_cleanup();
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	s->base.ops = &s3_ops;
	for (size_t i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s->locks[i], NULL);
	rc = s3_setup(s, c, err);
	if (rc == CFS_OK)
		rc = check_bucket(s, err);
	if (rc) {
		s3_close(&s->base);
		return rc;
	}
	*out = &s->base;
	return CFS_OK;
}
