/* Block ids, SHA-256 over OpenSSL EVP, and block lists (cloudfs/block.h). */
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cloudfs/block.h"

uint64_t cfs_block_count(uint64_t size)
{
	return size / CFS_BLOCK_SIZE + (size % CFS_BLOCK_SIZE != 0);
}

uint32_t cfs_block_len(uint64_t size, uint64_t index)
{
	uint64_t start = index * CFS_BLOCK_SIZE;

	if (index >= cfs_block_count(size))
		return 0;
	return size - start < CFS_BLOCK_SIZE ? (uint32_t)(size - start)
					     : CFS_BLOCK_SIZE;
}

bool cfs_block_id_equal(const struct cfs_block_id *a,
			const struct cfs_block_id *b)
{
	return memcmp(a->b, b->b, CFS_BLOCK_ID_LEN) == 0;
}

void cfs_block_id_to_hex(const struct cfs_block_id *id,
			 char out[CFS_BLOCK_ID_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < CFS_BLOCK_ID_LEN; i++) {
		out[2 * i] = digits[id->b[i] >> 4];
		out[2 * i + 1] = digits[id->b[i] & 15];
	}
	out[CFS_BLOCK_ID_HEX_LEN] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool cfs_block_id_from_hex(const char *hex, size_t len, struct cfs_block_id *id)
{
	if (len != CFS_BLOCK_ID_HEX_LEN)
		return false;
	for (int i = 0; i < CFS_BLOCK_ID_LEN; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		id->b[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

struct cfs_sha256 {
	EVP_MD_CTX *ctx;
};

struct cfs_sha256 *cfs_sha256_new(void)
{
	struct cfs_sha256 *h = malloc(sizeof(*h));

	if (!h)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx || !EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL)) {
		cfs_sha256_free(h);
		return NULL;
	}
	return h;
}

int cfs_sha256_update(struct cfs_sha256 *h, const void *data, size_t len)
{
	return EVP_DigestUpdate(h->ctx, data, len) ? 0 : -ENOMEM;
}

int cfs_sha256_final(struct cfs_sha256 *h, struct cfs_block_id *id)
{
	unsigned int n = 0;

	if (!EVP_DigestFinal_ex(h->ctx, id->b, &n) || n != CFS_BLOCK_ID_LEN)
		return -ENOMEM;
	/* Ready for the next block, so one hasher serves a whole file. */
	return EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) ? 0 : -ENOMEM;
}

void cfs_sha256_free(struct cfs_sha256 *h)
{
	if (h) {
		EVP_MD_CTX_free(h->ctx);
		free(h);
	}
}

int cfs_sha256(const void *data, size_t len, struct cfs_block_id *id)
{
	unsigned int n = 0;

	if (!EVP_Digest(data, len, id->b, &n, EVP_sha256(), NULL) ||
	    n != CFS_BLOCK_ID_LEN)
		return -ENOMEM;
	return 0;
}

void cfs_blocklist_release(struct cfs_blocklist *bl)
{
	free(bl->ids);
	bl->ids = NULL;
	bl->n = 0;
}

bool cfs_blocklist_equal(const struct cfs_blocklist *a,
			 const struct cfs_blocklist *b)
{
	return a->n == b->n &&
	       (a->n == 0 ||
		memcmp(a->ids, b->ids, a->n * sizeof(a->ids[0])) == 0);
}

static int blocklist_alloc(struct cfs_blocklist *bl, uint64_t n)
{
	bl->n = 0;
	bl->ids = NULL;
	if (n == 0)
		return 0;
	if (n > SIZE_MAX / sizeof(bl->ids[0]))
		return -ENOMEM;
	bl->ids = malloc(n * sizeof(bl->ids[0]));
	if (!bl->ids)
		return -ENOMEM;
	bl->n = n;
	return 0;
}

int cfs_blocklist_cut(const void *data, size_t len, struct cfs_blocklist *bl)
{
	const uint8_t *p = data;
	int rc = blocklist_alloc(bl, cfs_block_count(len));

	for (size_t i = 0; rc == 0 && i < bl->n; i++)
		rc = cfs_sha256(p + i * CFS_BLOCK_SIZE, cfs_block_len(len, i),
				&bl->ids[i]);
	if (rc)
		cfs_blocklist_release(bl);
	return rc;
}

/* Reads up to len bytes, short only at end of file. */
static ssize_t read_full(int fd, uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

int cfs_blocklist_cut_fd(int fd, struct cfs_blocklist *bl, uint64_t *size)
{
	uint8_t *buf = malloc(CFS_BLOCK_SIZE);
	size_t cap = 0;
	int rc = 0;

	bl->n = 0;
	bl->ids = NULL;
	*size = 0;
	if (!buf)
		return -ENOMEM;
	if (lseek(fd, 0, SEEK_SET) < 0) {
		rc = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = read_full(fd, buf, CFS_BLOCK_SIZE);

		if (n <= 0) {
			rc = (int)n;
			break;
		}
		if (bl->n == cap) {
			size_t ncap = cap ? 2 * cap : 16;
			void *p = realloc(bl->ids, ncap * sizeof(bl->ids[0]));

			if (!p) {
				rc = -ENOMEM;
				break;
			}
			bl->ids = p;
			cap = ncap;
		}
		rc = cfs_sha256(buf, (size_t)n, &bl->ids[bl->n]);
		if (rc)
			break;
		bl->n++;
		*size += (uint64_t)n;
		if ((size_t)n < CFS_BLOCK_SIZE)
			break;
	}
out:
	free(buf);
	if (rc) {
		cfs_blocklist_release(bl);
		*size = 0;
	}
	return rc;
}

int cfs_blocklist_from_raw(const void *raw, size_t len,
			   struct cfs_blocklist *bl)
{
	int rc;

	if (len % CFS_BLOCK_ID_LEN)
		return -EINVAL;
	rc = blocklist_alloc(bl, len / CFS_BLOCK_ID_LEN);
	if (rc == 0 && len)
		memcpy(bl->ids, raw, len);
	return rc;
}
