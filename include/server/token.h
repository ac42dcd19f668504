/*
 * Bearer tokens: 32 random bytes, written as 64 lowercase hex digits.  The
 * server keeps only their SHA-256.
 */
#ifndef SERVER_TOKEN_H
#define SERVER_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "server/meta.h"

#define TOKEN_HEX_LEN 64

/* A new token from the OpenSSL CSPRNG.  0, or -EIO when it has no
 * entropy to give. */
int token_generate(char out[TOKEN_HEX_LEN + 1]);

/* The stored form of a token. */
void token_hash(const char *token, size_t len,
		uint8_t hash[META_TOKEN_HASH_LEN]);

#endif
