/* Capped growable buffers (cloudfs/buf.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cloudfs/buf.h"

void cfs_buf_init(struct cfs_buf *b, size_t max)
{
	*b = (struct cfs_buf){ .max = max };
}

int cfs_buf_append(struct cfs_buf *b, const void *data, size_t len)
{
	if (len > b->max - b->len)
		return -EFBIG;
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *p;

		while (cap < b->len + len + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

void cfs_buf_release(struct cfs_buf *b)
{
	free(b->data);
	cfs_buf_init(b, b->max);
}
