/* What every metadata backend shares: user names and result cleanup. */
#include <string.h>

#include "server/meta.h"

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
