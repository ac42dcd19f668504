/*
 * Open files.  A file handle keeps the block list it reads, and the table
 * of open inodes keeps a version per inode that the sync thread bumps when
 * the inode's content changes remotely.  A handle whose version is behind
 * reloads its block list before its next read, so every handle reads the
 * new content, as after a local write: the kernel's page cache is per
 * inode, and no handle may fill it with an older version.  A file deleted
 * remotely stays readable through its open handles.
 *
 * Lock order: a handle's lock, then the table's.
 */
#ifndef FS_OPENFILE_H
#define FS_OPENFILE_H

#include <pthread.h>
#include <stdint.h>

#include "cloudfs/block.h"

struct open_inode;

struct open_file {
	uint64_t ino;
	struct open_inode *inode;
	pthread_mutex_t lock; /* protects what follows */
	uint64_t version;     /* of size and blocks */
	uint64_t size;
	struct cfs_blocklist blocks;
	uint64_t last_off, last_end; /* the previous read, for readahead */
	uint64_t prefetched;	     /* blocks below this index are queued */
};

struct open_files;

struct open_files *openfiles_new(void);
void openfiles_free(struct open_files *t);

/* A new handle on ino holding size and blocks (taken over). */
struct open_file *openfiles_open(struct open_files *t, uint64_t ino,
				 uint64_t size, struct cfs_blocklist *blocks);
void openfiles_release(struct open_files *t, struct open_file *fh);

/* The current version of fh's inode (compare with fh->version). */
uint64_t openfiles_version(struct open_files *t, const struct open_file *fh);

/* The content of ino changed: handles on it must reload. */
void openfiles_changed(struct open_files *t, uint64_t ino);

#endif
