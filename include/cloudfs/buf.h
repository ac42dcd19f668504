/*
 * A growable byte buffer with a hard size cap, for request and response
 * bodies.  Every buffer that grows with input has a cap; exceeding it is an
 * error the caller reports (413 on the server), never a larger allocation.
 */
#ifndef CLOUDFS_BUF_H
#define CLOUDFS_BUF_H

#include <stddef.h>

struct cfs_buf {
	char *data; /* NUL-terminated after every append */
	size_t len;
	size_t cap;
	size_t max; /* len never exceeds max */
};

void cfs_buf_init(struct cfs_buf *b, size_t max);

/* Returns 0, -EFBIG when len would pass max (b unchanged), or -ENOMEM. */
int cfs_buf_append(struct cfs_buf *b, const void *data, size_t len);

void cfs_buf_release(struct cfs_buf *b);

#endif
