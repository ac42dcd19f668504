/*
 * The remote: everything the mount asks of the server, as typed calls
 * (struct remote_ops), with one implementation per kind of server behind
 * them.  fs/remote_curl.c speaks cloudfs-protocol(7) over libcurl and owns
 * all wire code: URLs, JSON, HTTP statuses, connection reuse;
 * fs/remote_fake.c is an in-process fake server for the unit tests
 * (fs/remote_fake.h).  Nothing above this header builds a URL or reads
 * the protocol's JSON.
 *
 * A struct remote is one server; a struct remote_conn is one thread's
 * keep-alive connection to it, for one call at a time; a struct
 * remote_xfers is a set of block transfers run at once by one thread
 * (the fetcher's and the uploader's).
 *
 * Errors: every call returns CFS_OK or a code with err set.  An error
 * answer of the server becomes its protocol code and message; a
 * connection that fails, stalls for the remote's timeout, is stopped, or
 * answers something that is not the protocol (a malformed listing too)
 * becomes CFS_ERR_UNREACHABLE, which callers retry.  Messages name the
 * request ("GET /meta/namespaces: ...").
 *
 * Bounds: calls that take (max_s, stop) give up after max_s seconds in
 * all when max_s is not 0, and otherwise once the transfer stalls for
 * the remote's timeout; they stop when *stop turns true (stop may be
 * NULL), at once after remote_conn_wake(), else within a second.
 */
#ifndef FS_REMOTE_H
#define FS_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/local.h"
#include "cache/mirror.h"
#include "cloudfs/block.h"
#include "cloudfs/error.h"

struct remote_ops;

/* One server.  Implementations embed it first in their own state. */
struct remote {
	const struct remote_ops *ops;
	char url[512]; /* names the server (the cache is bound to it) */
};

/* One thread's connection to r, one call at a time.  Implementations
 * embed it first in their own state. */
struct remote_conn {
	struct remote *r;
};

/* A namespace the caller can read (GET /meta/namespaces). */
struct remote_ns {
	int64_t ns;
	int64_t head; /* its newest JID */
	bool root;    /* the caller's root namespace */
	char *path;   /* where a shared folder is mounted; owned */
	char *owner;  /* the user who may remove members; owned */
};

void remote_ns_free(struct remote_ns *list, size_t n);

/* A listing's page request (GET /meta/ns/NS/list). */
struct remote_list_req {
	int64_t ns;
	int64_t cursor;
	unsigned limit;
	int64_t at; /* unix seconds: the namespace as of then (0: live) */
	/* With as_of_jid, the namespace as of JID as_of instead. */
	bool as_of_jid;
	int64_t as_of;
};

/* A listing's page, checked entry by entry against the page's head. */
struct remote_page {
	int64_t cursor; /* list again from here when more */
	int64_t head;
	bool more;
	struct mirror_entry *entries; /* of req->ns; owned */
	char **paths; /* each entry's path (NULL: not given); owned */
	size_t n;
};

/* A version of what was at a path (GET /meta/ns/NS/history). */
struct remote_version {
	struct mirror_entry e; /* as a listing's entry */
	int64_t at;	       /* when it was committed, unix seconds */
	int64_t before; /* a folder's delete: the JID just before it, or 0 */
	char *author;	/* the user who committed it; owned */
};

void remote_versions_free(struct remote_version *list, size_t n);

void remote_page_release(struct remote_page *p);

/* A namespace's cursor for a long poll. */
struct remote_cursor {
	int64_t ns;
	int64_t cursor;
};

/* A block of a pending list that landed (cloudfs-protocol(7), "PENDING
 * BLOCK LISTS"): another member's file, not committed yet, whose block
 * may be fetched already. */
struct remote_landed {
	int64_t ns;
	struct cfs_block_id id;
	uint32_t size;	 /* 1 to CFS_BLOCK_SIZE */
	int64_t expires; /* the list's expiry, unix seconds (server's) */
};

/*
 * What a long poll asks and learns of pending lists: from cursor on,
 * the blocks that landed (checked: ids and sizes valid), and the cursor
 * to ask from next time.  A server that does not know pending lists
 * answers none, and the cursor stays.
 */
struct remote_pending {
	int64_t cursor; /* in: 0 the first time; out: the next one */
	struct remote_landed *landed; /* owned */
	size_t n;
	bool moved; /* the poll also saw namespaces move (changes, gone) */
};

void remote_pending_release(struct remote_pending *p);

/*
 * A commit request: the operations of one namespace, in queue order, the
 * mount's client id, and the lowest seq it still has queued (the server
 * forgets the answers of those before).  Without a client (a restore),
 * operations go without their seq and ctime (the server's now).  An
 * operation's base_jid < 0 is none.
 */
struct remote_commit_req {
	int64_t ns;
	const struct queued_op *ops;
	size_t n;
	const char *client;
	int64_t keep_from;
	/* POST .../announce: every operation (a file) only publishes its
	 * pending list; none is applied, each is answered need_blocks. */
	bool announce;
};

/* How many of ops (at least one) one commit request holds. */
size_t remote_commit_fit(const struct queued_op *ops, size_t n);

/* The server's answer to one operation of a commit. */
struct remote_result {
	enum remote_status {
		REMOTE_COMMITTED,
		REMOTE_NEED_BLOCKS,
		REMOTE_CONFLICT, /* jid: the version there now, 0 for none */
		REMOTE_ERROR,	 /* code */
		REMOTE_OTHER,	 /* a status this build does not know */
	} status;
	int64_t jid, node, prev_jid;
	enum cfs_err code; /* REMOTE_ERROR: the protocol's code */
	bool has_message;  /* message is the server's own */
	char message[256]; /* the server's message, else the status' name */
};

/* The answer to a commit: one result per operation, in order. */
struct remote_commit {
	int64_t head;
	struct remote_result *results; /* n of the request; owned */
};

/* A member of a shared namespace. */
struct remote_member {
	char *user; /* owned */
	bool owner;
};

void remote_members_free(struct remote_member *list, size_t n);

enum remote_member_verb {
	REMOTE_INVITE,
	REMOTE_REMOVE,
	REMOTE_LEAVE,
};

/* A set of block transfers run at once, over reused connections. */
struct remote_xfers;
/* One transfer of a set. */
struct remote_xfer;

/* Takes len bytes of a block being downloaded: returns len, or anything
 * else to end the transfer (a failure). */
typedef size_t remote_sink(void *arg, const char *data, size_t len);

/* A transfer of a set ended: rc CFS_OK when the server answered it
 * whole, else why not (the transfer is still to be ended). */
typedef void remote_xfer_done(void *arg, struct remote_xfer *x, void *tag,
			      enum cfs_err rc, const struct cfs_error *err);

struct remote_ops {
	struct remote_conn *(*conn_new)(struct remote *r);
	void (*conn_free)(struct remote_conn *c);
	void (*conn_wake)(struct remote_conn *c);
	/* Whether c's last call failed because the server's certificate
	 * did not verify (its error is CFS_ERR_UNREACHABLE). */
	bool (*conn_untrusted)(const struct remote_conn *c);

	/* Whether the server speaks the protocol (needs no token). */
	enum cfs_err (*hello)(struct remote_conn *c, struct cfs_error *err);
	/* The namespaces the caller can read, the root first. */
	enum cfs_err (*namespaces)(struct remote_conn *c, unsigned max_s,
				   const bool *stop, struct remote_ns **list,
				   size_t *n, struct cfs_error *err);
	/* One page of a listing. */
	enum cfs_err (*list)(struct remote_conn *c,
			     const struct remote_list_req *req,
			     const bool *stop, struct remote_page *page,
			     struct cfs_error *err);
	/* Waits until a namespace of cursors moves past its cursor, or for
	 * timeout_s; NOT_FOUND when one is not readable any more.  With
	 * pending (NULL: not asked), also until blocks of pending lists of
	 * those namespaces land past pending->cursor, and fills it. */
	enum cfs_err (*longpoll)(struct remote_conn *c,
				 const struct remote_cursor *cursors, size_t n,
				 unsigned timeout_s, const bool *stop,
				 struct remote_pending *pending,
				 struct cfs_error *err);
	/* Which of ids (at most CFS_MAX_NEED_BLOCKS) the caller must
	 * upload: appended to needed, which has room for n. */
	enum cfs_err (*need_blocks)(struct remote_conn *c,
				    const struct cfs_block_id *ids, size_t n,
				    unsigned max_s, const bool *stop,
				    struct cfs_blocklist *needed,
				    struct cfs_error *err);
	/* Commits a batch; out->results has one result per operation. */
	enum cfs_err (*commit)(struct remote_conn *c,
			       const struct remote_commit_req *req,
			       unsigned max_s, const bool *stop,
			       struct remote_commit *out,
			       struct cfs_error *err);

	/* Makes folder path of root_ns a shared folder: its namespace. */
	enum cfs_err (*share)(struct remote_conn *c, int64_t root_ns,
			      const char *path, int64_t *ns,
			      struct cfs_error *err);
	/* Invites user to ns, removes user from it, or leaves it (user
	 * NULL). */
	enum cfs_err (*member)(struct remote_conn *c, int64_t ns,
			       enum remote_member_verb verb, const char *user,
			       struct cfs_error *err);
	enum cfs_err (*members)(struct remote_conn *c, int64_t ns,
				struct remote_member **list, size_t *n,
				struct cfs_error *err);
	/* The versions of what was at path of ns, newest first. */
	enum cfs_err (*history)(struct remote_conn *c, int64_t ns,
				const char *path, struct remote_version **list,
				size_t *n, struct cfs_error *err);

	/* Block transfers: a set run by one thread at a time. */
	struct remote_xfers *(*xfers_new)(struct remote *r);
	/* Ends every transfer still in the set, and frees it. */
	void (*xfers_free)(struct remote_xfers *s);
	/* Downloads block id into sink(arg, ...); NULL when out of
	 * memory. */
	struct remote_xfer *(*get)(struct remote_xfers *s,
				   const struct cfs_block_id *id,
				   remote_sink *sink, void *arg, void *tag);
	/* Uploads block id: len bytes of fd from offset 0 (fd stays the
	 * caller's); NULL when out of memory. */
	struct remote_xfer *(*put)(struct remote_xfers *s,
				   const struct cfs_block_id *id, int fd,
				   uint64_t len, void *tag);
	/*
	 * Uploads n blocks in one request (POST /block/batch): ids[i] is
	 * lens[i] bytes of fds[i] from offset 0 (the fds stay the caller's
	 * until the transfer ends).  At most CFS_MAX_BATCH_BLOCKS blocks of
	 * at most CFS_BLOCK_SIZE bytes in all; it ends CFS_OK when the
	 * server stored every one of them, CFS_ERR_NOT_FOUND when the
	 * server has no batch uploads or refused the batch (send them one
	 * by one, where each gets its own answer).  NULL when out of
	 * memory.
	 */
	struct remote_xfer *(*put_batch)(struct remote_xfers *s,
					 const struct cfs_block_id *ids,
					 const int *fds, const uint64_t *lens,
					 size_t n, void *tag);
	/* Ends transfer x (ended or not) and frees it. */
	void (*xfer_end)(struct remote_xfers *s, struct remote_xfer *x);
	/* Moves the set's transfers on without waiting, and calls done for
	 * each that ended; returns how many did. */
	unsigned (*xfers_step)(struct remote_xfers *s, remote_xfer_done *done,
			       void *arg);
	/* Waits up to ms for a transfer to have news, or xfers_wake(). */
	void (*xfers_wait)(struct remote_xfers *s, unsigned ms);
	/* Cuts the set's wait short (any thread). */
	void (*xfers_wake)(struct remote_xfers *s);

	/* Frees the remote; no connection or set of it may be left. */
	void (*free)(struct remote *r);
};

/*
 * The libcurl remote (fs/remote_curl.c) of the server at url, with a
 * token, a CA file (NULL: the system's; kept by its absolute path, must
 * be readable) and the network timeout: to connect, and the longest
 * stall.  remote_curl_global_init() must have run.  NULL with err set.
 */
struct remote *remote_curl_new(const char *url, const char *token,
			       const char *ca_file, unsigned timeout_s,
			       struct cfs_error *err);
void remote_curl_global_init(void);
void remote_curl_global_cleanup(void);

/* The URL the last call on c (a connection of a libcurl remote) went
 * to, for a message that must name it ("" before any call). */
const char *remote_curl_last_url(const struct remote_conn *c);

static inline void remote_free(struct remote *r)
{
	if (r)
		r->ops->free(r);
}

static inline struct remote_conn *remote_conn_new(struct remote *r)
{
	return r->ops->conn_new(r);
}

static inline void remote_conn_free(struct remote_conn *c)
{
	if (c)
		c->r->ops->conn_free(c);
}

static inline void remote_conn_wake(struct remote_conn *c)
{
	c->r->ops->conn_wake(c);
}

static inline bool remote_conn_untrusted(const struct remote_conn *c)
{
	return c->r->ops->conn_untrusted(c);
}

static inline enum cfs_err remote_hello(struct remote_conn *c,
					struct cfs_error *err)
{
	return c->r->ops->hello(c, err);
}

static inline enum cfs_err remote_namespaces(struct remote_conn *c,
					     unsigned max_s, const bool *stop,
					     struct remote_ns **list, size_t *n,
					     struct cfs_error *err)
{
	return c->r->ops->namespaces(c, max_s, stop, list, n, err);
}

static inline enum cfs_err
remote_list(struct remote_conn *c, const struct remote_list_req *req,
	    const bool *stop, struct remote_page *page, struct cfs_error *err)
{
	return c->r->ops->list(c, req, stop, page, err);
}

static inline enum cfs_err
remote_longpoll(struct remote_conn *c, const struct remote_cursor *cursors,
		size_t n, unsigned timeout_s, const bool *stop,
		struct remote_pending *pending, struct cfs_error *err)
{
	return c->r->ops->longpoll(c, cursors, n, timeout_s, stop, pending,
				   err);
}

static inline enum cfs_err
remote_need_blocks(struct remote_conn *c, const struct cfs_block_id *ids,
		   size_t n, unsigned max_s, const bool *stop,
		   struct cfs_blocklist *needed, struct cfs_error *err)
{
	return c->r->ops->need_blocks(c, ids, n, max_s, stop, needed, err);
}

static inline enum cfs_err remote_commit(struct remote_conn *c,
					 const struct remote_commit_req *req,
					 unsigned max_s, const bool *stop,
					 struct remote_commit *out,
					 struct cfs_error *err)
{
	return c->r->ops->commit(c, req, max_s, stop, out, err);
}

void remote_commit_release(struct remote_commit *out);

/* An operation's name on the wire ("file", "fifo"). */
const char *remote_op_name(const struct queued_op *op);

/* A listing of ns refused as malformed (rc a BAD_ code, or TOO_LARGE) is
 * an answer that is not the protocol: CFS_ERR_UNREACHABLE, named so in
 * err.  Other codes are returned as they are. */
enum cfs_err remote_bad_listing(enum cfs_err rc, int64_t ns,
				struct cfs_error *err);

/* A status' name on the wire ("need_blocks"). */
const char *remote_status_name(enum remote_status status);

#endif
