/*
 * Local changes: what this mount does to its tree before the server
 * knows, and the queue of journal operations that will tell it.
 *
 * Each change is one transaction: it changes the entries the kernel sees
 * and queues the operation that repeats it on the server, so a crash
 * leaves both or neither, and operations are sent in the order they were
 * made.  The uploader reads the queue in batches (fs/batch.c) and
 * reports each operation's fate (fs/answer.c): confirmed, refused, or to
 * be tried again in another form (a conflicted copy, a file created anew,
 * folders created again first).
 *
 * An entry with changes not yet confirmed has pending > 0 (an open write
 * session counts as one) and a shadow row with the server's state.  When
 * its last change is settled it shows the server's state again if that is
 * newer than what it committed, or if one of its changes was refused.
 */
#ifndef CACHE_LOCAL_H
#define CACHE_LOCAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cache/mirror.h"

enum queue_type {
	QUEUE_FILE,
	QUEUE_DIR,
	QUEUE_SYMLINK,
	QUEUE_DELETE,
	QUEUE_MOVE,
	QUEUE_SPECIAL, /* a FIFO, socket or device: its kind says which */
	QUEUE_LINK,    /* a further name (to) of the node at path */
};

/* One queued journal operation, as the uploader sends it. */
struct queued_op {
	int64_t seq;
	uint64_t ino;
	int64_t ns;
	enum queue_type type;
	enum cfs_kind kind; /* of the entry (what a DELETE deletes) */
	char *path;	    /* within ns */
	char *to;	    /* MOVE, LINK */
	uint64_t size;
	int64_t atime_ns, mtime_ns;
	int64_t ctime_ns; /* a MOVE's too */
	uint32_t mode;
	struct cfs_blocklist blocks;
	char *target;	  /* symlinks, devices */
	bool replace;	  /* MOVE over a target: queues of older versions */
	int64_t base_jid; /* the entry's JID when read; -1: unchecked */
	int64_t node;	  /* the entry's node when read (< 0: none yet) */
	unsigned tries;
	/* A folder's DELETE sent in place of the deletes queued under it
	 * (fs/collapse.c): recursive, and refused when anything in it changed
	 * after this JID; 0: a plain delete.  Never stored. */
	int64_t unchanged_since;
};

void queued_op_release(struct queued_op *op);

/* A new entry: a file (whose write session the creation opens), a
 * folder, a symlink or a special file; its atime, mtime and ctime are
 * time_ns. */
struct local_new {
	enum cfs_kind kind;
	uint32_t mode;
	int64_t time_ns;
	const char *target; /* symlinks, devices (cloudfs/proto.h) */
};

/*
 * Creates name in directory dir_ino (*out: the new entry).  STALE when
 * the mirror no longer has dir_ino (the kernel's inode is out of date; so
 * for every inode the functions below take), NOT_DIR; EXISTS when the
 * name is taken; BAD_PATH for a name the protocol refuses.  A file is
 * created with a write session open, which local_write_end() closes.
 */
enum cfs_err local_mknode(struct cfs_sql *db, uint64_t dir_ino,
			  const char *name, const struct local_new *n,
			  struct mirror_entry *out, struct cfs_error *err);

/*
 * Removes name from dir_ino: a folder when dir (rmdir), anything else
 * otherwise (unlink).  STALE, NOT_FOUND (no such name), IS_DIR, NOT_DIR,
 * NOT_EMPTY.  *ino gets
 * the removed entry's inode.
 */
enum cfs_err local_remove(struct cfs_sql *db, uint64_t dir_ino,
			  const char *name, bool dir, uint64_t *ino,
			  struct cfs_error *err);

/*
 * Renames name of dir_ino to newname of newdir_ino, replacing a compatible
 * target unless noreplace (then EXISTS); the entry moved (*ino, 0 when
 * the rename was onto itself and changed nothing) gets ctime_ns, as on
 * Linux filesystems (POSIX allows it).  STALE; NOT_FOUND for a missing
 * name; CROSS_NS between namespaces;
 * BAD_FIELD for a folder into itself; IS_DIR, NOT_DIR, NOT_EMPTY as
 * rename(2).
 */
enum cfs_err local_rename(struct cfs_sql *db, uint64_t dir_ino,
			  const char *name, uint64_t newdir_ino,
			  const char *newname, bool noreplace, int64_t ctime_ns,
			  uint64_t *ino, struct cfs_error *err);

/*
 * Gives node ino a further name, newname in newdir_ino (link(2)); *out:
 * the node, with its new link count to come from mirror_names().
 * STALE for an inode the mirror no longer has; FORBIDDEN for a folder or
 * a shared folder's mount (they have one name);
 * CROSS_NS when newdir_ino is in another namespace; EXISTS when the name
 * is taken; TOO_LONG, BAD_PATH as for a create.  The node must be known to
 * the queue before (its write session committed): the link is sent after
 * what creates it.
 */
enum cfs_err local_link(struct cfs_sql *db, uint64_t ino, uint64_t newdir_ino,
			const char *newname, struct mirror_entry *out,
			struct cfs_error *err);

/*
 * Whether link op, answered "not found", may find its node later: the
 * node is not on the server yet, or has operations queued still (its
 * creation waits for blocks).
 */
enum cfs_err local_link_waits(struct cfs_sql *db, const struct queued_op *op,
			      bool *waits, struct cfs_error *err);

/* What a setattr sets (NULL: unchanged). */
struct local_attrs {
	const uint32_t *mode;
	const int64_t *atime_ns, *mtime_ns;
};

/*
 * Sets the attributes a of ino, and its ctime to ctime_ns (any change of
 * a node's metadata is one, even with nothing in a: a chown to the owner
 * it has).  In a write session (in_session, and the session not settled
 * meanwhile) the change goes with the session's commit; otherwise it is
 * queued now.  FORBIDDEN for a shared folder's mount.
 */
enum cfs_err local_setattr(struct cfs_sql *db, uint64_t ino,
			   const struct local_attrs *a, int64_t ctime_ns,
			   bool in_session, struct cfs_error *err);

/* Opens a write session on file ino: its content is about to change. */
enum cfs_err local_write_begin(struct cfs_sql *db, uint64_t ino,
			       struct cfs_error *err);

/* What a write session leaves: the new content, and the file's times. */
struct local_content {
	uint64_t size;
	const struct cfs_blocklist *blocks;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint32_t mode; /* the file's new mode, when has_mode */
	bool has_mode;
};

/*
 * Closes a write session: with c, the file shows c and its commit is
 * queued; without, nothing changed.  A file removed meanwhile commits
 * nothing.  The ctime stays the entry's when that is the later one (a
 * rename while c was being committed): a ctime never goes back.
 */
enum cfs_err local_write_end(struct cfs_sql *db, uint64_t ino,
			     const struct local_content *c,
			     struct mirror_changes *ch, struct cfs_error *err);

/* The queue. */

/* How many operations wait. */
enum cfs_err queue_length(struct cfs_sql *db, int64_t *n,
			  struct cfs_error *err);

/* How many operations of namespace ns wait that touch path or what is
 * under it (either end of a move). */
enum cfs_err queue_length_under(struct cfs_sql *db, int64_t ns,
				const char *path, int64_t *n,
				struct cfs_error *err);

/*
 * Doubt: an operation sent whose answer was not recorded (lost, cut
 * short, or the mount ended first) may have been applied by the server.
 * queue_sent() marks the n operations of a batch so, durably once the
 * cache is synced, before the batch goes; queue_answered() clears the mark
 * of each operation whose answer was recorded; *any tells whether one is
 * left in doubt.
 */
enum cfs_err queue_sent(struct cfs_sql *db, const struct queued_op *ops,
			size_t n, struct cfs_error *err);
enum cfs_err queue_answered(struct cfs_sql *db, const struct queued_op *ops,
			    const bool *recorded, size_t n,
			    struct cfs_error *err);
enum cfs_err queue_in_doubt(struct cfs_sql *db, bool *any,
			    struct cfs_error *err);

/* The lowest seq queued (*seq = 0 when none is): no operation below it
 * will be sent again, so the server may forget its answer. */
enum cfs_err queue_first_seq(struct cfs_sql *db, int64_t *seq,
			     struct cfs_error *err);

/*
 * The next batch, in order: at most max operations of one namespace, no
 * entry twice (an entry's operation waits for the answer to its previous
 * one), then deletes up to reach in all, which a tree's delete may carry
 * as one operation (fs/collapse.c).  *ops is malloc'd; release each, then
 * free it.
 */
enum cfs_err queue_batch(struct cfs_sql *db, size_t max, size_t reach,
			 struct queued_op **ops, size_t *n,
			 struct cfs_error *err);

/*
 * op was committed as node at jid; a move, from the node's state at
 * prev_jid (0: not said).  A move from a state the mirror has not seen
 * leaves the entry's JID, so that the listing brings that state's content.
 */
enum cfs_err queue_confirm(struct cfs_sql *db, const struct queued_op *op,
			   int64_t node, int64_t jid, int64_t prev_jid,
			   struct mirror_changes *ch, struct cfs_error *err);

/*
 * Whether the n deletes ops (the last a folder's, the others under it,
 * one namespace, in queue order) stand for all the mirror holds under
 * that folder: each entry there is one of theirs, or the tombstone of a
 * delete the server applied.  Then *since is the namespace's cursor, up
 * to which the mirror has every change: one recursive delete unchanged
 * since it deletes what they delete and nothing this mount has not seen
 * (cloudfs-protocol(7), op delete).  *since = 0 otherwise, or when one of
 * them is newer than the cursor (it would be refused).
 */
enum cfs_err queue_deletes_cover(struct cfs_sql *db,
				 const struct queued_op *ops, size_t n,
				 int64_t *since, struct cfs_error *err);

/* The n deletes were applied as one, ending at jid: each is confirmed,
 * in one transaction. */
enum cfs_err queue_confirm_deletes(struct cfs_sql *db,
				   const struct queued_op *ops, size_t n,
				   int64_t jid, struct mirror_changes *ch,
				   struct cfs_error *err);

/* op will never apply: the entry returns to the server's state. */
enum cfs_err queue_refuse(struct cfs_sql *db, const struct queued_op *op,
			  struct mirror_changes *ch, struct cfs_error *err);

/*
 * op (a file or symlink) lost a race to a newer version on the server:
 * its content becomes a new entry next to it, "NAME (conflicted copy
 * YYYY-MM-DD).EXT" (a counter added when taken), queued as a new file;
 * the entry takes the server's version.  *copy gets the new name.
 */
enum cfs_err queue_conflicted_copy(struct cfs_sql *db,
				   const struct queued_op *op,
				   char copy[CFS_NAME_MAX + 1],
				   struct mirror_changes *ch,
				   struct cfs_error *err);

/* op's entry is gone from its place on the server: op will create it
 * anew; its node, if the mirror knows it moved, shows where it went. */
enum cfs_err queue_rebase(struct cfs_sql *db, const struct queued_op *op,
			  struct mirror_changes *ch, struct cfs_error *err);

/* The server found nothing at op's path, as its answer with head said:
 * *waits while the mirror is not listed up to head, since a listing may
 * re-address op (another device moved a folder above it); op then goes
 * again as the listing leaves it, without counting a try. */
enum cfs_err queue_wait_listing(struct cfs_sql *db, const struct queued_op *op,
				int64_t head, bool *waits,
				struct cfs_error *err);

/*
 * op crosses into a folder shared since (the listing showed it), whose
 * own queued move waits behind op: the operations under the folder
 * queued before that move go right after it, re-addressed to where it
 * moves the folder (*moved true), unless one between names a folder
 * around either end, or one of them names its target.
 */
enum cfs_err queue_after_share_move(struct cfs_sql *db,
				    const struct queued_op *op, bool *moved,
				    struct cfs_error *err);

/* op's folders are not on the server, as its answer with head said: once
 * the mirror is listed up to head, queues their creation first. */
enum cfs_err queue_recreate_parents(struct cfs_sql *db,
				    const struct queued_op *op, int64_t head,
				    struct cfs_error *err);

/* Link op was answered "not found", and its file is on the server as far
 * as the mirror knows: *waits while the mirror is listed up to head (no
 * try counted), or when folders on the way to its new name are not on
 * the server (their creation is queued first, and the try counted);
 * otherwise its file is gone, and the caller refuses it. */
enum cfs_err queue_link_folders(struct cfs_sql *db, const struct queued_op *op,
				int64_t head, bool *waits,
				struct cfs_error *err);

/* op failed for now, for the reason why: counts the try and keeps why
 * for queue_failing(). */
enum cfs_err queue_retry(struct cfs_sql *db, const struct queued_op *op,
			 const char *why, struct cfs_error *err);

/* A queued operation that was tried and failed, as status shows it. */
struct queue_failure {
	char *path; /* from the mount's root, malloc'd */
	unsigned tries;
	char *why; /* malloc'd */
};

/*
 * The first max operations of the queue that failed at least once, in
 * queue order: what `cloudfs status` names, so that no change waits in
 * silence.  *v is malloc'd; queue_failures_free() releases it.
 */
enum cfs_err queue_failing(struct cfs_sql *db, size_t max,
			   struct queue_failure **v, size_t *n,
			   struct cfs_error *err);
void queue_failures_free(struct queue_failure *v, size_t n);

#endif
