/*
 * The in-process fake server (fs/remote_fake.h).
 *
 * One lock guards the whole server; calls are short and never wait under
 * it but the long poll, which waits on a condition of it.  Within a
 * namespace, a node's index in nodes is its id less one; a node's jid is
 * that of its newest row, and the journal keeps every row's (jid, node).
 * A listing from a cursor is the nodes whose newest row is past it, in
 * JID order: as the server's, a node changed twice shows once.
 *
 * Pending lists (streaming sync) are kept as one entry per block, with
 * the pending cursor of its landing (0 before); they never expire.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cloudfs/clock.h"
#include "cloudfs/path.h"
#include "cloudfs/proto.h"
#include "fs/remote_fake.h"

#define MAX_NS	    16
#define MAX_ANSWERS 4096

struct fake_node {
	int64_t id, parent;
	char name[CFS_NAME_MAX + 1];
	enum cfs_kind kind;
	int64_t jid;
	uint64_t size;
	uint32_t mode;
	int64_t atime_ns, mtime_ns, ctime_ns;
	struct cfs_blocklist blocks;
	char *target;
	int64_t mount_ns; /* a MOUNT's shared namespace */
	bool live;
};

/* A journal row: the node's state as it was written, for history. */
struct fake_row {
	int64_t jid, node;
	char *path;	       /* where the node was */
	struct mirror_entry e; /* its state then */
	int64_t at;	       /* unix seconds */
	unsigned author;
};

/* An answer kept for a replay: (client, seq) of a committed operation. */
struct fake_answer {
	char client[65];
	int64_t seq;
	struct remote_result r;
};

struct fake_ns {
	int64_t ns, head;
	uint64_t members; /* a bit per user */
	bool shared;	  /* a shared folder's, not somebody's root */
	unsigned owner;	  /* shared: who may remove members */
	struct fake_node *nodes;
	size_t n, cap;
	struct fake_row *rows;
	size_t n_rows, cap_rows;
	struct fake_answer answers[MAX_ANSWERS];
	size_t n_answers;
};

struct fake_block {
	struct cfs_block_id id;
	char *data;
	uint32_t len;
	uint64_t uploaders; /* a bit per user */
};

/* A block of a pending list (an announcing commit's). */
struct fake_pending {
	int64_t ns;
	unsigned user;
	char *path;
	struct cfs_block_id id;
	uint32_t size;
	int64_t ready; /* the pending cursor when it landed; 0: not yet */
};

struct fake_server {
	pthread_mutex_t lock;
	pthread_cond_t moved; /* a namespace's head moved */
	/* Long polls that found nothing new and wait for a commit, and
	 * the signal of each one that starts to. */
	unsigned parked;
	pthread_cond_t parking;
	struct fake_ns ns[MAX_NS];
	size_t n_ns;
	struct fake_block *blocks;
	size_t n_blocks, cap_blocks;
	struct fake_pending *pending;
	size_t n_pending, cap_pending;
	int64_t pending_seq;
	unsigned percent;
	unsigned seed;
	/* Delays: percent of calls answered after up to max_ms, drawn from
	 * their own generator, so that faults draw the same. */
	unsigned delay_percent, delay_max_ms, delay_seed;
	unsigned author; /* the user of the call applying, for rows */
	enum fake_fault next, next_commit;
	bool no_batch;
	unsigned uploads, batches;
};

struct fake_remote {
	struct remote base;
	struct fake_server *s;
	unsigned user;
};

struct fake_conn {
	struct remote_conn base;
	bool woken; /* under the server's lock */
};

struct remote_xfer {
	struct remote_xfer *next;
	uint64_t born; /* the set's clock when it was made */
	bool ran;
	void *tag;
	struct cfs_block_id id;
	bool put;
	remote_sink *sink;
	void *arg;
	int fd;
	uint64_t len;
	/* A batch upload's blocks (put_batch), each a put of its own. */
	struct remote_xfer *parts;
	size_t n_parts;
};

struct remote_xfers {
	struct fake_remote *r;
	struct remote_xfer *list; /* the driving thread's */
	uint64_t clock;		  /* steps so far */
	pthread_mutex_t lock;	  /* protects woken */
	pthread_cond_t wake;
	bool woken;
};

static struct fake_remote *fr(struct remote *r)
{
	return (struct fake_remote *)r;
}

static struct fake_remote *fr_of(struct remote_conn *c)
{
	return fr(c->r);
}

/* The fault of a call (under the lock). */
static enum fake_fault draw(struct fake_server *s)
{
	enum fake_fault f = s->next;

	s->next = FAKE_OK;
	if (f == FAKE_OK && s->percent &&
	    (unsigned)rand_r(&s->seed) % 100 < s->percent)
		f = (enum fake_fault)(1 + (unsigned)rand_r(&s->seed) % 3);
	return f;
}

/* The error of a fault before anything is applied, or CFS_OK. */
static enum cfs_err fault_before(enum fake_fault f, const char *what,
				 struct cfs_error *err)
{
	if (f == FAKE_ERROR)
		return cfs_fail(err, CFS_ERR_UNAVAILABLE,
				"%s: the fake server is stopping", what);
	if (f == FAKE_OUTAGE)
		return cfs_fail(err, CFS_ERR_UNREACHABLE,
				"%s: the fake server is out", what);
	return CFS_OK;
}

/* A call's delay, drawn before it takes the lock (so that other calls
 * go on meanwhile, and answers come back in another order than asked). */
static void delay(struct fake_server *s)
{
	unsigned ms = 0;

	pthread_mutex_lock(&s->lock);
	if (s->delay_percent &&
	    (unsigned)rand_r(&s->delay_seed) % 100 < s->delay_percent)
		ms = 1 + (unsigned)rand_r(&s->delay_seed) % s->delay_max_ms;
	pthread_mutex_unlock(&s->lock);
	if (ms)
		usleep(ms * 1000);
}

void fake_delays(struct fake_server *s, unsigned percent, unsigned max_ms,
		 unsigned seed)
{
	pthread_mutex_lock(&s->lock);
	s->delay_percent = max_ms ? percent : 0;
	s->delay_max_ms = max_ms;
	s->delay_seed = seed;
	pthread_mutex_unlock(&s->lock);
}

void fake_user_name(unsigned user, char name[16])
{
	snprintf(name, 16, "user%u", user);
}

static struct fake_ns *ns_get(struct fake_server *s, int64_t ns)
{
	for (size_t i = 0; i < s->n_ns; i++)
		if (s->ns[i].ns == ns)
			return &s->ns[i];
	return NULL;
}

static bool readable(const struct fake_ns *n, unsigned user)
{
	return n && (n->members >> user & 1);
}

struct fake_server *fake_server_new(void)
{
	struct fake_server *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->moved, NULL);
	pthread_cond_init(&s->parking, NULL);
	return s;
}

void fake_server_free(struct fake_server *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_ns; i++) {
		struct fake_ns *n = &s->ns[i];

		for (size_t k = 0; k < n->n; k++) {
			cfs_blocklist_release(&n->nodes[k].blocks);
			free(n->nodes[k].target);
		}
		free(n->nodes);
		for (size_t k = 0; k < n->n_rows; k++) {
			free(n->rows[k].path);
			mirror_entry_release(&n->rows[k].e);
		}
		free(n->rows);
	}
	for (size_t i = 0; i < s->n_blocks; i++)
		free(s->blocks[i].data);
	free(s->blocks);
	for (size_t i = 0; i < s->n_pending; i++)
		free(s->pending[i].path);
	free(s->pending);
	pthread_cond_destroy(&s->moved);
	pthread_cond_destroy(&s->parking);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void fake_wait_parked(struct fake_server *s, unsigned n)
{
	pthread_mutex_lock(&s->lock);
	while (s->parked < n)
		pthread_cond_wait(&s->parking, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

int64_t fake_namespace(struct fake_server *s, unsigned user)
{
	struct fake_ns *n;

	pthread_mutex_lock(&s->lock);
	if (s->n_ns == MAX_NS) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	n = &s->ns[s->n_ns];
	memset(n, 0, sizeof(*n));
	n->ns = (int64_t)++s->n_ns;
	n->members = 1ull << user;
	pthread_mutex_unlock(&s->lock);
	return n->ns;
}

void fake_add_member(struct fake_server *s, int64_t ns, unsigned user)
{
	pthread_mutex_lock(&s->lock);
	if (ns_get(s, ns))
		ns_get(s, ns)->members |= 1ull << user;
	pthread_mutex_unlock(&s->lock);
}

void fake_faults(struct fake_server *s, unsigned percent, unsigned seed)
{
	pthread_mutex_lock(&s->lock);
	s->percent = percent;
	s->seed = seed;
	pthread_mutex_unlock(&s->lock);
}

void fake_fault_commit(struct fake_server *s, enum fake_fault f)
{
	pthread_mutex_lock(&s->lock);
	s->next_commit = f;
	pthread_mutex_unlock(&s->lock);
}

void fake_fault_next(struct fake_server *s, enum fake_fault f)
{
	pthread_mutex_lock(&s->lock);
	s->next = f;
	pthread_mutex_unlock(&s->lock);
}

/* The tree. */

static struct fake_node *node_get(struct fake_ns *n, int64_t id)
{
	return id >= 1 && (size_t)id <= n->n ? &n->nodes[id - 1] : NULL;
}

static struct fake_node *child(struct fake_ns *n, int64_t parent,
			       const char *name, size_t len)
{
	for (size_t i = 0; i < n->n; i++)
		if (n->nodes[i].live && n->nodes[i].parent == parent &&
		    strlen(n->nodes[i].name) == len &&
		    memcmp(n->nodes[i].name, name, len) == 0)
			return &n->nodes[i];
	return NULL;
}

static bool has_children(struct fake_ns *n, int64_t id)
{
	for (size_t i = 0; i < n->n; i++)
		if (n->nodes[i].live && n->nodes[i].parent == id)
			return true;
	return false;
}

/*
 * Resolves path's folder: *parent (0: the root) and its last name.
 * NOT_FOUND or NOT_DIR for the folders on the way, BAD_PATH for an empty
 * path.
 */
static enum cfs_err resolve(struct fake_ns *n, const char *path,
			    int64_t *parent, const char **name,
			    struct cfs_error *err)
{
	const char *p = path, *slash;

	*parent = 0;
	if (!*path)
		return cfs_fail(err, CFS_ERR_BAD_PATH, "an empty path");
	while ((slash = strchr(p, '/'))) {
		struct fake_node *d = child(n, *parent, p, (size_t)(slash - p));

		if (!d)
			return cfs_fail(err, CFS_ERR_NOT_FOUND,
					"no folder on the way to '%s'", path);
		/* As the server: the shared folder's namespace holds it. */
		if (d->kind == CFS_KIND_MOUNT)
			return cfs_fail(err, CFS_ERR_CROSS_NS,
					"a shared folder on the way to '%s'",
					path);
		if (d->kind != CFS_KIND_DIR)
			return cfs_fail(err, CFS_ERR_NOT_DIR,
					"a file on the way to '%s'", path);
		*parent = d->id;
		p = slash + 1;
	}
	*name = p;
	if (strlen(p) > CFS_NAME_MAX)
		return cfs_fail(err, CFS_ERR_BAD_PATH, "a name too long");
	return CFS_OK;
}

static struct fake_node *at_path(struct fake_ns *n, const char *path)
{
	struct cfs_error err;
	const char *name;
	int64_t parent;

	if (resolve(n, path, &parent, &name, &err))
		return NULL;
	return child(n, parent, name, strlen(name));
}

static void entry_of(const struct fake_ns *n, const struct fake_node *d,
		     struct mirror_entry *e);
static struct fake_ns *root_of(struct fake_server *s, unsigned user);
static struct fake_node *mount_in(struct fake_ns *root, int64_t ns);

/* The path of d in n, "" when a folder on the way is gone. */
static char *path_of(struct fake_ns *n, const struct fake_node *d)
{
	char path[CFS_PATH_MAX + 1] = "", tmp[CFS_PATH_MAX + 1];

	for (; d; d = node_get(n, d->parent)) {
		snprintf(tmp, sizeof(tmp), "%s%s%s", d->name, *path ? "/" : "",
			 path);
		memcpy(path, tmp, sizeof(path));
		if (d->parent == 0)
			return strdup(path);
	}
	return strdup("");
}

/* Journals d's state as it is now at the next JID; keeps d's own JID
 * when keep_jid (a subtree shared away: the server's invariant 2). */
static enum cfs_err journal(struct fake_server *s, struct fake_ns *n,
			    struct fake_node *d, bool keep_jid,
			    struct cfs_error *err)
{
	struct fake_row *w;
	int64_t jid = ++n->head;

	if (n->n_rows == n->cap_rows) {
		size_t cap = n->cap_rows ? 2 * n->cap_rows : 64;
		struct fake_row *rows = realloc(n->rows, cap * sizeof(*rows));

		if (!rows)
			return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		n->rows = rows;
		n->cap_rows = cap;
	}
	if (!keep_jid)
		d->jid = jid;
	w = &n->rows[n->n_rows++];
	*w = (struct fake_row){ .jid = jid,
				.node = d->id,
				.path = path_of(n, d),
				.at = (int64_t)time(NULL),
				.author = s->author };
	entry_of(n, d, &w->e);
	w->e.jid = jid;
	pthread_cond_broadcast(&s->moved);
	return CFS_OK;
}

/* A new row of node d: the next JID. */
static enum cfs_err row(struct fake_server *s, struct fake_ns *n,
			struct fake_node *d, struct cfs_error *err)
{
	return journal(s, n, d, false, err);
}

static struct fake_node *node_new(struct fake_ns *n, int64_t parent,
				  const char *name)
{
	struct fake_node *d;

	if (n->n == n->cap) {
		size_t cap = n->cap ? 2 * n->cap : 64;
		struct fake_node *nodes =
			realloc(n->nodes, cap * sizeof(*nodes));

		if (!nodes)
			return NULL;
		n->nodes = nodes;
		n->cap = cap;
	}
	d = &n->nodes[n->n];
	memset(d, 0, sizeof(*d));
	d->id = (int64_t)++n->n;
	d->parent = parent;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->live = true;
	return d;
}

static struct fake_block *block_get(struct fake_server *s,
				    const struct cfs_block_id *id)
{
	for (size_t i = 0; i < s->n_blocks; i++)
		if (cfs_block_id_equal(&s->blocks[i].id, id))
			return &s->blocks[i];
	return NULL;
}

/* Whether user may read block id: they uploaded it, or a live file of a
 * namespace they can read lists it. */
static bool block_readable(struct fake_server *s, unsigned user,
			   const struct cfs_block_id *id)
{
	struct fake_block *b = block_get(s, id);

	if (!b)
		return false;
	if (b->uploaders >> user & 1)
		return true;
	for (size_t i = 0; i < s->n_ns; i++) {
		struct fake_ns *n = &s->ns[i];

		if (!readable(n, user))
			continue;
		for (size_t k = 0; k < n->n; k++)
			for (size_t j = 0; n->nodes[k].live &&
					   n->nodes[k].kind == CFS_KIND_FILE &&
					   j < n->nodes[k].blocks.n;
			     j++)
				if (cfs_block_id_equal(
					    &n->nodes[k].blocks.ids[j], id))
					return true;
	}
	return false;
}

static struct remote_result result_error(enum cfs_err code, const char *msg)
{
	struct remote_result r = { .status = REMOTE_ERROR, .code = code };

	r.has_message = true;
	snprintf(r.message, sizeof(r.message), "%.*s",
		 (int)sizeof(r.message) - 1, msg);
	return r;
}

/* Whether user may download block id as a landed block of a pending
 * list of a namespace they can read. */
static bool pending_readable(struct fake_server *s, unsigned user,
			     const struct cfs_block_id *id)
{
	for (size_t i = 0; i < s->n_pending; i++)
		if (s->pending[i].ready &&
		    cfs_block_id_equal(&s->pending[i].id, id) &&
		    readable(ns_get(s, s->pending[i].ns), user))
			return true;
	return false;
}

/* Drops user's pending list at path of ns (the file committed, or a new
 * list replaces it). */
static void pending_drop(struct fake_server *s, int64_t ns, unsigned user,
			 const char *path)
{
	size_t k = 0;

	for (size_t i = 0; i < s->n_pending; i++) {
		struct fake_pending *p = &s->pending[i];

		if (p->ns == ns && p->user == user && !strcmp(p->path, path))
			free(p->path);
		else
			s->pending[k++] = *p;
	}
	s->n_pending = k;
}

/* An announcing commit of file op: the blocks user cannot read go to
 * the pending list of (ns, op->path); nothing is applied. */
static struct remote_result announce(struct fake_server *s, int64_t ns,
				     unsigned user, const struct queued_op *op)
{
	struct remote_result r = { .status = REMOTE_NEED_BLOCKS };
	bool replaced = false;

	snprintf(r.message, sizeof(r.message), "need_blocks");
	for (size_t i = 0; i < op->blocks.n; i++) {
		struct fake_pending *p;

		if (block_readable(s, user, &op->blocks.ids[i]))
			continue;
		if (!replaced)
			pending_drop(s, ns, user, op->path);
		replaced = true;
		if (s->n_pending == s->cap_pending) {
			size_t cap = s->cap_pending ? 2 * s->cap_pending : 64;
			struct fake_pending *v =
				realloc(s->pending, cap * sizeof(*v));

			if (!v)
				return result_error(CFS_ERR_INTERNAL,
						    "out of memory");
			s->pending = v;
			s->cap_pending = cap;
		}
		p = &s->pending[s->n_pending];
		*p = (struct fake_pending){
			.ns = ns,
			.user = user,
			.path = strdup(op->path),
			.id = op->blocks.ids[i],
			.size = cfs_block_len(op->size, i),
		};
		if (!p->path)
			return result_error(CFS_ERR_INTERNAL, "out of memory");
		s->n_pending++;
	}
	return r;
}

static struct remote_result result_committed(const struct fake_node *d,
					     int64_t prev_jid)
{
	return (struct remote_result){ .status = REMOTE_COMMITTED,
				       .jid = d->jid,
				       .node = d->id,
				       .prev_jid = prev_jid };
}

static bool same_content(const struct fake_node *d, const struct queued_op *op)
{
	if (d->kind != op->kind || d->mode != op->mode)
		return false;
	if (op->type == QUEUE_FILE)
		return d->size == op->size && d->blocks.n == op->blocks.n &&
		       (!op->blocks.n ||
			memcmp(d->blocks.ids, op->blocks.ids,
			       op->blocks.n * sizeof(*op->blocks.ids)) == 0);
	if (cfs_kind_has_target(op->kind))
		return d->target && op->target &&
		       strcmp(d->target, op->target) == 0;
	return true;
}

static void set_attrs(struct fake_node *d, const struct queued_op *op)
{
	d->kind = op->kind;
	d->mode = op->kind == CFS_KIND_SYMLINK ? 0777 : op->mode;
	d->atime_ns = op->atime_ns;
	d->mtime_ns = op->mtime_ns;
	d->ctime_ns = op->ctime_ns;
}

/* A file, symlink or special file at op->path. */
static struct remote_result apply_leaf(struct fake_server *s, struct fake_ns *n,
				       unsigned user,
				       const struct queued_op *op)
{
	struct cfs_error err;
	struct fake_node *d;
	const char *name;
	int64_t parent, base = op->base_jid < 0 ? 0 : op->base_jid;
	enum cfs_err rc = resolve(n, op->path, &parent, &name, &err);
	struct remote_result r = { .status = REMOTE_NEED_BLOCKS };

	if (rc)
		return result_error(rc, err.msg);
	d = child(n, parent, name, strlen(name));
	if (d && (d->kind == CFS_KIND_DIR || d->kind == CFS_KIND_MOUNT))
		return result_error(CFS_ERR_IS_DIR, "a folder is there");
	if (d && same_content(d, op))
		return result_committed(d, 0);
	if (base != (d ? d->jid : 0))
		return (struct remote_result){ .status = REMOTE_CONFLICT,
					       .jid = d ? d->jid : 0 };
	for (size_t i = 0; op->type == QUEUE_FILE && i < op->blocks.n; i++)
		if (!block_readable(s, user, &op->blocks.ids[i]))
			return r;
	if (!d && !(d = node_new(n, parent, name)))
		return result_error(CFS_ERR_INTERNAL, "out of memory");
	set_attrs(d, op);
	cfs_blocklist_release(&d->blocks);
	free(d->target);
	d->target = op->target ? strdup(op->target) : NULL;
	d->size = op->type == QUEUE_FILE ? op->size
		  : d->target		 ? strlen(d->target)
					 : 0;
	if (op->type == QUEUE_FILE && op->blocks.n) {
		d->blocks.ids = malloc(op->blocks.n * sizeof(*op->blocks.ids));
		if (!d->blocks.ids)
			return result_error(CFS_ERR_INTERNAL, "out of memory");
		memcpy(d->blocks.ids, op->blocks.ids,
		       op->blocks.n * sizeof(*op->blocks.ids));
		d->blocks.n = op->blocks.n;
	}
	if (row(s, n, d, &err))
		return result_error(CFS_ERR_INTERNAL, err.msg);
	return result_committed(d, 0);
}

static struct remote_result apply_dir(struct fake_server *s, struct fake_ns *n,
				      const struct queued_op *op)
{
	struct cfs_error err;
	struct fake_node *d;
	const char *name;
	int64_t parent;
	enum cfs_err rc = resolve(n, op->path, &parent, &name, &err);

	if (rc)
		return result_error(rc, err.msg);
	d = child(n, parent, name, strlen(name));
	if (d && d->kind != CFS_KIND_DIR)
		return result_error(CFS_ERR_EXISTS, "not a folder there");
	if (d && d->mode == op->mode && d->mtime_ns == op->mtime_ns)
		return result_committed(d, 0);
	if (!d && !(d = node_new(n, parent, name)))
		return result_error(CFS_ERR_INTERNAL, "out of memory");
	set_attrs(d, op);
	if (row(s, n, d, &err))
		return result_error(CFS_ERR_INTERNAL, err.msg);
	return result_committed(d, 0);
}

static bool inside(struct fake_ns *n, int64_t id, int64_t top);

/*
 * A recursive delete of d unchanged since JID since: a conflict at the
 * newest JID found when d or a live node in it is newer; otherwise a row
 * for each node inside, then d's.  (No hard links here: tested against
 * cloudfsd.)
 */
static struct remote_result delete_tree(struct fake_server *s,
					struct fake_ns *n, struct fake_node *d,
					int64_t since)
{
	int64_t newest = d->jid;
	struct cfs_error err;

	for (size_t i = 0; i < n->n; i++)
		if (n->nodes[i].live && n->nodes[i].jid > newest &&
		    inside(n, n->nodes[i].parent, d->id))
			newest = n->nodes[i].jid;
	if (newest > since)
		return (struct remote_result){ .status = REMOTE_CONFLICT,
					       .jid = newest };
	for (size_t i = 0; i < n->n; i++) {
		struct fake_node *x = &n->nodes[i];

		if (!x->live || !inside(n, x->parent, d->id))
			continue;
		x->live = false;
		x->kind = CFS_KIND_DELETED;
		if (row(s, n, x, &err))
			return result_error(CFS_ERR_INTERNAL, err.msg);
	}
	d->live = false;
	d->kind = CFS_KIND_DELETED;
	if (row(s, n, d, &err))
		return result_error(CFS_ERR_INTERNAL, err.msg);
	return result_committed(d, 0);
}

/* Nothing is at path in n: why, as the server says it.  A shared folder
 * on the way is CROSS_NS: the path names something of its namespace,
 * and the mount waits for the listing that re-addresses it. */
static struct remote_result nothing_at(struct fake_ns *n, const char *path)
{
	struct cfs_error err;
	const char *name;
	int64_t parent;

	if (resolve(n, path, &parent, &name, &err) == CFS_ERR_CROSS_NS)
		return result_error(CFS_ERR_CROSS_NS, err.msg);
	return result_error(CFS_ERR_NOT_FOUND, "nothing there");
}

static struct remote_result apply_delete(struct fake_server *s,
					 struct fake_ns *n,
					 const struct queued_op *op)
{
	struct fake_node *d = at_path(n, op->path), *was;
	struct remote_result none = { 0 };
	struct cfs_error err;

	if (!d)
		none = nothing_at(n, op->path);
	/* A retry of a delete applied before; not a node a share took away
	 * (no longer live here either): its path crosses the shared folder,
	 * which the server answers first. */
	if (!d && none.code != CFS_ERR_CROSS_NS && op->node > 0 &&
	    (was = node_get(n, op->node)) && !was->live)
		return result_committed(was, 0);
	if (!d)
		return none;
	if (op->base_jid > 0 && op->base_jid != d->jid)
		return (struct remote_result){ .status = REMOTE_CONFLICT,
					       .jid = d->jid };
	if (op->unchanged_since > 0)
		return delete_tree(s, n, d, op->unchanged_since);
	if (has_children(n, d->id))
		return result_error(CFS_ERR_NOT_EMPTY, "a folder not empty");
	d->live = false;
	d->kind = CFS_KIND_DELETED;
	if (row(s, n, d, &err))
		return result_error(CFS_ERR_INTERNAL, err.msg);
	return result_committed(d, 0);
}

/* Whether folder id is top or inside it. */
static bool inside(struct fake_ns *n, int64_t id, int64_t top)
{
	for (struct fake_node *d; id; id = d->parent) {
		if (id == top)
			return true;
		if (!(d = node_get(n, id)))
			return false;
	}
	return false;
}

static struct remote_result apply_move(struct fake_server *s, struct fake_ns *n,
				       const struct queued_op *op)
{
	struct fake_node *d = at_path(n, op->path), *t, *was;
	struct cfs_error err;
	const char *name;
	int64_t parent, prev;
	enum cfs_err rc;

	/* A retry of a move applied before: the node is at to. */
	if (!d && op->node > 0 && (was = node_get(n, op->node)) && was->live &&
	    at_path(n, op->to) == was)
		return result_committed(was, 0);
	if (!d)
		return nothing_at(n, op->path);
	if (op->base_jid > 0 && op->base_jid != d->jid)
		return (struct remote_result){ .status = REMOTE_CONFLICT,
					       .jid = d->jid };
	rc = resolve(n, op->to, &parent, &name, &err);
	if (rc)
		return result_error(rc, err.msg);
	t = child(n, parent, name, strlen(name));
	if (t == d)
		return result_committed(d, 0);
	if (d->kind == CFS_KIND_DIR && inside(n, parent, d->id))
		return result_error(CFS_ERR_BAD_FIELD, "a folder into itself");
	if (t && !op->replace)
		return result_error(CFS_ERR_EXISTS, "the target is there");
	if (t && t->kind == CFS_KIND_DIR && d->kind != CFS_KIND_DIR)
		return result_error(CFS_ERR_IS_DIR, "a folder is there");
	if (t && t->kind != CFS_KIND_DIR && d->kind == CFS_KIND_DIR)
		return result_error(CFS_ERR_NOT_DIR, "a file is there");
	if (t && has_children(n, t->id))
		return result_error(CFS_ERR_NOT_EMPTY, "a folder not empty");
	if (t) {
		t->live = false;
		t->kind = CFS_KIND_DELETED;
		if (row(s, n, t, &err))
			return result_error(CFS_ERR_INTERNAL, err.msg);
	}
	prev = d->jid;
	d->parent = parent;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->ctime_ns = op->ctime_ns;
	if (row(s, n, d, &err))
		return result_error(CFS_ERR_INTERNAL, err.msg);
	return result_committed(d, prev);
}

/* Applies op to n as user (under the lock). */
static struct remote_result apply(struct fake_server *s, struct fake_ns *n,
				  unsigned user, const struct queued_op *op)
{
	switch (op->type) {
	case QUEUE_FILE:
	case QUEUE_SYMLINK:
	case QUEUE_SPECIAL:
		return apply_leaf(s, n, user, op);
	case QUEUE_DIR:
		return apply_dir(s, n, op);
	case QUEUE_DELETE:
		return apply_delete(s, n, op);
	case QUEUE_MOVE:
		return apply_move(s, n, op);
	case QUEUE_LINK: /* hard links: tested against cloudfsd */
		break;
	}
	return result_error(CFS_ERR_BAD_FIELD, "an unknown operation");
}

/* The answer kept for (client, seq) in n, or NULL. */
static struct fake_answer *kept(struct fake_ns *n, const char *client,
				int64_t seq)
{
	for (size_t i = 0; client && i < n->n_answers; i++)
		if (n->answers[i].seq == seq &&
		    strcmp(n->answers[i].client, client) == 0)
			return &n->answers[i];
	return NULL;
}

static void keep(struct fake_ns *n, const char *client, int64_t seq,
		 int64_t keep_from, const struct remote_result *r)
{
	size_t k = 0;

	/* Forgets those the client will not send again. */
	for (size_t i = 0; i < n->n_answers; i++)
		if (strcmp(n->answers[i].client, client) != 0 ||
		    n->answers[i].seq >= keep_from)
			n->answers[k++] = n->answers[i];
	n->n_answers = k;
	if (k == MAX_ANSWERS)
		return;
	snprintf(n->answers[k].client, sizeof(n->answers[k].client), "%s",
		 client);
	n->answers[k].seq = seq;
	n->answers[k].r = *r;
	n->n_answers++;
}

struct remote_result fake_commit_one(struct fake_server *s, int64_t ns,
				     const struct queued_op *op)
{
	struct remote_result r;
	struct fake_ns *n;

	pthread_mutex_lock(&s->lock);
	n = ns_get(s, ns);
	s->author = 0;
	r = n ? apply(s, n, 0, op)
	      : result_error(CFS_ERR_NOT_FOUND, "no such namespace");
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* The calls. */

static struct remote_conn *conn_new(struct remote *r)
{
	struct fake_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base.r = r;
	return &c->base;
}

static void conn_free(struct remote_conn *c)
{
	free(c);
}

static void conn_wake(struct remote_conn *rc)
{
	struct fake_server *s = fr_of(rc)->s;

	pthread_mutex_lock(&s->lock);
	((struct fake_conn *)rc)->woken = true;
	pthread_cond_broadcast(&s->moved);
	pthread_mutex_unlock(&s->lock);
}

static bool conn_untrusted(const struct remote_conn *c)
{
	(void)c;
	return false;
}

static enum cfs_err hello(struct remote_conn *c, struct cfs_error *err)
{
	struct fake_server *s = fr_of(c)->s;
	enum cfs_err rc;

	pthread_mutex_lock(&s->lock);
	rc = fault_before(draw(s), "GET /", err);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static enum cfs_err namespaces(struct remote_conn *c, unsigned max_s,
			       const bool *stop, struct remote_ns **list,
			       size_t *n, struct cfs_error *err)
{
	struct fake_remote *r = fr_of(c);
	struct fake_server *s = r->s;
	enum cfs_err rc;

	(void)max_s, (void)stop;
	*list = NULL;
	*n = 0;
	delay(s);
	pthread_mutex_lock(&s->lock);
	rc = fault_before(draw(s), "GET /meta/namespaces", err);
	if (rc == CFS_OK && !(*list = calloc(s->n_ns + 1, sizeof(**list))))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; rc == CFS_OK && i < s->n_ns; i++) {
		struct remote_ns *o = &(*list)[*n];
		struct fake_node *m;
		char owner[16];

		if (!readable(&s->ns[i], r->user))
			continue;
		o->root = &s->ns[i] == root_of(s, r->user);
		o->ns = s->ns[i].ns;
		o->head = s->ns[i].head;
		(*n)++;
		if (!s->ns[i].shared)
			continue;
		m = mount_in(root_of(s, r->user), o->ns);
		fake_user_name(s->ns[i].owner, owner);
		if (!(o->owner = strdup(owner)) ||
		    (m && !(o->path = strdup(m->name))))
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	if (rc) {
		remote_ns_free(*list, *n);
		*list = NULL;
		*n = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void entry_of(const struct fake_ns *n, const struct fake_node *d,
		     struct mirror_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->ns = n->ns;
	e->node = d->id;
	e->parent = d->parent;
	e->jid = d->jid;
	e->kind = d->live ? d->kind : CFS_KIND_DELETED;
	memcpy(e->name, d->name, sizeof(e->name));
	if (!d->live)
		return;
	e->size = d->size;
	e->mode = d->mode;
	e->atime_ns = d->atime_ns;
	e->mtime_ns = d->mtime_ns;
	e->ctime_ns = d->ctime_ns;
	e->mount_ns = d->mount_ns;
	if (d->blocks.n &&
	    (e->blocks.ids = malloc(d->blocks.n * sizeof(*d->blocks.ids)))) {
		memcpy(e->blocks.ids, d->blocks.ids,
		       d->blocks.n * sizeof(*d->blocks.ids));
		e->blocks.n = d->blocks.n;
	}
	if (d->target)
		e->target = strdup(d->target);
}

static int by_jid(const void *a, const void *b)
{
	const struct fake_node *const *x = a, *const *y = b;

	return (*x)->jid < (*y)->jid ? -1 : (*x)->jid > (*y)->jid;
}

static enum cfs_err list(struct remote_conn *c,
			 const struct remote_list_req *req, const bool *stop,
			 struct remote_page *page, struct cfs_error *err)
{
	struct fake_remote *r = fr_of(c);
	struct fake_server *s = r->s;
	struct fake_node **pick = NULL;
	struct fake_ns *n;
	size_t k = 0;
	enum cfs_err rc;

	(void)stop;
	memset(page, 0, sizeof(*page));
	delay(s);
	pthread_mutex_lock(&s->lock);
	n = ns_get(s, req->ns);
	rc = fault_before(draw(s), "GET /meta/ns/NS/list", err);
	if (rc == CFS_OK && !readable(n, r->user))
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "no namespace %lld",
			      (long long)req->ns);
	else if (rc == CFS_OK && (req->at || req->as_of_jid))
		rc = cfs_fail(err, CFS_ERR_INTERNAL,
			      "the fake keeps no past states");
	else if (rc == CFS_OK && req->cursor > n->head)
		rc = cfs_fail(err, CFS_ERR_BAD_CURSOR,
			      "a cursor past the head");
	if (rc == CFS_OK && !(pick = calloc(n->n + 1, sizeof(*pick))))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; rc == CFS_OK && i < n->n; i++)
		if (n->nodes[i].jid > req->cursor &&
		    (n->nodes[i].live || req->cursor > 0))
			pick[k++] = &n->nodes[i];
	if (rc == CFS_OK && k)
		qsort(pick, k, sizeof(*pick), by_jid);
	if (rc == CFS_OK) {
		size_t m = k < req->limit ? k : req->limit;

		page->head = n->head;
		page->more = m < k;
		page->cursor = page->more ? pick[m - 1]->jid : n->head;
		page->entries = calloc(m + 1, sizeof(*page->entries));
		page->paths = calloc(m + 1, sizeof(*page->paths));
		if (!page->entries || !page->paths)
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		for (size_t i = 0; rc == CFS_OK && i < m; i++)
			entry_of(n, pick[i], &page->entries[page->n++]);
	}
	pthread_mutex_unlock(&s->lock);
	free(pick);
	if (rc)
		remote_page_release(page);
	return rc;
}

static bool moved(struct fake_server *s, unsigned user,
		  const struct remote_cursor *cursors, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct fake_ns *m = ns_get(s, cursors[i].ns);

		if (!readable(m, user) || m->head > cursors[i].cursor)
			return true;
	}
	return false;
}

/* Whether a block of a pending list of a namespace of cursors landed
 * after the pending cursor (none asked: never). */
static bool landed(struct fake_server *s, unsigned user,
		   const struct remote_cursor *cursors, size_t n,
		   const struct remote_pending *pending, size_t at)
{
	const struct fake_pending *p = &s->pending[at];
	bool watched = false;

	for (size_t i = 0; i < n; i++)
		watched |= cursors[i].ns == p->ns;
	return pending && watched && p->ready > pending->cursor &&
	       readable(ns_get(s, p->ns), user);
}

static bool any_landed(struct fake_server *s, unsigned user,
		       const struct remote_cursor *cursors, size_t n,
		       const struct remote_pending *pending)
{
	for (size_t i = 0; i < s->n_pending; i++)
		if (landed(s, user, cursors, n, pending, i))
			return true;
	return false;
}

/* Fills pending with what landed past its cursor (under the lock). */
static enum cfs_err fill_pending(struct fake_server *s, unsigned user,
				 const struct remote_cursor *cursors, size_t n,
				 struct remote_pending *pending,
				 struct cfs_error *err)
{
	pending->n = 0;
	pending->landed = calloc(s->n_pending + 1, sizeof(*pending->landed));
	if (!pending->landed)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (size_t i = 0; i < s->n_pending; i++)
		if (landed(s, user, cursors, n, pending, i))
			pending->landed[pending->n++] = (struct remote_landed){
				.ns = s->pending[i].ns,
				.id = s->pending[i].id,
				.size = s->pending[i].size,
				.expires = (int64_t)time(NULL) + 600,
			};
	pending->moved = moved(s, user, cursors, n);
	pending->cursor = s->pending_seq > pending->cursor ? s->pending_seq
							   : pending->cursor;
	return CFS_OK;
}

static enum cfs_err longpoll(struct remote_conn *c,
			     const struct remote_cursor *cursors, size_t n,
			     unsigned timeout_s, const bool *stop,
			     struct remote_pending *pending,
			     struct cfs_error *err)
{
	struct fake_remote *r = fr_of(c);
	struct fake_conn *fc = (struct fake_conn *)c;
	struct fake_server *s = r->s;
	uint64_t until = cfs_monotonic_ms() + 1000 * (uint64_t)timeout_s;
	bool parked = false;
	enum cfs_err rc;

	delay(s);
	pthread_mutex_lock(&s->lock);
	rc = fault_before(draw(s), "POST /meta/longpoll", err);
	while (rc == CFS_OK && !moved(s, r->user, cursors, n) &&
	       !any_landed(s, r->user, cursors, n, pending) &&
	       cfs_monotonic_ms() < until) {
		struct timespec t = cfs_deadline_in_ms(50);

		if (!parked) {
			parked = true;
			s->parked++;
			pthread_cond_broadcast(&s->parking);
		}
		if ((stop && __atomic_load_n(stop, __ATOMIC_RELAXED)) ||
		    fc->woken)
			rc = cfs_fail(err, CFS_ERR_UNREACHABLE,
				      "POST /meta/longpoll: stopped");
		else
			pthread_cond_timedwait(&s->moved, &s->lock, &t);
	}
	s->parked -= parked;
	fc->woken = false;
	for (size_t i = 0; rc == CFS_OK && i < n; i++)
		if (!readable(ns_get(s, cursors[i].ns), r->user))
			rc = cfs_fail(err, CFS_ERR_NOT_FOUND,
				      "namespace %lld is not yours",
				      (long long)cursors[i].ns);
	if (rc == CFS_OK && pending)
		rc = fill_pending(s, r->user, cursors, n, pending, err);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static enum cfs_err need_blocks(struct remote_conn *c,
				const struct cfs_block_id *ids, size_t n,
				unsigned max_s, const bool *stop,
				struct cfs_blocklist *needed,
				struct cfs_error *err)
{
	struct fake_remote *r = fr_of(c);
	struct fake_server *s = r->s;
	enum cfs_err rc;

	(void)max_s, (void)stop;
	delay(s);
	pthread_mutex_lock(&s->lock);
	rc = fault_before(draw(s), "POST /block/need", err);
	for (size_t i = 0; rc == CFS_OK && i < n; i++)
		if (!block_readable(s, r->user, &ids[i]))
			needed->ids[needed->n++] = ids[i];
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static enum cfs_err commit(struct remote_conn *c,
			   const struct remote_commit_req *req, unsigned max_s,
			   const bool *stop, struct remote_commit *out,
			   struct cfs_error *err)
{
	struct fake_remote *r = fr_of(c);
	struct fake_server *s = r->s;
	enum fake_fault f;
	struct fake_ns *n;
	enum cfs_err rc;

	(void)max_s, (void)stop;
	out->head = 0;
	out->results = calloc(req->n + 1, sizeof(*out->results));
	if (!out->results)
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	delay(s);
	pthread_mutex_lock(&s->lock);
	f = s->next_commit ? s->next_commit : draw(s);
	s->next_commit = FAKE_OK;
	n = ns_get(s, req->ns);
	rc = fault_before(f, "POST /meta/ns/NS/commit", err);
	if (rc == CFS_OK && !readable(n, r->user))
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "no namespace %lld",
			      (long long)req->ns);
	for (size_t i = 0; rc == CFS_OK && i < req->n; i++) {
		const struct queued_op *op = &req->ops[i];
		struct fake_answer *a =
			kept(n, req->client, req->client ? op->seq : 0);

		if (a) {
			out->results[i] = a->r;
			continue;
		}
		if (req->announce && op->type == QUEUE_FILE) {
			out->results[i] = announce(s, n->ns, r->user, op);
			continue;
		}
		s->author = r->user;
		out->results[i] = apply(s, n, r->user, op);
		if (op->type == QUEUE_FILE &&
		    out->results[i].status == REMOTE_COMMITTED)
			pending_drop(s, n->ns, r->user, op->path);
		if (req->client && out->results[i].status == REMOTE_COMMITTED)
			keep(n, req->client, op->seq, req->keep_from,
			     &out->results[i]);
	}
	if (rc == CFS_OK)
		out->head = n->head;
	if (rc == CFS_OK && f == FAKE_DROP)
		rc = cfs_fail(err, CFS_ERR_UNREACHABLE,
			      "POST /meta/ns/NS/commit: the answer was lost");
	pthread_mutex_unlock(&s->lock);
	if (rc)
		remote_commit_release(out);
	return rc;
}

/* A call of r's user on namespace ns: delayed, then under the server's
 * lock (the caller lets go of it), with its fault drawn and ns readable;
 * *n is ns. */
static enum cfs_err call_on(struct fake_remote *r, int64_t ns, const char *what,
			    struct fake_ns **n, struct cfs_error *err)
{
	enum cfs_err rc;

	delay(r->s);
	pthread_mutex_lock(&r->s->lock);
	*n = ns_get(r->s, ns);
	rc = fault_before(draw(r->s), what, err);
	if (rc == CFS_OK && !readable(*n, r->user))
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "no namespace %lld",
			      (long long)ns);
	return rc;
}

/* The sharing verbs, as the server's (server/meta_sql_share.c). */

/* user's root namespace: the first not shared they can read. */
static struct fake_ns *root_of(struct fake_server *s, unsigned user)
{
	for (size_t i = 0; i < s->n_ns; i++)
		if (!s->ns[i].shared && readable(&s->ns[i], user))
			return &s->ns[i];
	return NULL;
}

/* The live MOUNT of shared ns in root, or NULL. */
static struct fake_node *mount_in(struct fake_ns *root, int64_t ns)
{
	for (size_t i = 0; root && i < root->n; i++)
		if (root->nodes[i].live &&
		    root->nodes[i].kind == CFS_KIND_MOUNT &&
		    root->nodes[i].mount_ns == ns)
			return &root->nodes[i];
	return NULL;
}

/* Whether a live MOUNT lies inside folder top of n. */
static bool holds_mount(struct fake_ns *n, int64_t top)
{
	for (size_t i = 0; i < n->n; i++)
		if (n->nodes[i].live && n->nodes[i].kind == CFS_KIND_MOUNT &&
		    n->nodes[i].id != top && inside(n, n->nodes[i].id, top))
			return true;
	return false;
}

/* A copy of node d of the subtree shared, into the new namespace. */
static enum cfs_err copy_node(struct fake_server *s, struct fake_ns *to,
			      const struct fake_node *d, int64_t top,
			      struct cfs_error *err)
{
	struct fake_node *c = &to->nodes[d->id - 1];

	*c = *d;
	c->parent = d->parent == top ? 0 : d->parent;
	c->target = d->target ? strdup(d->target) : NULL;
	c->blocks = (struct cfs_blocklist){ 0 };
	if (d->blocks.n) {
		c->blocks.ids = malloc(d->blocks.n * sizeof(*d->blocks.ids));
		if (!c->blocks.ids)
			return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		memcpy(c->blocks.ids, d->blocks.ids,
		       d->blocks.n * sizeof(*d->blocks.ids));
		c->blocks.n = d->blocks.n;
	}
	return row(s, to, c, err);
}

/*
 * Shares folder f of root n as user: a new namespace holds its subtree
 * with the same node ids (it numbers on from where n stands) at new
 * JIDs, parents first; n journals the subtree deleted but keeps its
 * nodes' JIDs; f becomes a MOUNT of the new namespace.
 */
static enum cfs_err share_folder(struct fake_server *s, struct fake_ns *n,
				 struct fake_node *f, unsigned user,
				 int64_t *ns, struct cfs_error *err)
{
	struct fake_ns *to;
	enum cfs_err rc = CFS_OK;
	int64_t top = f->id;

	if (holds_mount(n, top))
		return cfs_fail(err, CFS_ERR_FORBIDDEN,
				"shared folders do not nest");
	if (s->n_ns == MAX_NS)
		return cfs_fail(err, CFS_ERR_INTERNAL, "too many namespaces");
	to = &s->ns[s->n_ns];
	memset(to, 0, sizeof(*to));
	if (n->n && !(to->nodes = calloc(n->n, sizeof(*to->nodes))))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	to->ns = (int64_t)++s->n_ns;
	to->members = 1ull << user;
	to->shared = true;
	to->owner = user;
	to->n = to->cap = n->n;
	for (size_t i = 0; i < to->n; i++)
		to->nodes[i].id = (int64_t)i + 1; /* not live, never listed */
	/* Parents first: by depth, since ids say nothing of it. */
	for (unsigned depth = 1; rc == CFS_OK && depth <= CFS_PATH_MAX / 2;
	     depth++) {
		bool any = false;

		for (size_t i = 0; rc == CFS_OK && i < n->n; i++) {
			struct fake_node *d = &n->nodes[i];
			unsigned k = 0;

			if (!d->live || d->id == top || !inside(n, d->id, top))
				continue;
			for (struct fake_node *p = d; p && p->id != top;
			     p = node_get(n, p->parent))
				k++;
			if (k == depth)
				rc = copy_node(s, to, d, top, err);
			any = any || k >= depth;
		}
		if (!any)
			break;
	}
	for (size_t i = 0; rc == CFS_OK && i < n->n; i++) {
		struct fake_node *d = &n->nodes[i];

		if (!d->live || d->id == top || !inside(n, d->id, top))
			continue;
		d->live = false;
		d->kind = CFS_KIND_DELETED;
		rc = journal(s, n, d, true, err);
	}
	if (rc)
		return rc;
	f->kind = CFS_KIND_MOUNT;
	f->size = 0;
	f->mount_ns = to->ns;
	*ns = to->ns;
	return row(s, n, f, err);
}

static enum cfs_err share(struct remote_conn *c, int64_t root_ns,
			  const char *folder, int64_t *ns,
			  struct cfs_error *err)
{
	struct fake_remote *r = fr_of(c);
	struct fake_server *s = r->s;
	struct fake_node *f = NULL;
	struct fake_ns *n;
	enum cfs_err rc;

	rc = call_on(r, root_ns, "POST /meta/share", &n, err);
	if (rc == CFS_OK && n != root_of(s, r->user))
		rc = cfs_fail(err, CFS_ERR_FORBIDDEN,
			      "shared folders do not nest");
	else if (rc == CFS_OK && !(f = at_path(n, folder)))
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "'%s' does not exist",
			      folder);
	else if (rc == CFS_OK && f->kind == CFS_KIND_MOUNT)
		*ns = f->mount_ns;
	else if (rc == CFS_OK && f->kind != CFS_KIND_DIR)
		rc = cfs_fail(err, CFS_ERR_NOT_DIR, "'%s' is not a directory",
			      folder);
	else if (rc == CFS_OK) {
		s->author = r->user;
		rc = share_folder(s, n, f, r->user, ns, err);
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* A user by the name fake_user_name() gives, or -1. */
static int user_by_name(const char *name)
{
	char want[16];

	for (unsigned u = 0; name && u < 64; u++) {
		fake_user_name(u, want);
		if (strcmp(want, name) == 0)
			return (int)u;
	}
	return -1;
}

/* Ends user's membership of n: its MOUNT in their root is deleted; a
 * folder its owner leaves passes to the lowest member left. */
static enum cfs_err unmount(struct fake_server *s, struct fake_ns *n,
			    unsigned user, struct cfs_error *err)
{
	struct fake_ns *root = root_of(s, user);
	struct fake_node *m = mount_in(root, n->ns);

	n->members &= ~(1ull << user);
	if (n->owner == user && n->members)
		n->owner = (unsigned)__builtin_ctzll(n->members);
	pthread_cond_broadcast(&s->moved); /* its long polls hear of it */
	if (!m)
		return CFS_OK;
	m->live = false;
	m->kind = CFS_KIND_DELETED;
	return row(s, root, m, err);
}

/* Mounts shared n in user's root, under the name of inviter's mount. */
static enum cfs_err mount_for(struct fake_server *s, struct fake_ns *n,
			      unsigned inviter, unsigned user,
			      struct cfs_error *err)
{
	struct fake_node *mine = mount_in(root_of(s, inviter), n->ns), *m;
	struct fake_ns *root = root_of(s, user);
	char name[CFS_NAME_MAX + 1];

	if (!root || !mine)
		return cfs_fail(err, CFS_ERR_NOT_FOUND, "no root to mount in");
	snprintf(name, sizeof(name), "%s", mine->name);
	for (int i = 2; child(root, 0, name, strlen(name)); i++)
		snprintf(name, sizeof(name), "%.200s (%d)", mine->name, i);
	if (!(m = node_new(root, 0, name)))
		return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	m->kind = CFS_KIND_MOUNT;
	m->mode = 0755;
	m->atime_ns = m->mtime_ns = m->ctime_ns = cfs_now_ns();
	m->mount_ns = n->ns;
	n->members |= 1ull << user;
	return row(s, root, m, err);
}

static enum cfs_err member(struct remote_conn *c, int64_t ns,
			   enum remote_member_verb verb, const char *user,
			   struct cfs_error *err)
{
	struct fake_remote *r = fr_of(c);
	struct fake_server *s = r->s;
	int other = verb == REMOTE_LEAVE ? (int)r->user : user_by_name(user);
	struct fake_ns *n;
	enum cfs_err rc;

	rc = call_on(r, ns, "POST /meta/ns/NS/members", &n, err);
	s->author = r->user;
	if (rc == CFS_OK && !n->shared)
		rc = cfs_fail(err, CFS_ERR_FORBIDDEN,
			      "a root namespace, not a shared folder");
	else if (rc == CFS_OK && other < 0)
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "no user '%s'",
			      user ? user : "");
	else if (rc == CFS_OK && verb == REMOTE_INVITE &&
		 readable(n, (unsigned)other))
		rc = cfs_fail(err, CFS_ERR_EXISTS, "'%s' is a member already",
			      user);
	else if (rc == CFS_OK && verb == REMOTE_INVITE)
		rc = mount_for(s, n, r->user, (unsigned)other, err);
	else if (rc == CFS_OK && verb == REMOTE_REMOVE && n->owner != r->user)
		rc = cfs_fail(err, CFS_ERR_FORBIDDEN,
			      "only the owner removes members");
	else if (rc == CFS_OK && !readable(n, (unsigned)other))
		rc = cfs_fail(err, CFS_ERR_NOT_FOUND, "'%s' is not a member",
			      user ? user : "");
	else if (rc == CFS_OK)
		rc = unmount(s, n, (unsigned)other, err);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static enum cfs_err members(struct remote_conn *c, int64_t ns,
			    struct remote_member **list, size_t *n,
			    struct cfs_error *err)
{
	struct fake_remote *r = fr_of(c);
	struct fake_server *s = r->s;
	struct fake_ns *sh;
	enum cfs_err rc;

	*list = NULL;
	*n = 0;
	rc = call_on(r, ns, "GET /meta/ns/NS/members", &sh, err);
	if (rc == CFS_OK && !sh->shared)
		rc = cfs_fail(err, CFS_ERR_FORBIDDEN,
			      "a root namespace, not a shared folder");
	if (rc == CFS_OK && !(*list = calloc(64, sizeof(**list))))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (unsigned u = 0; rc == CFS_OK && u < 64; u++) {
		char name[16];

		if (!readable(sh, u))
			continue;
		fake_user_name(u, name);
		(*list)[*n].owner = sh->owner == u;
		if (!((*list)[(*n)++].user = strdup(name)))
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	pthread_mutex_unlock(&s->lock);
	if (rc) {
		remote_members_free(*list, *n);
		*list = NULL;
		*n = 0;
	}
	return rc;
}

static enum cfs_err history(struct remote_conn *c, int64_t ns, const char *path,
			    struct remote_version **list, size_t *n,
			    struct cfs_error *err)
{
	struct fake_remote *r = fr_of(c);
	struct fake_server *s = r->s;
	struct fake_ns *h;
	enum cfs_err rc;

	*list = NULL;
	*n = 0;
	rc = call_on(r, ns, "GET /meta/ns/NS/history", &h, err);
	if (rc == CFS_OK && !(*list = calloc(h->n_rows + 1, sizeof(**list))))
		rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	for (size_t i = h ? h->n_rows : 0; rc == CFS_OK && i-- > 0;) {
		const struct fake_row *w = &h->rows[i];
		struct remote_version *v = &(*list)[*n];
		char name[16];
		struct fake_node snap = { .blocks = w->e.blocks,
					  .target = w->e.target };

		if (strcmp(w->path, path) != 0)
			continue;
		/* A deep copy of the row's entry, through a node. */
		snap.id = w->e.node;
		snap.parent = w->e.parent;
		memcpy(snap.name, w->e.name, sizeof(snap.name));
		snap.kind = w->e.kind;
		snap.live = w->e.kind != CFS_KIND_DELETED;
		snap.jid = w->jid;
		snap.size = w->e.size;
		snap.mode = w->e.mode;
		snap.atime_ns = w->e.atime_ns;
		snap.mtime_ns = w->e.mtime_ns;
		snap.ctime_ns = w->e.ctime_ns;
		snap.mount_ns = w->e.mount_ns;
		entry_of(h, &snap, &v->e);
		v->at = w->at;
		v->before = 0; /* no folder restores in the fake */
		fake_user_name(w->author, name);
		v->author = strdup(name);
		(*n)++;
		if (!v->author)
			rc = cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	pthread_mutex_unlock(&s->lock);
	if (rc) {
		remote_versions_free(*list, *n);
		*list = NULL;
		*n = 0;
	}
	return rc;
}

/* Block transfers: queued by get and put, run whole by xfers_step. */

static struct remote_xfers *xfers_new(struct remote *r)
{
	struct remote_xfers *x = calloc(1, sizeof(*x));

	if (!x)
		return NULL;
	x->r = fr(r);
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->wake, NULL);
	return x;
}

static void xfer_end(struct remote_xfers *set, struct remote_xfer *x)
{
	for (struct remote_xfer **p = &set->list; *p; p = &(*p)->next) {
		if (*p == x) {
			*p = x->next;
			break;
		}
	}
	free(x->parts);
	free(x);
}

static void xfers_free(struct remote_xfers *set)
{
	if (!set)
		return;
	while (set->list)
		xfer_end(set, set->list);
	pthread_cond_destroy(&set->wake);
	pthread_mutex_destroy(&set->lock);
	free(set);
}

static struct remote_xfer *xfer_add(struct remote_xfers *set,
				    const struct cfs_block_id *id, void *tag)
{
	struct remote_xfer *x = calloc(1, sizeof(*x)), **p = &set->list;

	if (!x)
		return NULL;
	x->id = *id;
	x->tag = tag;
	x->fd = -1;
	x->born = set->clock;
	while (*p)
		p = &(*p)->next;
	*p = x;
	return x;
}

static struct remote_xfer *get(struct remote_xfers *set,
			       const struct cfs_block_id *id, remote_sink *sink,
			       void *arg, void *tag)
{
	struct remote_xfer *x = xfer_add(set, id, tag);

	if (x) {
		x->sink = sink;
		x->arg = arg;
	}
	return x;
}

static struct remote_xfer *put(struct remote_xfers *set,
			       const struct cfs_block_id *id, int fd,
			       uint64_t len, void *tag)
{
	struct remote_xfer *x = xfer_add(set, id, tag);

	if (x) {
		x->put = true;
		x->fd = fd;
		x->len = len;
	}
	return x;
}

static struct remote_xfer *put_batch(struct remote_xfers *set,
				     const struct cfs_block_id *ids,
				     const int *fds, const uint64_t *lens,
				     size_t n, void *tag)
{
	struct remote_xfer *x;
	struct remote_xfer *parts = calloc(n, sizeof(*parts));

	if (!parts || !(x = xfer_add(set, &ids[0], tag))) {
		free(parts);
		return NULL;
	}
	x->put = true;
	x->parts = parts;
	x->n_parts = n;
	for (size_t i = 0; i < n; i++)
		parts[i] = (struct remote_xfer){
			.id = ids[i], .put = true, .fd = fds[i], .len = lens[i]
		};
	return x;
}

/* Stores the block x uploads, as user, if it hashes to its id. */
/* Block id, uploaded by user, lands in user's pending lists. */
static void pending_landed(struct fake_server *s, unsigned user,
			   const struct cfs_block_id *id)
{
	bool any = false;

	for (size_t i = 0; i < s->n_pending; i++) {
		struct fake_pending *p = &s->pending[i];

		if (p->user != user || p->ready ||
		    !cfs_block_id_equal(&p->id, id))
			continue;
		if (!any)
			s->pending_seq++;
		any = true;
		p->ready = s->pending_seq;
	}
	if (any)
		pthread_cond_broadcast(&s->moved);
}

static enum cfs_err store(struct fake_server *s, unsigned user,
			  struct remote_xfer *x, struct cfs_error *err)
{
	struct cfs_block_id got;
	struct fake_block *b;
	char *data = x->len > CFS_BLOCK_SIZE ? NULL : malloc(x->len + 1);
	ssize_t k = data ? pread(x->fd, data, x->len, 0) : -1;

	if (k < 0 || (uint64_t)k != x->len || cfs_sha256(data, x->len, &got)) {
		free(data);
		return cfs_fail(err, CFS_ERR_UNREACHABLE,
				"cannot read the block to send");
	}
	if (!cfs_block_id_equal(&got, &x->id)) {
		free(data);
		return cfs_fail(err, CFS_ERR_UNREACHABLE, "HTTP 400");
	}
	pending_landed(s, user, &x->id);
	if ((b = block_get(s, &x->id))) {
		free(data); /* a duplicate: read and hashed all the same */
		b->uploaders |= 1ull << user;
		return CFS_OK;
	}
	if (s->n_blocks == s->cap_blocks) {
		size_t cap = s->cap_blocks ? 2 * s->cap_blocks : 64;
		struct fake_block *v = realloc(s->blocks, cap * sizeof(*v));

		if (!v) {
			free(data);
			return cfs_fail(err, CFS_ERR_UNREACHABLE, "HTTP 500");
		}
		s->blocks = v;
		s->cap_blocks = cap;
	}
	s->blocks[s->n_blocks++] = (struct fake_block){
		.id = x->id,
		.data = data,
		.len = (uint32_t)x->len,
		.uploaders = 1ull << user,
	};
	return CFS_OK;
}

/* Runs transfer x whole (under the lock): its outcome. */
static enum cfs_err run(struct fake_server *s, unsigned user,
			struct remote_xfer *x, struct cfs_error *err)
{
	enum fake_fault f = draw(s);
	enum cfs_err rc = fault_before(f, "block", err);
	struct fake_block *b;

	if (rc)
		return rc;
	if (x->put) {
		s->uploads++;
		s->batches += x->n_parts > 0;
		if (x->n_parts && s->no_batch)
			return cfs_fail(err, CFS_ERR_NOT_FOUND,
					"the server has no batch uploads");
		/* A batch stores its blocks in order up to the first that
		 * fails (the real server checks every hash first; the
		 * uploader only needs to know that not all were stored). */
		for (size_t i = 0; rc == CFS_OK && i < x->n_parts; i++)
			rc = store(s, user, &x->parts[i], err);
		if (rc == CFS_OK && !x->n_parts)
			rc = store(s, user, x, err);
		if (rc == CFS_OK && f == FAKE_DROP)
			rc = cfs_fail(err, CFS_ERR_UNREACHABLE,
				      "the answer was lost");
		return rc;
	}
	/* Unknown and forbidden look the same. */
	if (!(block_readable(s, user, &x->id) ||
	      pending_readable(s, user, &x->id)) ||
	    !(b = block_get(s, &x->id)))
		return cfs_fail(err, CFS_ERR_UNREACHABLE,
				"the server answered HTTP 404");
	if (x->sink(x->arg, b->data, b->len) != b->len)
		return cfs_fail(err, CFS_ERR_UNREACHABLE, "write error");
	return CFS_OK;
}

static unsigned xfers_step(struct remote_xfers *set, remote_xfer_done *done,
			   void *arg)
{
	struct fake_server *s = set->r->s;
	uint64_t stamp = ++set->clock;
	unsigned ended = 0;

	/* Each transfer made before the step runs once, whole: done() may
	 * end it, and start others, which the next step runs. */
	for (;;) {
		struct remote_xfer *x = set->list;
		struct cfs_error e = { 0 };
		enum cfs_err rc;

		while (x && (x->ran || x->born >= stamp))
			x = x->next;
		if (!x)
			break;
		pthread_mutex_lock(&s->lock);
		rc = run(s, set->r->user, x, &e);
		pthread_mutex_unlock(&s->lock);
		x->ran = true;
		ended++;
		done(arg, x, x->tag, rc, &e);
	}
	return ended;
}

/* Whether a transfer of set has yet to run. */
static bool waiting(const struct remote_xfers *set)
{
	for (const struct remote_xfer *x = set->list; x; x = x->next)
		if (!x->ran)
			return true;
	return false;
}

static void xfers_wait(struct remote_xfers *set, unsigned ms)
{
	struct timespec until = cfs_deadline_in_ms(ms);

	pthread_mutex_lock(&set->lock);
	while (!set->woken && !waiting(set) &&
	       pthread_cond_timedwait(&set->wake, &set->lock, &until) !=
		       ETIMEDOUT)
		;
	set->woken = false;
	pthread_mutex_unlock(&set->lock);
}

static void xfers_wake(struct remote_xfers *set)
{
	pthread_mutex_lock(&set->lock);
	set->woken = true;
	pthread_cond_signal(&set->wake);
	pthread_mutex_unlock(&set->lock);
}

static void fake_remote_free(struct remote *r)
{
	free(fr(r));
}

static const struct remote_ops fake_ops = {
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
	.free = fake_remote_free,
};

void fake_no_batch(struct fake_server *s, bool no_batch)
{
	pthread_mutex_lock(&s->lock);
	s->no_batch = no_batch;
	pthread_mutex_unlock(&s->lock);
}

unsigned fake_uploads(struct fake_server *s, unsigned *batches)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->uploads;
	*batches = s->batches;
	pthread_mutex_unlock(&s->lock);
	return n;
}

struct remote *fake_remote_new(struct fake_server *s, unsigned user)
{
	struct fake_remote *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->base.ops = &fake_ops;
	snprintf(r->base.url, sizeof(r->base.url), "fake://%u", user);
	r->s = s;
	r->user = user;
	return &r->base;
}

int64_t fake_head(struct fake_server *s, int64_t ns)
{
	int64_t head;

	pthread_mutex_lock(&s->lock);
	head = ns_get(s, ns) ? ns_get(s, ns)->head : -1;
	pthread_mutex_unlock(&s->lock);
	return head;
}

bool fake_journal_has(struct fake_server *s, int64_t ns, int64_t jid,
		      int64_t node)
{
	struct fake_ns *n;
	bool found = false;

	pthread_mutex_lock(&s->lock);
	n = ns_get(s, ns);
	for (size_t i = 0; n && i < n->n_rows && !found; i++)
		found = n->rows[i].jid == jid && n->rows[i].node == node;
	pthread_mutex_unlock(&s->lock);
	return found;
}

enum cfs_kind fake_lookup(struct fake_server *s, int64_t ns, const char *path,
			  uint64_t *size)
{
	struct fake_node *d;
	enum cfs_kind kind = CFS_KIND_DELETED;

	pthread_mutex_lock(&s->lock);
	d = ns_get(s, ns) ? at_path(ns_get(s, ns), path) : NULL;
	if (d) {
		kind = d->kind;
		*size = d->size;
	}
	pthread_mutex_unlock(&s->lock);
	return kind;
}

static void walk(struct fake_server *s, struct fake_ns *n, int64_t parent,
		 const char *base,
		 void (*fn)(void *, const char *, enum cfs_kind, uint64_t),
		 void *arg)
{
	for (size_t i = 0; i < n->n; i++) {
		struct fake_node *d = &n->nodes[i];
		char path[CFS_PATH_MAX + 1];

		if (!d->live || d->parent != parent)
			continue;
		snprintf(path, sizeof(path), "%s%s%s", base, *base ? "/" : "",
			 d->name);
		fn(arg, path, d->kind, d->size);
		if (d->kind == CFS_KIND_DIR)
			walk(s, n, d->id, path, fn, arg);
		else if (d->kind == CFS_KIND_MOUNT && ns_get(s, d->mount_ns))
			walk(s, ns_get(s, d->mount_ns), 0, path, fn, arg);
	}
}

void fake_walk(struct fake_server *s, int64_t ns,
	       void (*fn)(void *arg, const char *path, enum cfs_kind kind,
			  uint64_t size),
	       void *arg)
{
	pthread_mutex_lock(&s->lock);
	if (ns_get(s, ns))
		walk(s, ns_get(s, ns), 0, "", fn, arg);
	pthread_mutex_unlock(&s->lock);
}
