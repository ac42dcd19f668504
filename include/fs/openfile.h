/*
 * Open files.  A file handle keeps the block list it reads, and the table
 * of open inodes keeps a version per inode that the sync thread bumps when
 * the inode's content changes remotely.  A handle whose version is behind
 * reloads its block list before its next read, so every handle reads the
 * new content, as after a local write: the kernel's page cache is per
 * inode, and no handle may fill it with an older version.  A file deleted
 * remotely stays readable through its open handles.
 *
 * Lock order: a handle's lock, then the table's (all of the mount's:
 * include/fs/locks.h).
 */
#ifndef FS_OPENFILE_H
#define FS_OPENFILE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cloudfs/block.h"

struct open_inode;

/* The attributes of an open file, kept for fstat after a remote delete. */
struct open_attr {
	uint64_t size;
	uint32_t mode;
	int64_t atime_ns, mtime_ns, ctime_ns;
};

struct session;

struct open_file {
	uint64_t ino;
	struct open_inode *inode;
	struct session *session;       /* a writer's (fs/session.h) */
	struct open_file *next, *prev; /* all handles: the table's */
	pthread_mutex_t lock;	       /* protects what follows */
	uint64_t version;	       /* of size and blocks */
	uint64_t size;
	struct cfs_blocklist blocks;
	uint64_t last_off, last_end; /* the previous read, for readahead */
	uint64_t prefetched;	     /* blocks below this index are queued */
};

struct open_files;

struct open_files *openfiles_new(void);

/* Frees the table and the handles the kernel never released (a mount
 * ended by a signal). */
void openfiles_free(struct open_files *t);

/*
 * A new handle on ino, counted at the inode's current version and empty:
 * the caller reads the file's content after this, then gives it with
 * openfiles_load(), so a change made meanwhile still makes it reload.
 */
struct open_file *openfiles_open(struct open_files *t, uint64_t ino);

/* Gives the new handle fh its content: attr and blocks (taken over). */
void openfiles_load(struct open_files *t, struct open_file *fh,
		    const struct open_attr *attr, struct cfs_blocklist *blocks);
void openfiles_release(struct open_files *t, struct open_file *fh);

/* The last known attributes of ino, if a handle is open on it. */
bool openfiles_attr(struct open_files *t, uint64_t ino, struct open_attr *attr);

/* Records ino's new attributes (fh->lock held, after a reload). */
void openfiles_set_attr(struct open_files *t, struct open_file *fh,
			const struct open_attr *attr);

/* The current version of fh's inode (compare with fh->version). */
uint64_t openfiles_version(struct open_files *t, const struct open_file *fh);

/* The content of ino changed: handles on it must reload. */
void openfiles_changed(struct open_files *t, uint64_t ino);

#endif
