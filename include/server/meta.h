/*
 * The metadata store: users, tokens, namespaces, memberships, the journal
 * and the block index.  A backend is a table of functions behind struct
 * meta; the embedded default is SQLite (server/meta_sqlite*.c).
 *
 * Every function that takes a user checks that the user may act on the
 * namespace it names, and answers CFS_ERR_NOT_FOUND for a namespace that
 * does not exist and for one the user cannot read alike.  Every function is
 * atomic: it changes everything it promises or nothing.  Functions return
 * CFS_OK or an error code with *err filled; they may be called from many
 * threads at once.
 *
 * After a transaction that moved a namespace's head has committed, the
 * backend calls the notify function given at open with that namespace's id
 * (the long-poll registry wakes its waiters from there); a backend shared
 * by several processes also calls it for their commits, and with
 * META_NS_ALL when it may have missed some.
 */
#ifndef SERVER_META_H
#define SERVER_META_H

#include <stdbool.h>
#include <stdint.h>

#include "cloudfs/block.h"
#include "cloudfs/error.h"
#include "cloudfs/proto.h"

#define META_USER_NAME_MAX  64
#define META_TOKEN_HASH_LEN 32

struct meta_user {
	int64_t id;
	int64_t root_ns;
	char name[META_USER_NAME_MAX + 1];
	/* Filled by meta_ops.auth only: the hash of the token it accepted,
	 * so that a long request can ask again whether it is still live. */
	uint8_t token[META_TOKEN_HASH_LEN];
};

/* The state of one node, as a journal row or a listing entry carries it. */
struct meta_entry {
	int64_t node;
	int64_t parent; /* 0 is the namespace root */
	int64_t jid;	/* the row that gave the node this state */
	enum cfs_kind kind;
	const char *name;
	const char *path; /* current path, or the last one for deleted nodes */
	uint64_t size;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint32_t mode;
	struct cfs_blocklist blocks; /* files */
	const char *target;	     /* symlinks, devices */
	int64_t mount_ns;	     /* mounts */
	int64_t link_of;	     /* links: the node it is a name of */
	/* History only (meta_ops.history): */
	int64_t at;	    /* when the row was committed (unix seconds) */
	const char *author; /* who committed it */
	int64_t before;	    /* a folder's delete: the JID before its batch */
};

/* One namespace a user can read, for meta_ops.namespaces. */
struct meta_ns_info {
	int64_t ns;
	int64_t head;
	bool root;
	const char *path; /* mount path in the user's root namespace */
	const char *owner;
};

enum meta_op_type {
	META_OP_FILE,
	META_OP_DIR,
	META_OP_SYMLINK,
	META_OP_SPECIAL, /* a FIFO, socket or device: see kind */
	META_OP_DELETE,
	META_OP_MOVE,
	META_OP_LINK, /* a further name, to, of what is at path */
};

/* One journal operation of a commit batch, already checked for syntax. */
struct meta_op {
	enum meta_op_type type;
	enum cfs_kind kind;	     /* what it makes; deleted: none */
	const char *path;	     /* valid, non-root (cloudfs/path.h) */
	const char *to;		     /* move, link: valid, non-root */
	struct cfs_blocklist blocks; /* file: count matches size */
	uint64_t size;
	int64_t atime_ns; /* not said: mtime_ns */
	int64_t mtime_ns;
	int64_t ctime_ns; /* a move's too; not said: the commit's time */
	bool ctime_said;  /* the client gave ctime_ns */
	uint32_t mode;
	const char *target; /* symlink, device */
	int64_t base_jid;   /* the version edited; 0 = new; -1 = unchecked */
	bool recursive;	    /* delete: a non-empty directory too */
	bool replace;	    /* move: over an existing compatible target */
	int64_t node; /* move, delete: the node meant, when known; 0: not said
		       */
	int64_t seq;  /* the sender's number for it (meta_sender); 0: none */
	/* delete: refused (a conflict) when the node or anything in it has
	 * a JID above this one; 0: unchecked */
	int64_t unchanged_since;
	/* file, of POST .../announce: only publish the pending list of the
	 * blocks it needs, never apply it (answered need_blocks, with no
	 * blocks when none) */
	bool announce;
};

/*
 * Who sent a batch: a client that lost an answer sends the same
 * operations again, and those the server applied must be answered as
 * they were, not applied against a tree they changed (a folder created,
 * then moved by the next operation, is not at its path any more).  The
 * answers to the client's numbered operations are kept until it says it
 * will never send one below keep_from again.
 */
#define META_CLIENT_MAX 64

struct meta_sender {
	const char *client; /* an id the client chose; NULL: not said */
	int64_t keep_from;
};

enum meta_op_status {
	META_COMMITTED,	  /* applied (or already the current state) */
	META_NEED_BLOCKS, /* nothing applied: upload result.need first */
	META_CONFLICT,	  /* nothing applied: base_jid is not result.jid */
	META_FAILED,	  /* nothing applied: see result.err */
};

struct meta_op_result {
	enum meta_op_status status;
	int64_t jid;  /* committed: the node's JID; conflict: the current one */
	int64_t node; /* committed: the node's id */
	int64_t prev_jid; /* committed move: the node's JID it moved from */
	struct cfs_blocklist need; /* owned; release with the result */
	struct cfs_error err;
};

struct meta_page {
	int64_t cursor; /* pass it back to continue */
	int64_t head;
	bool more;
	uint64_t bytes; /* about what its entries take on the wire */
};

/*
 * Counts e into the page and returns true when it fits: the first entry
 * always does, a later one while the page stays within
 * CFS_LIST_MAX_PAGE_BYTES.  A listing backend stops its page (more = true)
 * at the first entry that does not fit, so no page grows past what a
 * client takes, whatever its entries hold.
 */
bool meta_page_take(struct meta_page *page, const struct meta_entry *e);

struct meta_member {
	const char *user;
	bool owner;
};

/* What a garbage collection did and found (meta_ops.gc). */
struct meta_gc_tally {
	uint64_t journal_rows;		  /* compacted: dropped */
	uint64_t blocks, bytes;		  /* forgotten: their bytes may go */
	uint64_t live_blocks, live_bytes; /* kept: listed, or uploaded lately */
};

typedef void (*meta_block_fn)(void *arg, const struct cfs_block_id *id);

/* Puts the bytes of blocks in the block store (meta_ops.blocks_added);
 * *stored: how many, from the first on, it stored. */
typedef enum cfs_err (*meta_store_fn)(void *arg, size_t *stored,
				      struct cfs_error *err);

/*
 * Streaming sync (cloudfs-protocol(7), "Pending block lists"): a commit
 * of a file answered need_blocks leaves the list of the blocks it needs,
 * pending, for (namespace, path), until the file commits or the list
 * expires.  One block of such a list that has landed: its uploader (the
 * committer) uploaded it since and the server checked its hash.
 */
struct meta_pending {
	int64_t list; /* the pending list's id: blocks of one list follow
		       * each other in a call's order */
	int64_t ns;
	const char *path;
	int64_t expires; /* unix seconds */
	struct cfs_block_id id;
	uint32_t size;
};

/* How long a pending list lives after its commit or its last block's
 * landing, unless said otherwise (struct meta's pending_ttl_s). */
#define META_PENDING_TTL_S 600

/* The most landed blocks one meta_ops.pending call hands over. */
#define META_PENDING_MAX CFS_PENDING_MAX_BLOCKS

struct meta;

/* Callbacks that hand results over one at a time; an error they return
 * (with *err set) stops the call and is returned by it. */
typedef enum cfs_err (*meta_entry_fn)(void *arg, const struct meta_entry *e,
				      struct cfs_error *err);
typedef enum cfs_err (*meta_ns_fn)(void *arg, const struct meta_ns_info *ns,
				   struct cfs_error *err);
typedef enum cfs_err (*meta_member_fn)(void *arg, const struct meta_member *m,
				       struct cfs_error *err);
typedef enum cfs_err (*meta_pending_fn)(void *arg, const struct meta_pending *p,
					struct cfs_error *err);
/* Namespace ids start at 1: 0 in a notification means "any of them". */
#define META_NS_ALL 0
typedef void (*meta_notify_fn)(void *arg, int64_t ns);

struct meta_ops {
	void (*close)(struct meta *m);

	/* Creates a user with an empty root namespace. */
	enum cfs_err (*user_add)(struct meta *m, const char *name,
				 struct meta_user *out, struct cfs_error *err);
	enum cfs_err (*user_get)(struct meta *m, const char *name,
				 struct meta_user *out, struct cfs_error *err);

	/* Stores the hash of a new token of user. */
	enum cfs_err (*token_add)(struct meta *m, int64_t user,
				  const uint8_t hash[META_TOKEN_HASH_LEN],
				  struct cfs_error *err);
	/* NOT_FOUND when no live token has this hash. */
	enum cfs_err (*token_revoke)(struct meta *m,
				     const uint8_t hash[META_TOKEN_HASH_LEN],
				     struct cfs_error *err);
	/* The user of a live token (out->token is hash); UNAUTHORIZED
	 * otherwise, also for a token revoked by another process. */
	enum cfs_err (*auth)(struct meta *m,
			     const uint8_t hash[META_TOKEN_HASH_LEN],
			     struct meta_user *out, struct cfs_error *err);

	/* Calls fn for each namespace user can read, root first. */
	enum cfs_err (*namespaces)(struct meta *m, const struct meta_user *user,
				   meta_ns_fn fn, void *arg,
				   struct cfs_error *err);

	/*
	 * Heads of n namespaces; heads[i] = -1 for one the user cannot read
	 * (or that does not exist).
	 */
	enum cfs_err (*heads)(struct meta *m, const struct meta_user *user,
			      const int64_t *ns, int64_t *heads, size_t n,
			      struct cfs_error *err);

	/*
	 * Calls fn, in JID order, for at most limit nodes whose state changed
	 * after cursor, each in its newest state, all read from one snapshot.
	 * From cursor 0, deleted nodes are left out.  BAD_CURSOR when cursor
	 * is beyond the head.
	 */
	enum cfs_err (*list)(struct meta *m, const struct meta_user *user,
			     int64_t ns, int64_t cursor, unsigned limit,
			     meta_entry_fn fn, void *arg,
			     struct meta_page *page, struct cfs_error *err);

	/*
	 * Applies n operations in order, in one transaction; each gets its
	 * own result and JID, and a refused one changes nothing.  The return
	 * value is an error only when the whole batch failed (nothing
	 * applied).  *head receives the namespace's head afterwards.  An
	 * operation of from->client whose seq was committed before gets that
	 * answer again and changes nothing.
	 */
	enum cfs_err (*commit)(struct meta *m, const struct meta_user *user,
			       int64_t ns, const struct meta_sender *from,
			       const struct meta_op *ops,
			       struct meta_op_result *res, size_t n,
			       int64_t *head, struct cfs_error *err);

	/*
	 * The subset of ids the user must upload: those the server lacks and
	 * those it holds but the user could not read (cloudfs-protocol(7),
	 * "Access to blocks").
	 */
	enum cfs_err (*blocks_needed)(struct meta *m,
				      const struct meta_user *user,
				      const struct cfs_blocklist *ids,
				      struct cfs_blocklist *needed,
				      struct cfs_error *err);
	/*
	 * Stores and records the n blocks ids, of sizes, that user uploaded:
	 * store(store_arg, &stored, err) puts their bytes in the block store
	 * and says how many, from the first on, it stored (NULL: all are
	 * stored already); those are then recorded in one transaction (a
	 * batch upload costs one commit, not one per block).  On a store
	 * several processes share (PostgreSQL), from before store starts
	 * until the record is committed, no garbage collection (gc) in any
	 * of them removes the bytes of one of ids; the record then keeps
	 * them for gc's retention.  A store one process owns (SQLite) leaves
	 * that to the process (server/gc.h, uploads).  Returns store's
	 * failure (its *err) if it failed, what it stored recorded all the
	 * same; else the record's outcome.
	 */
	enum cfs_err (*blocks_added)(struct meta *m,
				     const struct meta_user *user,
				     const struct cfs_block_id *ids,
				     const uint32_t *sizes, size_t n,
				     meta_store_fn store, void *store_arg,
				     struct cfs_error *err);
	/*
	 * CFS_OK when user may download the block: as blocks_needed says,
	 * or a landed block of a live pending list of a namespace user is
	 * a member of; NOT_FOUND otherwise, the same for an unknown block.
	 */
	enum cfs_err (*block_readable)(struct meta *m,
				       const struct meta_user *user,
				       const struct cfs_block_id *id,
				       struct cfs_error *err);

	/*
	 * The landed blocks of the live pending lists of the n namespaces
	 * that user is a member of (the others are passed over), that
	 * landed after the pending cursor `after`, in the order they
	 * landed; at most META_PENDING_MAX of them.  *cursor receives the
	 * cursor to ask from next time (what this call saw, or where it
	 * stopped).  Expired lists are never shown.
	 */
	enum cfs_err (*pending)(struct meta *m, const struct meta_user *user,
				const int64_t *ns, size_t n, int64_t after,
				meta_pending_fn fn, void *arg, int64_t *cursor,
				struct cfs_error *err);

	/*
	 * Turns the folder at path in the user's root namespace into a shared
	 * namespace (*shared); *created is false when it already was one.
	 */
	enum cfs_err (*share)(struct meta *m, const struct meta_user *user,
			      int64_t ns, const char *path, int64_t *shared,
			      bool *created, struct cfs_error *err);
	/* Mounts shared namespace ns in the root namespace of invitee. */
	enum cfs_err (*invite)(struct meta *m, const struct meta_user *user,
			       int64_t ns, const char *invitee,
			       struct cfs_error *err);
	/* Unmounts ns from the user's root namespace and drops membership. */
	enum cfs_err (*leave)(struct meta *m, const struct meta_user *user,
			      int64_t ns, struct cfs_error *err);
	/* The owner of ns removes another member. */
	enum cfs_err (*remove_member)(struct meta *m,
				      const struct meta_user *user, int64_t ns,
				      const char *member,
				      struct cfs_error *err);
	enum cfs_err (*members)(struct meta *m, const struct meta_user *user,
				int64_t ns, meta_member_fn fn, void *arg,
				struct cfs_error *err);

	/*
	 * The versions of what was at path in ns, newest first: of the node
	 * there now and of each deleted there (its folders must be there). Each
	 * is a journal row retention kept, with its time and author; the path
	 * is the one asked for.  NOT_FOUND when no node ever was there.
	 */
	enum cfs_err (*history)(struct meta *m, const struct meta_user *user,
				int64_t ns, const char *path, meta_entry_fn fn,
				void *arg, struct cfs_error *err);
	/*
	 * Like list from cursor 0, of the namespace as it was at JID as_of
	 * (or, when at > 0, at the last JID committed at or before that unix
	 * second): the live nodes' rows of then, without their paths (the
	 * parents and names of then give them).  page->head is that JID.
	 * NOT_FOUND when garbage collection took rows that state needs.
	 */
	enum cfs_err (*list_as_of)(struct meta *m, const struct meta_user *user,
				   int64_t ns, int64_t as_of, int64_t at,
				   int64_t cursor, unsigned limit,
				   meta_entry_fn fn, void *arg,
				   struct meta_page *page,
				   struct cfs_error *err);
	/*
	 * Garbage collection, in one transaction: drops the journal rows
	 * superseded before `before` (unix seconds; a node's current row
	 * stays, and so does the row of its delete), then forgets each block
	 * no node and no journal row left lists, and that was last uploaded
	 * before `before`, telling fn of it once that is committed: fn
	 * removes its bytes.  On a store several processes share, no upload
	 * of that block in any of them starts to store it meanwhile
	 * (blocks_added), and one already storing it keeps it from being
	 * forgotten; a store one process owns leaves that to the process
	 * (server/gc.h).  A commit after this one finds the block missing
	 * and asks for it again.  The engine may split the work into
	 * several transactions.
	 */
	enum cfs_err (*gc)(struct meta *m, int64_t before, meta_block_fn fn,
			   void *arg, struct meta_gc_tally *t,
			   struct cfs_error *err);
};

struct meta {
	const struct meta_ops *ops;
	/* The life of a pending list, in seconds (META_PENDING_TTL_S when
	 * opened); set before the store is shared between threads. */
	int64_t pending_ttl_s;
};

/*
 * Opens (creating if needed) the embedded store under data_dir.  notify may
 * be NULL (administrative commands).
 */
enum cfs_err meta_sqlite_open(const char *data_dir, meta_notify_fn notify,
			      void *notify_arg, struct meta **out,
			      struct cfs_error *err);

/*
 * Opens (creating or upgrading its schema if needed) the store on the
 * PostgreSQL database conninfo names (a libpq URI or connection string),
 * which any number of processes may share; notify as above (then a
 * thread listens to the database for the other processes' commits).
 */
enum cfs_err meta_pg_open(const char *conninfo, meta_notify_fn notify,
			  void *notify_arg, struct meta **out,
			  struct cfs_error *err);

/* Checks a user name: 1-64 of [a-z0-9._-], starting with a letter or digit. */
enum cfs_err meta_user_name_check(const char *name, size_t len,
				  struct cfs_error *err);

void meta_op_result_release(struct meta_op_result *r);

#endif
