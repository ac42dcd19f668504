/* Sets of block ids (cloudfs/blockset.h). */
#include <stdlib.h>
#include <string.h>

#include "cloudfs/blockset.h"

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, CFS_BLOCK_ID_LEN);
}

enum cfs_err cfs_blockset_add_raw(struct cfs_blockset *s, const void *raw,
				  size_t len, struct cfs_error *err)
{
	size_t k = len / CFS_BLOCK_ID_LEN;

	if (s->n + k > s->cap) {
		size_t cap = 2 * (s->n + k) + 64;
		void *p = realloc(s->v, cap * sizeof(s->v[0]));

		if (!p)
			return cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
		s->v = p;
		s->cap = cap;
	}
	if (k)
		memcpy(&s->v[s->n], raw, k * CFS_BLOCK_ID_LEN);
	s->n += k;
	return CFS_OK;
}

void cfs_blockset_seal(struct cfs_blockset *s)
{
	size_t out = 0;

	if (!s->n)
		return;
	qsort(s->v, s->n, sizeof(s->v[0]), id_cmp);
	for (size_t i = 0; i < s->n; i++)
		if (!out || id_cmp(&s->v[i], &s->v[out - 1]))
			s->v[out++] = s->v[i];
	s->n = out;
}

bool cfs_blockset_has(const struct cfs_blockset *s,
		      const struct cfs_block_id *id)
{
	return s->n && bsearch(id, s->v, s->n, sizeof(s->v[0]), id_cmp);
}

void cfs_blockset_release(struct cfs_blockset *s)
{
	free(s->v);
	*s = (struct cfs_blockset){ 0 };
}
