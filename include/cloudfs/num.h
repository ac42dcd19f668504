/*
 * Numbers as the protocol and the command lines write them: decimal
 * digits, nothing else.  strtoll() alone also takes leading spaces, a '+',
 * a '-' where none is meant and an empty string, and saturates on
 * overflow; every number read from a request goes through here instead.
 */
#ifndef CLOUDFS_NUM_H
#define CLOUDFS_NUM_H

#include <stdint.h>

/*
 * Parses s, one or more decimal digits (a '-' first only when min < 0),
 * into *out.  0; -EINVAL when s is empty or holds anything else (a sign,
 * a space, a fraction, hex); -ERANGE when the number lies outside
 * [min, max], however many digits it has.  *out is set only on success.
 */
int cfs_num_parse_i64(const char *s, int64_t min, int64_t max, int64_t *out);

#endif
