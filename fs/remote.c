/* The protocol client over libcurl (fs/remote.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloudfs/buf.h"
#include "cloudfs/json.h"
#include "fs/remote.h"

/* The largest JSON answer accepted: a full page of a listing is far less. */
#define MAX_ANSWER  (64u * 1024 * 1024)
/* libcurl's receive buffer: large buffers matter for 4 MiB blocks. */
#define RECV_BUFFER (512 * 1024)

struct remote_conn {
	const struct remote *r;
	CURLM *multi; /* drives curl, so another thread can wake a call */
	CURL *curl;
	struct curl_slist *headers;
	struct cfs_buf answer;
	bool untrusted; /* the last call's certificate did not verify */
};

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

enum cfs_err remote_init(struct remote *r, const char *url, const char *token,
			 const char *ca_file, unsigned timeout_s,
			 struct cfs_error *err)
{
	size_t len = strlen(url);

	memset(r, 0, sizeof(*r));
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return cfs_fail(
			err, CFS_ERR_BAD_FIELD,
			"server URL '%s' must start with http:// or https://",
			url);
	while (len && url[len - 1] == '/')
		len--;
	if (len >= sizeof(r->url) || strlen(token) + 32 >= sizeof(r->auth))
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"server URL or token is too long");
	if (ca_file && ca_path(ca_file, r->ca_file, sizeof(r->ca_file), err))
		return err->code;
	memcpy(r->url, url, len);
	snprintf(r->auth, sizeof(r->auth), "Authorization: Bearer %s", token);
	r->timeout_s = timeout_s;
	return CFS_OK;
}

void remote_setup(const struct remote *r, CURL *curl)
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

struct curl_slist *remote_block_headers(const struct remote *r)
{
	struct curl_slist *h = curl_slist_append(NULL, r->auth);

	/* libcurl waits for "100 Continue" before a body of more than 1 KiB:
	 * a round trip for nothing. */
	return h ? curl_slist_append(h, "Expect:") : NULL;
}

struct remote_conn *remote_conn_new(const struct remote *r)
{
	struct remote_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->r = r;
	c->multi = curl_multi_init();
	c->curl = curl_easy_init();
	c->headers = remote_block_headers(r);
	if (c->headers)
		c->headers = curl_slist_append(
			c->headers, "Content-Type: application/json");
	if (!c->multi || !c->curl || !c->headers) {
		remote_conn_free(c);
		return NULL;
	}
	cfs_buf_init(&c->answer, MAX_ANSWER);
	return c;
}

void remote_conn_free(struct remote_conn *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	curl_multi_cleanup(c->multi);
	curl_slist_free_all(c->headers);
	cfs_buf_release(&c->answer);
	free(c);
}

void remote_conn_wake(struct remote_conn *c)
{
	curl_multi_wakeup(c->multi);
}

static size_t on_answer(char *data, size_t size, size_t n, void *arg)
{
	struct remote_conn *c = arg;

	return cfs_buf_append(&c->answer, data, size * n) ? 0 : size * n;
}

enum cfs_err remote_http_error(const char *what, long status, const char *body,
			       size_t len, struct cfs_error *err)
{
	json_t *o = json_loadb(body, len, 0, NULL);
	json_t *e = json_object_get(o, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	enum cfs_err rc;

	/* An error answer is never a success, whatever code it names. */
	if (code && msg && cfs_err_from_name(code) != CFS_OK)
		rc = cfs_fail(err, cfs_err_from_name(code), "%s: %s", what,
			      msg);
	else
		rc = cfs_fail(
			err, CFS_ERR_UNREACHABLE,
			"%s: the server answered HTTP %ld, not the protocol",
			what, status);
	json_decref(o);
	return rc;
}

/* Runs the prepared request to its end, or until *stop turns true. */
static CURLcode transfer(struct remote_conn *c, const bool *stop)
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

static enum cfs_err perform(struct remote_conn *c, const char *what,
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
		return remote_http_error(what, status, c->answer.data,
					 c->answer.len, err);
	*out = json_loadb(c->answer.data, c->answer.len, 0, NULL);
	if (!json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		return cfs_fail(err, CFS_ERR_UNREACHABLE,
				"%s: the answer is not a JSON object", what);
	}
	return CFS_OK;
}

bool remote_conn_untrusted(const struct remote_conn *c)
{
	return c->untrusted;
}

enum cfs_err remote_call(struct remote_conn *c, const char *method,
			 const char *path, json_t *body, unsigned max_s,
			 const bool *stop, json_t **out, struct cfs_error *err)
{
	char url[1024], what[256];
	char *text = NULL;
	enum cfs_err rc;

	*out = NULL;
	snprintf(what, sizeof(what), "%s %s", method, path);
	if ((size_t)snprintf(url, sizeof(url), "%s%s", c->r->url, path) >=
	    sizeof(url))
		return cfs_fail(err, CFS_ERR_BAD_FIELD, "%s: URL too long",
				what);
	if (body && !(text = json_dumps(body, JSON_COMPACT)))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	cfs_buf_release(&c->answer);
	curl_easy_reset(c->curl);
	remote_setup(c->r, c->curl);
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
	rc = perform(c, what, stop, out, err);
	free(text);
	return rc;
}

CURL *remote_block_easy(const struct remote *r, const struct cfs_block_id *id,
			struct curl_slist *headers, curl_write_callback write,
			void *arg)
{
	char url[700], hex[CFS_BLOCK_ID_HEX_LEN + 1];
	CURL *curl = curl_easy_init();

	if (!curl)
		return NULL;
	cfs_block_id_to_hex(id, hex);
	snprintf(url, sizeof(url), "%s/block/%s", r->url, hex);
	remote_setup(r, curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, write);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, arg);
	return curl;
}

json_t *remote_ask(const struct remote *r, const char *method, const char *path,
		   json_t *body, struct cfs_error *err)
{
	struct remote_conn *conn = remote_conn_new(r);
	json_t *answer = NULL;

	if (!conn)
		cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	else if (remote_call(conn, method, path, body, 0, NULL, &answer, err))
		answer = NULL;
	remote_conn_free(conn);
	json_decref(body);
	return answer;
}
