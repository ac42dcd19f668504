/* What every metadata backend shares: user names and result cleanup. */
#include <string.h>

#include "cloudfs/proto.h"
#include "server/meta.h"

/* An entry's fields and their names, besides its strings and blocks. */
#define WIRE_ENTRY_BYTES 256

bool meta_page_take(struct meta_page *page, const struct meta_entry *e)
{
	uint64_t n = WIRE_ENTRY_BYTES +
		     (uint64_t)e->blocks.n * CFS_WIRE_BLOCK_ID_BYTES +
		     cfs_wire_string_bytes(e->path) +
		     cfs_wire_string_bytes(e->name) +
		     cfs_wire_string_bytes(e->target) +
		     cfs_wire_string_bytes(e->author);

	if (page->bytes && page->bytes + n > CFS_LIST_MAX_PAGE_BYTES)
		return false;
	page->bytes += n;
	return true;
}

enum cfs_err meta_user_name_check(const char *name, size_t len,
				  struct cfs_error *err)
{
	if (len == 0 || len > META_USER_NAME_MAX)
		return cfs_fail(err, CFS_ERR_BAD_FIELD,
				"user name must be 1 to %d characters long",
				META_USER_NAME_MAX);
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return cfs_fail(
				err, CFS_ERR_BAD_FIELD,
				"user name '%.*s' must be lower-case letters, digits, '.', '_' and '-', starting with a letter or digit",
				(int)len, name);
	}
	return CFS_OK;
}

void meta_op_result_release(struct meta_op_result *r)
{
	cfs_blocklist_release(&r->need);
}
