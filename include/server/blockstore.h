/*
 * The block store: block bytes by id.  A backend is a table of functions
 * behind struct blockstore; the embedded default keeps one file per block
 * under the data directory (server/blockstore_dir.c), the scale-out one
 * keeps one object per block in an S3 bucket (server/blockstore_s3.c).
 *
 * Bytes stream through the interface both ways, so that no backend needs
 * a local file the HTTP layer writes or reads:
 *
 *	upload    write_begin, write (any number of chunks), then either
 *	          write_finish with the id the caller checked the bytes
 *	          against, or write_abort
 *	download  read_open, then the bytes by read (in order) or, where
 *	          the backend has one, a descriptor by read_take_fd (so the
 *	          HTTP layer can sendfile(2) it), then read_close
 *
 * Only bytes whose hash was checked are stored: the HTTP layer hashes an
 * upload as it streams in and calls write_finish only when the hash is
 * the block's id.  The store knows nothing of users: the metadata store
 * decides who may read a block.  Every operation may run on any HTTP
 * thread at once; writers and readers belong to one thread at a time.
 *
 * Errors: each operation returns CFS_OK or a code with *err saying what
 * failed, on which block, and where: CFS_ERR_NOT_FOUND (no such block),
 * CFS_ERR_STORAGE_FULL, CFS_ERR_UNAVAILABLE (the storage cannot be
 * reached or answers that it cannot serve now: worth a retry) or
 * CFS_ERR_INTERNAL.
 */
#ifndef SERVER_BLOCKSTORE_H
#define SERVER_BLOCKSTORE_H

#include <stdbool.h>
#include <stdint.h>

#include "cloudfs/block.h"
#include "cloudfs/error.h"

struct blockstore;

/* An upload in flight; the backend's own structure starts with it. */
struct blockstore_writer {
	struct blockstore *bs;
};

/* A download in flight; the backend's own structure starts with it. */
struct blockstore_reader {
	struct blockstore *bs;
};

struct blockstore_ops {
	void (*close)(struct blockstore *bs);

	/* Starts an upload: *out until write_finish or write_abort. */
	enum cfs_err (*write_begin)(struct blockstore *bs,
				    struct blockstore_writer **out,
				    struct cfs_error *err);
	/* Appends len bytes (the upload stays at most CFS_BLOCK_SIZE). */
	enum cfs_err (*write)(struct blockstore_writer *w, const void *data,
			      size_t len, struct cfs_error *err);
	/*
	 * Makes the bytes written, whose SHA-256 the caller checked to be
	 * id, the bytes of block id, durably.  A block already stored
	 * costs the same work as a new one, so that timing tells no caller
	 * what the store holds (Dropship).  Consumes w either way.
	 */
	enum cfs_err (*write_finish)(struct blockstore_writer *w,
				     const struct cfs_block_id *id,
				     struct cfs_error *err);
	/*
	 * write_finish for the n uploads w (a batch upload, n >= 1), whose
	 * bytes hash to ids: the backend may make them durable together,
	 * with one sync for all rather than one each.  Consumes every
	 * writer either way.  *stored is how many of them, from the first
	 * on, are stored (all of them on CFS_OK).  NULL: the caller calls
	 * write_finish for each.
	 */
	enum cfs_err (*write_finish_many)(struct blockstore_writer **w,
					  const struct cfs_block_id *ids,
					  size_t n, size_t *stored,
					  struct cfs_error *err);
	/* Drops an upload and whatever of it was kept. */
	void (*write_abort)(struct blockstore_writer *w);

	/* Opens block id for reading: *out and its *size (1 to
	 * CFS_BLOCK_SIZE bytes).  CFS_ERR_NOT_FOUND when the store lacks
	 * it; nothing has been sent to the client yet on any error. */
	enum cfs_err (*read_open)(struct blockstore *bs,
				  const struct cfs_block_id *id,
				  struct blockstore_reader **out,
				  uint64_t *size, struct cfs_error *err);
	/*
	 * The next bytes of the block, at most max of them, into buf:
	 * *got is 0 at the end only.  A backend that cannot vouch for the
	 * last byte (the block's hash is checked as it streams) fails the
	 * read that would return it, so a reader never gets a whole wrong
	 * block.  NULL for a backend whose readers have a descriptor.
	 */
	enum cfs_err (*read)(struct blockstore_reader *r, char *buf, size_t max,
			     size_t *got, struct cfs_error *err);
	/* Hands over the reader's descriptor, positioned at the block's
	 * first byte (the caller closes it; read_close is still due).
	 * NULL for a backend that streams through read. */
	int (*read_take_fd)(struct blockstore_reader *r);
	void (*read_close)(struct blockstore_reader *r);

	/* Removes block id's bytes (garbage collection, server/gc.h); a
	 * block the store lacks is no error. */
	enum cfs_err (*remove)(struct blockstore *bs,
			       const struct cfs_block_id *id,
			       struct cfs_error *err);
};

struct blockstore {
	const struct blockstore_ops *ops;
};

/* Opens the store under dir (blocks/ and tmp/, created 0700). */
enum cfs_err blockstore_dir_open(const char *dir, struct blockstore **out,
				 struct cfs_error *err);

/* Where the S3 backend keeps blocks, and as whom. */
struct blockstore_s3_config {
	const char *bucket;
	const char *prefix;   /* "" or a key prefix ("cloudfs/blocks") */
	const char *endpoint; /* "https://s3.eu-west-1.amazonaws.com" */
	const char *region;   /* signed into every request */
	bool path_style;      /* ENDPOINT/BUCKET/KEY, else BUCKET.HOST/KEY */
	const char *access_key, *secret_key;
};

/* Opens the bucket's store (server/blockstore_s3.c), after a listing of
 * the bucket that shows the endpoint and credentials work.  Call before any
 * thread starts (it initializes libcurl). */
enum cfs_err blockstore_s3_open(const struct blockstore_s3_config *c,
				struct blockstore **out, struct cfs_error *err);

#endif
