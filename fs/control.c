/* The mount's control socket (fs/control.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "cache/inspect.h"
#include "cache/local.h"
#include "cache/refused.h"
#include "cache/upkeep.h"
#include "cloudfs/clock.h"
#include "cloudfs/cmdtable.h"
#include "cloudfs/log.h"
#include "cloudfs/platform.h"
#include "fs/control.h"
#include "fs/fetch.h"
#include "fs/fs.h"
#include "fs/session.h"
#include "fs/history.h"
#include "fs/share.h"
#include "fs/upload.h"

/* How many failing changes a status names (the count is of all). */
#define STATUS_FAILING_MAX 20

#define REQUEST_MAX  4096
#define READ_WAIT_MS 5000

struct control {
	struct fs *fs;
	struct sockaddr_un addr;
	int fd;
	int stop_pipe[2];
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t idle;
	unsigned busy; /* connections being answered */
	bool stop;
};

struct conn {
	struct control *c;
	int fd;
};

static bool stopping(struct control *c)
{
	return __atomic_load_n(&c->stop, __ATOMIC_RELAXED);
}

static json_t *failure(const char *fmt, const char *what)
{
	char msg[512];

	snprintf(msg, sizeof(msg), fmt, what);
	return json_pack("{s:s}", "error", msg);
}

/* The namespaces followed, with their heads on the server (null when it
 * cannot be asked). */
static json_t *namespaces_json(struct fs *fs, struct cfs_sql *db,
			       struct cfs_error *err)
{
	struct remote_conn *rc_conn = remote_conn_new(fs->remote);
	struct remote_ns *heads = NULL;
	struct mirror_ns *list = NULL;
	json_t *out = json_array();
	const bool never = false;
	size_t n = 0, n_heads = 0;
	bool reached = rc_conn && remote_namespaces(rc_conn, 5, &never, &heads,
						    &n_heads, err) == CFS_OK;

	if (mirror_namespaces(db, &list, &n, err) != CFS_OK)
		n = 0;
	for (size_t k = 0; out && k < n; k++) {
		json_t *head = json_null();

		for (size_t i = 0; i < n_heads; i++)
			if (heads[i].ns == list[k].ns)
				head = json_integer(heads[i].head);
		json_array_append_new(
			out, json_pack("{s:I, s:I, s:o, s:b}", "ns",
				       (json_int_t)list[k].ns, "cursor",
				       (json_int_t)list[k].cursor, "head", head,
				       "listed", list[k].listed));
	}
	free(list);
	remote_ns_free(heads, n_heads);
	remote_conn_free(rc_conn);
	return json_pack("{s:o, s:b, s:s?}", "namespaces", out, "server",
			 reached, "server_error", reached ? NULL : err->msg);
}

/* The inodes whose changes are being sent now. */
static json_t *uploading_json(struct fs *fs)
{
	size_t n;
	uint64_t *inos = uploader_sending(fs->upload, &n);
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_integer((json_int_t)inos[i]));
	free(inos);
	return a;
}

/* The largest file being sent, with its bytes on the server (null:
 * none). */
static json_t *progress_json(struct fs *fs)
{
	uint64_t sent, size;
	char *path;
	json_t *o;

	if (!uploader_progress(fs->upload, &path, &sent, &size))
		return json_null();
	o = json_pack("{s:s, s:I, s:I}", "path", path, "sent", (json_int_t)sent,
		      "size", (json_int_t)size);
	free(path);
	return o;
}

/* The first failing operations of the queue, each with its path, tries
 * and why (NULL: out of memory or a failed read, said in err). */
static json_t *failing_json(struct cfs_sql *db, struct cfs_error *err)
{
	struct queue_failure *v;
	size_t n;
	json_t *a;

	if (queue_failing(db, STATUS_FAILING_MAX, &v, &n, err))
		return NULL;
	a = json_array();
	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(
			    a, json_pack("{s:s, s:I, s:s}", "path", v[i].path,
					 "tries", (json_int_t)v[i].tries, "why",
					 v[i].why))) {
			json_decref(a);
			a = NULL;
		}
	queue_failures_free(v, n);
	if (!a)
		cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	return a;
}

/* The status; with_server: also the namespaces against the server's
 * heads (a request to it). */
static json_t *do_status(struct fs *fs, bool with_server)
{
	/* Before the queue: a settling file is queued, then leaves the
	 * table; counted the other way round, one settling in between was
	 * in neither, and status --wait said all was sent (test_cli.py). */
	size_t open_writes = sessions_count(fs->sessions);
	struct inspect_usage u;
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);
	uint64_t hits, misses, fetching;
	int64_t failing = 0, refused = 0;
	char refused_dir[PATH_MAX + 16];
	bool found;
	json_t *o, *more, *failures = NULL;

	if (!db)
		return failure("%s", err.msg);
	snprintf(refused_dir, sizeof(refused_dir), "%s/refused",
		 fs->cache->path);
	if (inspect_usage(fs->cache, db, &u, &err) ||
	    refused_count(fs->cache, &refused, &err) ||
	    cfs_sql_int64(
		    db,
		    cfs_sql_stmt(db, "SELECT COUNT(*) FROM ops WHERE tries > 0",
				 &err, ""),
		    &failing, &found, &err) ||
	    !(failures = failing_json(db, &err))) {
		cache_db_release(fs->cache, db);
		return failure("%s", err.msg);
	}
	o = with_server ? namespaces_json(fs, db, &err) : json_object();
	cache_db_release(fs->cache, db);
	fetcher_stats(fs->fetch, &hits, &misses, &fetching);
	more = json_pack(
		"{s:s, s:I, s:I, s:I, s:I, s:o, s:I, s:I, s:s, s:b, s:I, s:I, s:I,"
		" s:o, s:o}",
		"mountpoint", fs->opt.mountpoint, "pending_ops",
		(json_int_t)u.pending_ops, "pending_bytes",
		(json_int_t)u.pending_bytes, "open_writes",
		(json_int_t)open_writes, "retrying", (json_int_t)failing,
		"failing", failures, "conflicts", (json_int_t)u.conflicts,
		"refused", (json_int_t)refused, "refused_dir", refused_dir,
		"cache_full", keeper_full(fs->keeper), "hits", (json_int_t)hits,
		"misses", (json_int_t)misses, "fetching", (json_int_t)fetching,
		"uploading", uploading_json(fs), "upload_progress",
		progress_json(fs));
	if (!o || !more || json_object_update_missing(o, more)) {
		json_decref(o);
		o = failure("%s", "out of memory");
	}
	json_decref(more);
	return o;
}

/* cloudfs cache stat: the cache's numbers, with the block reads since
 * mount. */
static json_t *do_stat(struct fs *fs)
{
	struct cfs_error err;
	uint64_t hits, misses, fetching;
	json_t *o = inspect_stat_json(fs->cache, &err);

	if (!o)
		return failure("%s", err.msg);
	fetcher_stats(fs->fetch, &hits, &misses, &fetching);
	if (json_object_set_new(o, "hits", json_integer((json_int_t)hits)) ||
	    json_object_set_new(o, "misses",
				json_integer((json_int_t)misses))) {
		json_decref(o);
		return failure("%s", "out of memory");
	}
	return o;
}

/* cloudfs stats: what the mount did since it started, read from the
 * counters of the threads that do it, and the queue's length now. */
static json_t *do_stats(struct fs *fs)
{
	struct fetch_counts f;
	struct upload_counts up;
	struct inspect_usage u;
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);
	uint64_t hits, misses, fetching, longpolls, sync_failures;
	enum cfs_err rc =
		db ? inspect_usage(fs->cache, db, &u, &err) : err.code;
	json_t *o;

	if (db)
		cache_db_release(fs->cache, db);
	if (rc)
		return failure("%s", err.msg);
	fetcher_stats(fs->fetch, &hits, &misses, &fetching);
	fetcher_counts(fs->fetch, &f);
	uploader_counts(fs->upload, &up);
	sync_counts(fs->sync, &longpolls, &sync_failures);
	o = json_pack(
		"{s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
		" s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
		" s:{s:I, s:I, s:I}}",
		"mountpoint", fs->opt.mountpoint, "reads", "hits",
		(json_int_t)f.hits, "misses", (json_int_t)f.misses,
		"fetched_blocks", (json_int_t)f.blocks, "fetched_bytes",
		(json_int_t)f.bytes, "refetched", (json_int_t)f.refetched,
		"fetch_failures", (json_int_t)f.failed, "fetching",
		(json_int_t)fetching, "uploads", "blocks",
		(json_int_t)up.blocks, "bytes", (json_int_t)up.bytes, "commits",
		(json_int_t)up.commits, "committed", (json_int_t)up.committed,
		"failures", (json_int_t)up.failures, "queue",
		(json_int_t)u.pending_ops, "queue_bytes",
		(json_int_t)u.pending_bytes, "sync", "longpolls",
		(json_int_t)longpolls, "failures", (json_int_t)sync_failures,
		"streamed", (json_int_t)sync_streamed(fs->sync));
	return o ? o : failure("%s", "out of memory");
}

/* The inode a request names: "ino", or else "path" in the mount's tree
 * (0 with err set when there is no such path, or the request names
 * none: the caller says whether that is wrong). */
static uint64_t request_ino(struct cfs_sql *db, json_t *req,
			    struct cfs_error *err)
{
	uint64_t ino =
		(uint64_t)json_integer_value(json_object_get(req, "ino"));
	const char *path = json_string_value(json_object_get(req, "path"));

	if (!ino && !path)
		cfs_fail(err, CFS_ERR_BAD_FIELD,
			 "the request names no entry: \"ino\" or \"path\"");
	if (ino || !path)
		return ino;
	return inspect_path_ino(db, path, &ino, err) ? 0 : ino;
}

/* cloudfs cache ls: entry "ino" (or "path"), or a folder's entries. */
static json_t *do_ls(struct fs *fs, json_t *req)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);
	json_t *uploading = uploading_json(fs), *o = NULL;
	uint64_t ino;

	if (db) {
		ino = request_ino(db, req, &err);
		o = ino ? inspect_ls_json(db, ino, uploading, &err) : NULL;
		cache_db_release(fs->cache, db);
	}
	json_decref(uploading);
	return o ? o : failure("%s", err.msg);
}

/* evict, verify or gc below entry "ino" (or "path"; neither: all). */
static json_t *do_upkeep(struct fs *fs, const char *cmd, json_t *req)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);
	uint64_t under = 0;
	json_t *o;

	if (!db)
		return failure("%s", err.msg);
	under = request_ino(db, req, &err);
	cache_db_release(fs->cache, db);
	if (!under && json_object_get(req, "path"))
		return failure("%s", err.msg);
	/* A block read a moment ago counts as cached. */
	fetcher_drain(fs->fetch);
	o = upkeep_json(
		fs->cache, cmd, under,
		(uint64_t)json_integer_value(json_object_get(req, "keep")),
		&err);
	return o ? o : failure("%s", err.msg);
}

static json_t *do_pin(struct fs *fs, json_t *req)
{
	struct cfs_error err;
	struct cfs_sql *db = cache_db(fs->cache, &err);
	enum cfs_err rc =
		db ? inspect_pin(db,
				 (uint64_t)json_integer_value(
					 json_object_get(req, "ino")),
				 json_is_true(json_object_get(req, "pin")),
				 &err)
		   : err.code;

	if (db)
		cache_db_release(fs->cache, db);
	return rc ? failure("%s", err.msg) : json_object();
}

static json_t *answer_status(struct fs *fs, const char *cmd, json_t *req)
{
	(void)cmd;
	if (json_is_true(json_object_get(req, "wait")))
		uploader_hurry(fs->upload);
	return do_status(fs, !json_is_false(json_object_get(req, "server")));
}

static json_t *answer_stat(struct fs *fs, const char *cmd, json_t *req)
{
	(void)cmd, (void)req;
	return do_stat(fs);
}

static json_t *answer_stats(struct fs *fs, const char *cmd, json_t *req)
{
	(void)cmd, (void)req;
	return do_stats(fs);
}

static json_t *answer_ls(struct fs *fs, const char *cmd, json_t *req)
{
	(void)cmd;
	return do_ls(fs, req);
}

static json_t *answer_pin(struct fs *fs, const char *cmd, json_t *req)
{
	(void)cmd;
	return do_pin(fs, req);
}

/* Blocks read a moment ago are stored by a thread of the fetcher: once
 * this answers, they count as cached. */
static json_t *answer_drain(struct fs *fs, const char *cmd, json_t *req)
{
	(void)cmd, (void)req;
	fetcher_drain(fs->fetch);
	return json_object();
}

/* The requests of the control socket ("cmd"), each with its answer. */
static const struct control_command {
	const char *cmd;
	json_t *(*answer)(struct fs *fs, const char *cmd, json_t *req);
} commands[] = {
	{ .cmd = "status", .answer = answer_status },
	{ .cmd = "stat", .answer = answer_stat },
	{ .cmd = "stats", .answer = answer_stats },
	{ .cmd = "ls", .answer = answer_ls },
	{ .cmd = "evict", .answer = do_upkeep },
	{ .cmd = "verify", .answer = do_upkeep },
	{ .cmd = "gc", .answer = do_upkeep },
	{ .cmd = "pin", .answer = answer_pin },
	{ .cmd = "drain", .answer = answer_drain },
	{ .cmd = "share", .answer = share_member_answer },
	{ .cmd = "unshare", .answer = share_member_answer },
	{ .cmd = "leave", .answer = share_member_answer },
	{ .cmd = "shares", .answer = share_list_answer },
	{ .cmd = "history", .answer = history_list_answer },
	{ .cmd = "restore", .answer = history_restore_answer },
};

static json_t *answer(struct control *c, json_t *req)
{
	const char *cmd = json_string_value(json_object_get(req, "cmd"));
	const struct control_command *command;

	if (!cmd)
		return failure("%s", "a request needs \"cmd\"");
	command = CFS_CMDTABLE_FIND(commands, cmd);
	if (command)
		return command->answer(c->fs, cmd, req);
	return failure("unknown command '%s'", cmd);
}

/*
 * Reads one line (the request) within READ_WAIT_MS in all.  A signal
 * that lands on this thread (any of the process's may take one) does not
 * cut the request short: it would be answered as malformed.
 */
static ssize_t read_request(int fd, char *buf, size_t cap)
{
	uint64_t deadline = cfs_monotonic_ms() + READ_WAIT_MS;
	size_t len = 0;

	while (len < cap - 1 && !memchr(buf, '\n', len)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		uint64_t now = cfs_monotonic_ms();
		int ready =
			now < deadline ? poll(&p, 1, (int)(deadline - now)) : 0;
		ssize_t k;

		if (ready < 0 && errno == EINTR)
			continue;
		if (ready <= 0)
			return -1;
		k = read(fd, buf + len, cap - 1 - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -1 : (ssize_t)len;
		len += (size_t)k;
	}
	buf[len] = '\0';
	return (ssize_t)len;
}

static void *serve_conn(void *arg)
{
	struct conn *k = arg;
	struct control *c = k->c;
	char buf[REQUEST_MAX];
	json_error_t jerr;
	ssize_t n = read_request(k->fd, buf, sizeof(buf));
	json_t *req =
		n > 0 ? json_loads(buf, JSON_DISABLE_EOF_CHECK, &jerr) : NULL;
	json_t *out = req ? answer(c, req)
			  : failure("%s", "the request is not one JSON object");
	char *text = out ? json_dumps(out, JSON_COMPACT) : NULL;

	if (text) {
		size_t len = strlen(text), at = 0;

		text[len] = '\n';
		while (at <= len) {
			ssize_t w = write(k->fd, text + at, len + 1 - at);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				break;
			at += (size_t)w;
		}
	}
	free(text);
	json_decref(out);
	json_decref(req);
	close(k->fd);
	free(k);
	pthread_mutex_lock(&c->lock);
	if (--c->busy == 0)
		pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void *accept_thread(void *arg)
{
	struct control *c = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN },
				       { .fd = c->stop_pipe[0],
					 .events = POLLIN } };
		struct conn *k;
		pthread_t t;
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents || stopping(c))
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = platform_accept(c->fd);
		k = fd >= 0 ? malloc(sizeof(*k)) : NULL;
		if (!k) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		*k = (struct conn){ .c = c, .fd = fd };
		pthread_mutex_lock(&c->lock);
		c->busy++;
		pthread_mutex_unlock(&c->lock);
		if (pthread_create(&t, NULL, serve_conn, k) == 0) {
			pthread_detach(t);
		} else {
			close(fd);
			free(k);
			pthread_mutex_lock(&c->lock);
			c->busy--;
			pthread_mutex_unlock(&c->lock);
		}
	}
	return NULL;
}

struct control *control_start(struct fs *fs)
{
	struct control *c = calloc(1, sizeof(*c));
	struct sockaddr_un *addr;
	size_t len = strlen(fs->cache->path);

	if (!c)
		return NULL;
	addr = &c->addr;
	addr->sun_family = AF_UNIX;
	c->fs = fs;
	c->stop_pipe[0] = c->stop_pipe[1] = -1;
	if (len + sizeof("/control") > sizeof(addr->sun_path)) {
		cfs_log_warn(
			"no control socket: '%s/control' is longer than a socket path may be; cloudfs commands cannot reach this mount",
			fs->cache->path);
		free(c);
		return NULL;
	}
	memcpy(addr->sun_path, fs->cache->path, len);
	memcpy(addr->sun_path + len, "/control", sizeof("/control"));
	unlink(addr->sun_path);
	c->fd = platform_socket(AF_UNIX, SOCK_STREAM, 0);
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)addr, sizeof(*addr)) ||
	    listen(c->fd, 16) || platform_pipe(c->stop_pipe)) {
		cfs_log_warn("no control socket at '%s': %s", addr->sun_path,
			     strerror(errno));
		goto fail;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->idle, NULL);
	if (pthread_create(&c->thread, NULL, accept_thread, c) == 0)
		return c;
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->lock);
fail:
	if (c->fd >= 0)
		close(c->fd);
	for (int i = 0; i < 2; i++)
		if (c->stop_pipe[i] >= 0)
			close(c->stop_pipe[i]);
	free(c);
	return NULL;
}

void control_stop(struct control *c)
{
	if (!c)
		return;
	__atomic_store_n(&c->stop, true, __ATOMIC_RELAXED);
	if (write(c->stop_pipe[1], "x", 1) < 0)
		cfs_log_warn("cannot stop the control socket's thread");
	pthread_join(c->thread, NULL);
	pthread_mutex_lock(&c->lock);
	while (c->busy)
		pthread_cond_wait(&c->idle, &c->lock);
	pthread_mutex_unlock(&c->lock);
	unlink(c->addr.sun_path);
	close(c->fd);
	close(c->stop_pipe[0]);
	close(c->stop_pipe[1]);
	pthread_cond_destroy(&c->idle);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
