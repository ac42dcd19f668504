/*
 * Byte counts as people write and read them: "512M", "10G", "1.5 GiB".
 */
#ifndef CLOUDFS_SIZE_H
#define CLOUDFS_SIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Parses a count of bytes with an optional binary suffix (K, M, G, T,
 * also KiB...); false for anything else or an overflow. */
bool cfs_size_parse(const char *s, uint64_t *out);

/* Writes n as "123 B", "4.0 MiB", "1.5 GiB" into out. */
void cfs_size_format(uint64_t n, char *out, size_t len);

#endif
