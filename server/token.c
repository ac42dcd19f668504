/* Bearer tokens (server/token.h). */
#include <errno.h>
#include <openssl/rand.h>
#include <string.h>

#include "cloudfs/block.h"
#include "server/token.h"

int token_generate(char out[TOKEN_HEX_LEN + 1])
{
	struct cfs_block_id raw;

	if (RAND_bytes(raw.b, sizeof(raw.b)) != 1)
		return -EIO;
	/* Same shape as a block id: 32 bytes in hex. */
	cfs_block_id_to_hex(&raw, out);
	return 0;
}

void token_hash(const char *token, size_t len,
		uint8_t hash[META_TOKEN_HASH_LEN])
{
	struct cfs_block_id digest;

	if (cfs_sha256(token, len, &digest))
		memset(digest.b, 0, sizeof(digest.b)); /* matches no token */
	memcpy(hash, digest.b, META_TOKEN_HASH_LEN);
}
