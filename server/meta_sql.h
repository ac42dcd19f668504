/*
 * Internals shared by the files of the SQL metadata backend, written once
 * on the SQL seam (server/db.h) and run by both engines:
 *
 *	meta_sql.c           transactions, users, tokens, blocks
 *	meta_sql_tree.c      nodes, the journal, listings
 *	meta_sql_commit.c    the operations of a commit, the answers kept
 *	                     for a client that sends them again, and group
 *	                     commit (commits that arrive together share a
 *	                     transaction)
 *	meta_sql_share.c     shared folders and memberships
 *	meta_sql_history.c   history and listings of the past
 *	meta_sql_gc.c        garbage collection
 *	meta_sql_pending.c   pending block lists (streaming sync)
 *	meta_sqlite.c        the embedded engine: its schema, opening it
 *	meta_pg.c            PostgreSQL: its schema, opening it, LISTEN
 *
 * Schema (each engine's open function holds it in its own dialect):
 *
 *	users(id, name, root_ns)         tokens(hash, user_id, revoked)
 *	namespaces(id, head, next_node, shared, owner)
 *	members(ns, user_id, mount_node) mount_node: in the user's root ns
 *	journal(ns, jid, node, ...)      append-only, one row per version
 *	nodes(ns, node, ..., jid)        each node's newest state
 *	blocks(id, size)                 block_owners(id, user_id)
 *	block_refs(id, ns)               a journal row of ns lists block id
 *	answers(user_id, client, seq, jid, node, prev_jid)
 *	                                 committed operations a client
 *	                                 numbered, until it lets them go
 *	gc_horizon(at)                   rows superseded before it may be
 *	                                 gone (garbage collection)
 *	pending(id, ns, path, user_id, expires)
 *	                                 a file commit answered need_blocks
 *	pending_blocks(pending, idx, id, size, ready)
 *	                                 the blocks it needed; ready: the
 *	                                 pending cursor when it landed, 0
 *	                                 before
 *	pending_seq(n)                   the pending cursor: one row
 *
 * Invariants:
 *  1. namespaces.head is the largest JID of the namespace's journal, and a
 *     JID is taken from it inside the transaction that writes its row.
 *  2. nodes holds, per node, the columns of its newest journal row, except
 *     that the descendants of a deleted (or shared-away) directory are
 *     marked deleted there with the JID they had: their delete rows in the
 *     journal (for history and garbage collection) are not listed, since
 *     the directory's row tells clients to drop the whole subtree.
 *  3. Among live nodes, (ns, parent, name) is unique; node 0 is the root.
 *  4. A user is a member of their root namespace (mount_node NULL) and of
 *     each shared namespace mounted by a MOUNT node of their root.
 *  5. block_refs has (id, ns) for every block of every file row of ns.
 *  6. Hard links: a LINK node is a further name of the live node link_of
 *     of the same namespace (a file, symlink or special file, never a
 *     directory, a mount or another LINK), which holds the content of
 *     every name.  A node keeps its id while it has a name: when its own
 *     name goes (deleted, replaced, its folder deleted or shared away),
 *     it takes the place of one of its LINK nodes instead, which goes
 *     (sq_name_drop).
 *  7. A pending_blocks row is ready (> 0) only once the pending list's
 *     user uploaded that block after the list was recorded (the upload
 *     checked its hash); ready values come from pending_seq, taken
 *     inside the transaction that sets them, so they grow in commit
 *     order as JIDs do (invariant 1).
 *  8. A pending list lives until its expiry, or until a file commits at
 *     its (ns, path) for its user; then it and its blocks' rows go.
 */
#ifndef SERVER_META_SQL_H
#define SERVER_META_SQL_H

#include "cloudfs/path.h"
#include "server/db.h"
#include "server/meta.h"

#define SQ_MAX_CHANGED 16

/* How long a transaction that collided with another (db_retryable()) is
 * tried again: a collision is contention to wait out, as SQLite's busy
 * timeout waits out a writer (lib/sql.c), not a failure to answer; a
 * count of tries runs out sooner the more writers there are. */
#define SQ_RETRY_MS 10000

/* One transaction on a pooled connection (sq_run). */
struct sq_conn {
	struct db_conn *db;
	int64_t changed[SQ_MAX_CHANGED]; /* namespaces to wake after commit */
	size_t n_changed;
	/* A namespace did not fit in changed; with deferrable set, the
	 * body will undo what changed it and run it alone instead, so
	 * sq_changed() need not warn. */
	bool overflow, deferrable;
	int64_t pending_ttl_s; /* the store's (struct meta) */
};

struct sq_commit_queue; /* meta_sql_commit.c */

struct sq_meta {
	struct meta base;
	meta_notify_fn notify;
	void *notify_arg;
	struct db *db;
	struct sq_commit_queue *commits; /* commits waiting for a group */
};

/* The queue of commits waiting to share a transaction (sq_commit()), in
 * lanes: commits of namespaces in different lanes never share one. */
enum cfs_err sq_commit_queue_new(size_t lanes, struct sq_commit_queue **out,
				 struct cfs_error *err);
void sq_commit_queue_free(struct sq_commit_queue *q);

/* The backend on db, which it owns from now on (closed on failure too);
 * commit_lanes: see sq_commit_queue_new(). */
enum cfs_err sq_meta_new(struct db *db, size_t commit_lanes,
			 meta_notify_fn notify, void *notify_arg,
			 struct meta **out, struct cfs_error *err);

/*
 * Runs body(c, arg, err) in one transaction (db_begin(), write or not) on
 * a pooled connection: commits if body returns CFS_OK, announcing the
 * namespaces it changed (db_announce()), then wakes their long polls
 * here; rolls back otherwise.  A write the engine refused because it
 * collided with another transaction is run again, for up to SQ_RETRY_MS,
 * so body must start from its arguments afresh each time and
 * leave nothing outside the database that a second run would repeat.
 */
typedef enum cfs_err (*sq_body)(struct sq_conn *c, void *arg,
				struct cfs_error *err);
enum cfs_err sq_run(struct meta *m, bool write, sq_body body, void *arg,
		    struct cfs_error *err);

/* sq_run on db, a connection the caller holds (sq_acquire(), then
 * db_release()): for work that takes advisory locks (db_lock()) before
 * or after the transaction, on the connection that runs it. */
struct db_conn *sq_acquire(struct meta *m, struct cfs_error *err);
enum cfs_err sq_run_on(struct meta *m, struct db_conn *db, bool write,
		       sq_body body, void *arg, struct cfs_error *err);

/* Records that ns changed (its head moved, or a member left): its long
 * polls are woken once the transaction commits. */
void sq_changed(struct sq_conn *c, int64_t ns);

/* The user called name; NOT_FOUND when there is none. */
enum cfs_err sq_user_by_name(struct sq_conn *c, const char *name,
			     struct meta_user *out, struct cfs_error *err);

/* CFS_OK when user is a member of ns (may read and write it), NOT_FOUND
 * ("no namespace N") otherwise. */
enum cfs_err sq_member(struct sq_conn *c, int64_t user, int64_t ns,
		       struct cfs_error *err);

/* Whether user may read block id (same rule as meta_ops.block_readable),
 * and then its size (size may be NULL). */
enum cfs_err sq_block_available(struct sq_conn *c, int64_t user,
				const struct cfs_block_id *id, bool *ok,
				uint32_t *size, struct cfs_error *err);

/* A node's state while a transaction works on it. */
struct sq_node {
	int64_t node, parent, jid, mount_ns;
	int64_t link_of; /* LINK: the node it is a name of; 0 otherwise */
	enum cfs_kind kind;
	char name[CFS_NAME_MAX + 1];
	uint64_t size;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint32_t mode;
	struct cfs_blocklist blocks; /* owned */
	char *target;		     /* owned */
};

void sq_node_release(struct sq_node *n);

/* n as a listing entry at path (n keeps what it points to). */
struct meta_entry sq_entry_of(const struct sq_node *n, const char *path);

/* The columns a node's state is read from, of nodes or of journal. */
#define SQ_NODE_COLS                                                      \
	"node, parent, name, kind, size, mtime_ns, mode, blocks, target," \
	" mount_ns, jid, atime_ns, ctime_ns, link_of"

/* The node state of a row selected with SQ_NODE_COLS first. */
enum cfs_err sq_node_from_row(struct sq_conn *c, struct db_stmt *st,
			      struct sq_node *n, struct cfs_error *err);

/* Nodes and the journal (meta_sql_tree.c). */
enum cfs_err sq_node_get(struct sq_conn *c, int64_t ns, int64_t node,
			 struct sq_node *n, struct cfs_error *err);
enum cfs_err sq_node_alloc(struct sq_conn *c, int64_t ns, int64_t *node,
			   struct cfs_error *err);
/* Appends n as a new version of its node, written by author; sets n->jid. */
enum cfs_err sq_journal_put(struct sq_conn *c, int64_t ns, int64_t author,
			    struct sq_node *n, struct cfs_error *err);
/* The live child of parent called name; NOT_FOUND when there is none. */
enum cfs_err sq_child_get(struct sq_conn *c, int64_t ns, int64_t parent,
			  const char *name, size_t len, struct sq_node *n,
			  struct cfs_error *err);
/* Replaces a LINK n by the node that holds its content (invariant 6);
 * leaves any other n as it is. */
enum cfs_err sq_node_follow(struct sq_conn *c, int64_t ns, struct sq_node *n,
			    struct cfs_error *err);
/* Whether directory dir is node or lies below it. */
enum cfs_err sq_is_within(struct sq_conn *c, int64_t ns, int64_t dir,
			  int64_t node, bool *within, struct cfs_error *err);
/*
 * n's own name is going (invariant 6): when n has LINK nodes that do not
 * lie below directory keep_out (0: anywhere), one of them goes and n takes
 * its parent and name (n updated, with its new JID), and *gone is the JID
 * of that link's delete, the row where n's name went; 0 otherwise.
 */
enum cfs_err sq_name_drop(struct sq_conn *c, int64_t author, int64_t ns,
			  struct sq_node *n, int64_t keep_out, int64_t *gone,
			  struct cfs_error *err);
/* The current path of node (malloc'd; "" for the root). */
enum cfs_err sq_node_path(struct sq_conn *c, int64_t ns, int64_t node,
			  char **path, struct cfs_error *err);

/* meta_ops.history and list_as_of (meta_sql_history.c). */
enum cfs_err sq_history(struct meta *m, const struct meta_user *user,
			int64_t ns, const char *path, meta_entry_fn fn,
			void *arg, struct cfs_error *err);
enum cfs_err sq_list_as_of(struct meta *m, const struct meta_user *user,
			   int64_t ns, int64_t as_of, int64_t at,
			   int64_t cursor, unsigned limit, meta_entry_fn fn,
			   void *arg, struct meta_page *page,
			   struct cfs_error *err);

/* Pending block lists (meta_sql_pending.c). */

/* Records the blocks of file op that a commit by user needs (need, in the
 * order of op->blocks) as the pending list of (ns, op->path), in place
 * of user's list there before; drops expired lists. */
enum cfs_err sq_pending_record(struct sq_conn *c, int64_t ns, int64_t user,
			       const struct meta_op *op,
			       const struct cfs_blocklist *need,
			       struct cfs_error *err);
/* Drops user's pending list at (ns, path): the file committed. */
enum cfs_err sq_pending_drop(struct sq_conn *c, int64_t ns, int64_t user,
			     const char *path, struct cfs_error *err);
/* Marks block id landed in user's live pending lists that need it, and
 * wakes their namespaces' long polls. */
enum cfs_err sq_pending_landed(struct sq_conn *c, int64_t user,
			       const struct cfs_block_id *id,
			       struct cfs_error *err);
/* Whether user may read block id as a landed block of a live pending
 * list of one of user's namespaces (the server holds it). */
enum cfs_err sq_pending_readable(struct sq_conn *c, int64_t user,
				 const struct cfs_block_id *id, bool *ok,
				 struct cfs_error *err);
/* Drops every expired pending list. */
enum cfs_err sq_pending_expire(struct sq_conn *c, struct cfs_error *err);
/* meta_ops.pending. */
enum cfs_err sq_pending(struct meta *m, const struct meta_user *user,
			const int64_t *ns, size_t n, int64_t after,
			meta_pending_fn fn, void *arg, int64_t *cursor,
			struct cfs_error *err);

/*
 * The advisory locks that keep garbage collection and uploads of one
 * block apart across processes (meta_sql_gc.c): sq_blocks_hold() takes
 * those of ids, shared, on db, waiting while a gc holds one;
 * sq_blocks_let_go() lets go of every lock db holds.
 */
enum cfs_err sq_blocks_hold(struct db_conn *db, const struct cfs_block_id *ids,
			    size_t n, struct cfs_error *err);
void sq_blocks_let_go(struct db_conn *db);

/* meta_ops.gc (meta_sql_gc.c). */
enum cfs_err sq_gc(struct meta *m, int64_t before, meta_block_fn fn, void *arg,
		   struct meta_gc_tally *t, struct cfs_error *err);

/* The head of namespace ns (no access check). */
enum cfs_err sq_ns_head(struct sq_conn *c, int64_t ns, int64_t *head,
			struct cfs_error *err);

/* Where a path leads: its parent directory and, if present, the entry. */
struct sq_resolved {
	int64_t parent;
	char name[CFS_NAME_MAX + 1];
	bool exists;
	struct sq_node node;
};

/* Resolves a checked path; NOT_FOUND, NOT_DIR or CROSS_NS for its parents. */
enum cfs_err sq_resolve(struct sq_conn *c, int64_t ns, const char *path,
			struct sq_resolved *r, struct cfs_error *err);

/* The live descendants of node ?2 in namespace ?1, as a prefix of SQL. */
#define SQ_SUBTREE_CTE                                                  \
	"WITH RECURSIVE sub(node, depth) AS ("                          \
	" SELECT node, 1 FROM nodes WHERE ns = ?1 AND parent = ?2"      \
	"  AND kind != 0"                                               \
	" UNION ALL SELECT n.node, sub.depth + 1 FROM nodes n JOIN sub" \
	"  ON n.parent = sub.node WHERE n.ns = ?1 AND n.kind != 0) "

/* Ids of the live descendants of node, parents before children. */
enum cfs_err sq_descendants(struct sq_conn *c, int64_t ns, int64_t node,
			    int64_t **ids, size_t *n, struct cfs_error *err);

/* The namespaces mounted by MOUNT nodes below node. */
enum cfs_err sq_subtree_mounts(struct sq_conn *c, int64_t ns, int64_t node,
			       int64_t **mounts, size_t *n,
			       struct cfs_error *err);

/* Marks node's live descendants deleted (invariant 2), each with a delete
 * row in the journal, and unmounts the shared folders among them for
 * user. */
/* Appends n's delete to the journal (n's blocks and target dropped). */
enum cfs_err sq_tombstone(struct sq_conn *c, int64_t author, int64_t ns,
			  struct sq_node *n, struct cfs_error *err);

enum cfs_err sq_subtree_drop(struct sq_conn *c, const struct meta_user *user,
			     int64_t ns, int64_t node, struct cfs_error *err);

/* Shared folders (meta_sql_share.c). */

/* Drops user's membership of shared ns, passing ownership on if needed;
 * the mount node is the caller's to remove. */
enum cfs_err sq_unmount(struct sq_conn *c, int64_t user, int64_t ns,
			struct cfs_error *err);

/* The vtable entries, spread over the three files. */
enum cfs_err sq_namespaces(struct meta *m, const struct meta_user *user,
			   meta_ns_fn fn, void *arg, struct cfs_error *err);
enum cfs_err sq_heads(struct meta *m, const struct meta_user *user,
		      const int64_t *ns, int64_t *heads, size_t n,
		      struct cfs_error *err);
enum cfs_err sq_list(struct meta *m, const struct meta_user *user, int64_t ns,
		     int64_t cursor, unsigned limit, meta_entry_fn fn,
		     void *arg, struct meta_page *page, struct cfs_error *err);
enum cfs_err sq_commit(struct meta *m, const struct meta_user *user, int64_t ns,
		       const struct meta_sender *from,
		       const struct meta_op *ops, struct meta_op_result *res,
		       size_t n, int64_t *head, struct cfs_error *err);
enum cfs_err sq_share(struct meta *m, const struct meta_user *user, int64_t ns,
		      const char *path, int64_t *shared, bool *created,
		      struct cfs_error *err);
enum cfs_err sq_invite(struct meta *m, const struct meta_user *user, int64_t ns,
		       const char *invitee, struct cfs_error *err);
enum cfs_err sq_leave(struct meta *m, const struct meta_user *user, int64_t ns,
		      struct cfs_error *err);
enum cfs_err sq_remove_member(struct meta *m, const struct meta_user *user,
			      int64_t ns, const char *member,
			      struct cfs_error *err);
enum cfs_err sq_members(struct meta *m, const struct meta_user *user,
			int64_t ns, meta_member_fn fn, void *arg,
			struct cfs_error *err);

#endif
