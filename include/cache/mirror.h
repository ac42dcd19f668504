/*
 * The mirror: the client's copy of its namespaces, one row per node in its
 * newest known state, each with an inode number that never changes and is
 * never reused.  Reads answer the kernel (lookup, getattr, readdir) without
 * a network round trip; only the sync thread applies listings.
 *
 * The root of the mount is inode MIRROR_ROOT_INO, node 0 of the user's
 * root namespace.  A shared folder is a MOUNT entry of the root namespace
 * whose children are node 0's children of the shared namespace.
 */
#ifndef CACHE_MIRROR_H
#define CACHE_MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "cloudfs/block.h"
#include "cloudfs/path.h"
#include "cloudfs/proto.h"
#include "cloudfs/sql.h"

#define MIRROR_ROOT_INO 1

struct mirror_entry {
	uint64_t ino; /* 0 for an entry not yet in the mirror */
	int64_t ns;
	int64_t node;	  /* < 0: not on the server (yet): -ino */
	int64_t parent;	  /* node id in ns; 0 is the namespace's root */
	int64_t jid;	  /* the server's version the entry shows or edits */
	int64_t mount_ns; /* MOUNT entries: the shared namespace */
	int64_t link_of;  /* LINK entries: the node (in ns) they name */
	enum cfs_kind kind;
	char name[CFS_NAME_MAX + 1];
	uint64_t size;
	int64_t atime_ns, mtime_ns, ctime_ns;
	uint32_t mode;
	struct cfs_blocklist blocks; /* files; owned */
	char *target;		     /* symlinks; owned */
	int64_t pending;	     /* local changes not yet confirmed */
};

void mirror_entry_release(struct mirror_entry *e);

/* The entry of inode ino; NOT_FOUND when there is none. */
enum cfs_err mirror_get(struct cfs_sql *db, uint64_t ino,
			struct mirror_entry *e, struct cfs_error *err);

/* The child called name of directory dir; NOT_FOUND, or NOT_DIR when dir
 * is not a directory. */
enum cfs_err mirror_lookup(struct cfs_sql *db, const struct mirror_entry *dir,
			   const char *name, struct mirror_entry *e,
			   struct cfs_error *err);

/*
 * Calls fn for the children of directory dir whose inode number is above
 * after, in inode order, until fn returns false (its buffer is full).
 */
typedef bool (*mirror_child_fn)(void *arg, const struct mirror_entry *e);
enum cfs_err mirror_readdir(struct cfs_sql *db, const struct mirror_entry *dir,
			    uint64_t after, mirror_child_fn fn, void *arg,
			    struct cfs_error *err);

/*
 * What a name shows: entry *e itself, or, for a further name of a node
 * (kind LINK), that node, which replaces *e (released first).  NOT_FOUND
 * when the node is not shown (removed here and not yet confirmed, or in a
 * page not applied yet): the name shows nothing meanwhile.
 */
enum cfs_err mirror_named(struct cfs_sql *db, struct mirror_entry *e,
			  struct cfs_error *err);

/* How many names node entry e (by its inode) has now: 1 + its links shown. */
enum cfs_err mirror_names(struct cfs_sql *db, const struct mirror_entry *e,
			  int64_t *n, struct cfs_error *err);

/* How many folders (shared ones too) directory dir holds: its link count
 * is 2 more, as on a local disk. */
enum cfs_err mirror_subdirs(struct cfs_sql *db, const struct mirror_entry *dir,
			    int64_t *n, struct cfs_error *err);

/* The inode of e's parent directory (the root's is the root). */
enum cfs_err mirror_parent(struct cfs_sql *db, const struct mirror_entry *e,
			   uint64_t *ino, struct cfs_error *err);

/*
 * Folders a and b (the same one, or 0 for none) had entries added, removed
 * or renamed: their mtime and ctime are now, as POSIX has it, and later
 * than they were.  In the mount only: the server keeps the times last set
 * on a folder, which is what tar, rsync and cp -a set, and one more
 * journal entry per file created would double a tree's commits.
 */
enum cfs_err mirror_touch_dirs(struct cfs_sql *db, uint64_t a, uint64_t b,
			       struct cfs_error *err);

/*
 * Where the protocol addresses name in folder e (name NULL: e itself): the
 * namespace and the path there (malloc'd).  In the mount of a shared
 * folder that is the shared namespace.
 */
enum cfs_err mirror_address(struct cfs_sql *db, const struct mirror_entry *e,
			    const char *name, int64_t *ns, char **path,
			    struct cfs_error *err);

/* The path of inode ino from the mount's root, for messages (malloc'd). */
enum cfs_err mirror_path(struct cfs_sql *db, uint64_t ino, char **path,
			 struct cfs_error *err);

/* A namespace the mirror follows, and how far. */
struct mirror_ns {
	int64_t ns;
	int64_t cursor;
	bool listed; /* listed from 0 once, up to a head */
};

/* The namespaces followed (the root one first); *list is malloc'd. */
enum cfs_err mirror_namespaces(struct cfs_sql *db, struct mirror_ns **list,
			       size_t *n, struct cfs_error *err);

/* How far the mirror follows namespace ns; NOT_FOUND (no message) when it
 * does not. */
enum cfs_err mirror_ns_get(struct cfs_sql *db, int64_t ns, struct mirror_ns *m,
			   struct cfs_error *err);

/* Creates the root entry and namespace of a new mirror. */
enum cfs_err mirror_init_root(struct cfs_sql *db, int64_t root_ns,
			      struct cfs_error *err);

/* What the kernel must drop after a change: an inode's attributes and
 * data, or, with name set, a directory entry of parent (whose listing
 * changed then too); children: folder ino's listing changed (an entry
 * came, went or was renamed). */
struct mirror_inval {
	uint64_t ino;
	uint64_t parent;
	char *name;
	bool children;
};

struct mirror_changes {
	struct mirror_inval *v;
	size_t n, cap;
};

void mirror_changes_release(struct mirror_changes *ch);

/*
 * Applies one page of a listing of namespace ns, in one transaction: the
 * entries in order, then the cursor (and, when complete, that ns is
 * listed).  Appends to ch what the kernel must drop once it committed.
 */
enum cfs_err mirror_apply(struct cfs_sql *db, int64_t ns,
			  const struct mirror_entry *entries, size_t n,
			  int64_t cursor, bool complete,
			  struct mirror_changes *ch, struct cfs_error *err);

/* Forgets namespace ns (its mount is gone), in one transaction. */
enum cfs_err mirror_forget_ns(struct cfs_sql *db, int64_t ns,
			      struct cfs_error *err);

#endif
