/*
 * Row-level access to the mirror's tables (cache/rows.c, rows_settle.c,
 * rows_share.c), shared by the two writers of the mirror inside cache/:
 * mirror_apply.c (what the server says) and local.c, pending.c and
 * queue.c (what this mount does).  Every function runs
 * inside the caller's transaction.  Functions that look a row up return
 * CFS_ERR_NOT_FOUND without a message when there is none.
 */
#ifndef CACHE_ROWS_H
#define CACHE_ROWS_H

#include "cache/mirror.h"

#define ROWS_ENTRY_COLS                                                    \
	"ino, ns, node, parent, name, kind, size, mtime_ns, mode, blocks," \
	" target, mount_ns, jid, pending, atime_ns, ctime_ns, link_of"

/* The descendants of node ?2 in namespace ?1, as a prefix of SQL. */
#define ROWS_SUBTREE_CTE                                          \
	"WITH RECURSIVE sub(node) AS ("                           \
	" SELECT node FROM entries WHERE ns = ?1 AND parent = ?2" \
	" UNION ALL SELECT e.node FROM entries e JOIN sub"        \
	"  ON e.ns = ?1 AND e.parent = sub.node) "

/* Steps a statement selecting ROWS_ENTRY_COLS into *e (NOT_FOUND past
 * the last row). */
enum cfs_err rows_step(struct cfs_sql *db, sqlite3_stmt *st,
		       struct mirror_entry *e, struct cfs_error *err);

/* The one row st selects, into *e; st is reset after, so that no read
 * snapshot outlives the lookup (a write on the same connection would then
 * fail at once with "database is locked"). */
enum cfs_err rows_one(struct cfs_sql *db, sqlite3_stmt *st,
		      struct mirror_entry *e, struct cfs_error *err);

enum cfs_err rows_by_node(struct cfs_sql *db, int64_t ns, int64_t node,
			  struct mirror_entry *e, struct cfs_error *err);

/* Entry ino, also when it is hidden (removed locally, not yet confirmed). */
enum cfs_err rows_by_ino(struct cfs_sql *db, uint64_t ino,
			 struct mirror_entry *e, struct cfs_error *err);

/* The visible child name of directory entry dir, if any (*found). */
enum cfs_err rows_child(struct cfs_sql *db, const struct mirror_entry *dir,
			const char *name, struct mirror_entry *e, bool *found,
			struct cfs_error *err);

/* Forgets namespace ns: its entries and its row (invariant 3). */
enum cfs_err rows_forget_ns(struct cfs_sql *db, int64_t ns,
			    struct cfs_error *err);

/* Gives entry ino a node id of its own (-ino): the server lacks it. */
enum cfs_err rows_localize(struct cfs_sql *db, uint64_t ino,
			   struct cfs_error *err);

/* Writes e's local state: updates row *ino, or inserts one when *ino is 0
 * and sets *ino. */
enum cfs_err rows_write(struct cfs_sql *db, uint64_t *ino,
			const struct mirror_entry *e, struct cfs_error *err);

/* Inserts e, which the server does not have, as a new row with node id
 * -ino and e's pending count; sets e->ino and e->node. */
enum cfs_err rows_insert_new(struct cfs_sql *db, struct mirror_entry *e,
			     struct cfs_error *err);

enum cfs_err rows_delete(struct cfs_sql *db, uint64_t ino,
			 struct cfs_error *err);

/* Makes hidden entry ino, whose delete the server committed at jid, a
 * tombstone: clean, at jid, until the listing passes it (invariant 9). */
enum cfs_err rows_tombstone(struct cfs_sql *db, uint64_t ino, int64_t jid,
			    struct cfs_error *err);

/* The server's state of entry ino (kind DELETED: the server has none). */
enum cfs_err rows_shadow_get(struct cfs_sql *db, uint64_t ino,
			     struct mirror_entry *e, struct cfs_error *err);
enum cfs_err rows_shadow_put(struct cfs_sql *db, uint64_t ino,
			     const struct mirror_entry *e,
			     struct cfs_error *err);
enum cfs_err rows_shadow_delete(struct cfs_sql *db, uint64_t ino,
				struct cfs_error *err);

/* When e is a further name of a node (a LINK): notes that node's inode,
 * whose link count changes as the name comes or goes. */
enum cfs_err rows_note_named(struct cfs_sql *db, const struct mirror_entry *e,
			     struct mirror_changes *ch, struct cfs_error *err);

/* Whether two states show the same thing (all but place and JID). */
bool rows_same_content(const struct mirror_entry *a,
		       const struct mirror_entry *b);

/* Appends a kernel invalidation: of inode ino, or with name, of the entry
 * name of directory parent. */
enum cfs_err rows_note(struct mirror_changes *ch, uint64_t ino, uint64_t parent,
		       const char *name, struct cfs_error *err);

/* Appends that folder dir's listing changed (an entry came, went or was
 * renamed). */
enum cfs_err rows_note_children(struct mirror_changes *ch, uint64_t dir,
				struct cfs_error *err);

/* Notes what the kernel must drop when entry old becomes e (or goes, for
 * a DELETED e): its name, if it moved or went; its inode, if it shows
 * something else. */
enum cfs_err rows_note_change(struct cfs_sql *db,
			      const struct mirror_entry *old,
			      const struct mirror_entry *e,
			      struct mirror_changes *ch, struct cfs_error *err);

/* Removes what old held that e does not: a folder's subtree, a shared
 * folder's namespace.  Entries with local changes in the subtree stay,
 * with the folders that lead to them and old itself (*kept), as entries
 * the server does not have.  The files the subtree held further names of
 * go to ch: their link counts change. */
enum cfs_err rows_drop_contents(struct cfs_sql *db,
				const struct mirror_entry *old,
				const struct mirror_entry *e, bool *kept,
				struct mirror_changes *ch,
				struct cfs_error *err);

/* Makes clean entry old show state e (the server's), noting what the
 * kernel must drop; e DELETED removes it (unless rows_drop_contents keeps
 * it), another kind replaces it with a new inode. */
enum cfs_err rows_settle(struct cfs_sql *db, const struct mirror_entry *old,
			 const struct mirror_entry *e,
			 struct mirror_changes *ch, struct cfs_error *err);

/* Where the children of directory entry dir live: (ns, parent node);
 * NOT_DIR when it is not a directory. */
enum cfs_err rows_dir_key(const struct mirror_entry *dir, int64_t *ns,
			  int64_t *node, struct cfs_error *err);

/* Names from e up to (not including) the root of its namespace, when
 * within_ns, or else the mount root, joined with '/'. */
enum cfs_err rows_path(struct cfs_sql *db, const struct mirror_entry *e,
		       bool within_ns, char **path, struct cfs_error *err);

/* The path of e within its namespace (for the protocol), malloc'd. */
enum cfs_err rows_ns_path(struct cfs_sql *db, const struct mirror_entry *e,
			  char **path, struct cfs_error *err);

/* Follows the namespace of MOUNT entry e (row ino), listed from 0. */
enum cfs_err rows_follow_mount(struct cfs_sql *db, uint64_t ino,
			       const struct mirror_entry *e,
			       struct cfs_error *err);

/*
 * Invariant 10: folder old became the mount of shared namespace e's.  Its
 * whole subtree moves along, so that the folder never shows empty while
 * the shared namespace is listed; its tombstones stay behind, since the
 * old namespace's JIDs they guard mean nothing in the new one.
 */
enum cfs_err rows_follow_share(struct cfs_sql *db,
			       const struct mirror_entry *old,
			       const struct mirror_entry *e,
			       struct cfs_error *err);

/* Gives entry e (as the mirror has it) the node id node, and its
 * children and further names with it. */
enum cfs_err rows_set_node(struct cfs_sql *db, const struct mirror_entry *e,
			   int64_t node, struct cfs_error *err);

#endif
