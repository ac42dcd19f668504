/*
 * Blocks and block lists.
 *
 * File content is cut at fixed 4 MiB offsets; the last block is shorter and
 * an empty file has no block.  A block's id is the SHA-256 of its bytes.  A
 * file's content is its block list.  On the wire an id is 64 lowercase hex
 * digits; in storage a block list is the concatenation of raw 32-byte ids.
 */
#ifndef CLOUDFS_BLOCK_H
#define CLOUDFS_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cloudfs/error.h"

#define CFS_BLOCK_SIZE	     (4u * 1024 * 1024)
#define CFS_BLOCK_ID_LEN     32
#define CFS_BLOCK_ID_HEX_LEN 64

struct cfs_block_id {
	uint8_t b[CFS_BLOCK_ID_LEN];
};

/* Number of blocks of a file of `size` bytes. */
uint64_t cfs_block_count(uint64_t size);

/* Length of block `index` of a file of `size` bytes (0 past the end). */
uint32_t cfs_block_len(uint64_t size, uint64_t index);

bool cfs_block_id_equal(const struct cfs_block_id *a,
			const struct cfs_block_id *b);

/* Writes 64 hex digits and a NUL into out. */
void cfs_block_id_to_hex(const struct cfs_block_id *id,
			 char out[CFS_BLOCK_ID_HEX_LEN + 1]);

/* Parses exactly 64 lowercase hex digits; returns false for anything else. */
bool cfs_block_id_from_hex(const char *hex, size_t len,
			   struct cfs_block_id *id);

/* SHA-256 of a buffer (OpenSSL EVP).  Returns 0 or -ENOMEM. */
int cfs_sha256(const void *data, size_t len, struct cfs_block_id *id);

/* Incremental SHA-256, for bytes that arrive in pieces. */
struct cfs_sha256;
struct cfs_sha256 *cfs_sha256_new(void);
int cfs_sha256_update(struct cfs_sha256 *h, const void *data, size_t len);
int cfs_sha256_final(struct cfs_sha256 *h, struct cfs_block_id *id);
void cfs_sha256_free(struct cfs_sha256 *h);

struct cfs_blocklist {
	size_t n;
	struct cfs_block_id *ids;
};

void cfs_blocklist_release(struct cfs_blocklist *bl);

bool cfs_blocklist_equal(const struct cfs_blocklist *a,
			 const struct cfs_blocklist *b);

/*
 * Cuts `len` bytes into blocks and hashes each.  Returns 0, or -ENOMEM with
 * bl left empty.
 */
int cfs_blocklist_cut(const void *data, size_t len, struct cfs_blocklist *bl);

/*
 * Cuts the whole file open at fd (read from offset 0 to EOF) and hashes each
 * block; *size receives the byte count.  Returns 0 or a negative errno.
 */
int cfs_blocklist_cut_fd(int fd, struct cfs_blocklist *bl, uint64_t *size);

/* Raw storage form: n * 32 bytes.  Returns 0, -EINVAL or -ENOMEM. */
int cfs_blocklist_from_raw(const void *raw, size_t len,
			   struct cfs_blocklist *bl);

#endif
