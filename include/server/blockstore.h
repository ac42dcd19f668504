/*
 * The block store: block bytes by id.  A backend is a table of functions
 * behind struct blockstore; the embedded default keeps one file per block
 * under the data directory (server/blockstore_dir.c).
 *
 * Uploads arrive in a temporary file that the HTTP layer writes and hashes
 * as the bytes come; only bytes whose hash was checked are put.  The store
 * knows nothing of users: the metadata store decides who may read a block.
 */
#ifndef SERVER_BLOCKSTORE_H
#define SERVER_BLOCKSTORE_H

#include <stdint.h>

#include "cloudfs/block.h"

/* A temporary file being filled with an upload. */
struct blockstore_tmp {
	int fd;
	char path[4096];
};

struct blockstore;

struct blockstore_ops {
	void (*close)(struct blockstore *bs);
	/* Creates an empty temporary file.  0 or a negative errno. */
	int (*tmp_create)(struct blockstore *bs, struct blockstore_tmp *tmp);
	/*
	 * Makes the (fully written, verified) temporary file the bytes of
	 * block id, durably.  A block already stored costs the same work
	 * as a new one, so that timing tells no caller what the store
	 * holds (Dropship).  Consumes tmp either way.  0 or a negative
	 * errno (-ENOSPC when the disk is full).
	 */
	int (*tmp_store)(struct blockstore *bs, struct blockstore_tmp *tmp,
			 const struct cfs_block_id *id);
	/* Drops a temporary file. */
	void (*tmp_discard)(struct blockstore *bs, struct blockstore_tmp *tmp);
	/*
	 * Opens block id for reading: *fd (the caller closes it) and *size.
	 * -ENOENT when the store lacks it.
	 */
	int (*open)(struct blockstore *bs, const struct cfs_block_id *id,
		    int *fd, uint64_t *size);
	/* Removes block id's bytes (garbage collection, server/gc.h); a
	 * block the store lacks is no error.  0 or a negative errno. */
	int (*remove)(struct blockstore *bs, const struct cfs_block_id *id);
};

struct blockstore {
	const struct blockstore_ops *ops;
};

/* Opens the store under data_dir (blocks/ and tmp/, created 0700). */
int blockstore_dir_open(const char *data_dir, struct blockstore **out);

#endif
