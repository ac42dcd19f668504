/* What every remote shares (fs/remote.h): freeing its answers. */
#include <stdlib.h>
#include <string.h>

#include "cloudfs/proto.h"
#include "fs/remote.h"

void remote_ns_free(struct remote_ns *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++) {
		free(list[i].path);
		free(list[i].owner);
	}
	free(list);
}

void remote_page_release(struct remote_page *p)
{
	for (size_t i = 0; p->entries && i < p->n; i++)
		mirror_entry_release(&p->entries[i]);
	free(p->entries);
	for (size_t i = 0; p->paths && i < p->n; i++)
		free(p->paths[i]);
	free(p->paths);
	memset(p, 0, sizeof(*p));
}

void remote_pending_release(struct remote_pending *p)
{
	free(p->landed);
	p->landed = NULL;
	p->n = 0;
}

void remote_commit_release(struct remote_commit *out)
{
	free(out->results);
	out->results = NULL;
}

void remote_members_free(struct remote_member *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		free(list[i].user);
	free(list);
}

void remote_versions_free(struct remote_version *list, size_t n)
{
	for (size_t i = 0; list && i < n; i++) {
		mirror_entry_release(&list[i].e);
		free(list[i].author);
	}
	free(list);
}

const char *remote_status_name(enum remote_status status)
{
	static const char *const names[] = {
		[REMOTE_COMMITTED] = "committed",
		[REMOTE_NEED_BLOCKS] = "need_blocks",
		[REMOTE_CONFLICT] = "conflict",
		[REMOTE_ERROR] = "error",
		[REMOTE_OTHER] = "?",
	};

	return names[status];
}

/* About the most op takes in a commit's JSON: its fields and names (256),
 * its block ids and strings (cloudfs/proto.h). */
static uint64_t op_wire_bytes(const struct queued_op *op)
{
	return 256 + (uint64_t)op->blocks.n * CFS_WIRE_BLOCK_ID_BYTES +
	       cfs_wire_string_bytes(op->path) + cfs_wire_string_bytes(op->to) +
	       cfs_wire_string_bytes(op->target);
}

size_t remote_commit_fit(const struct queued_op *ops, size_t n)
{
	uint64_t bytes = 0;
	size_t k;

	for (k = 0; k < n; k++) {
		bytes += op_wire_bytes(&ops[k]);
		if (k && bytes > CFS_MAX_COMMIT_BODY - 64 * 1024)
			break;
	}
	return k;
}

const char *remote_op_name(const struct queued_op *op)
{
	static const char *const names[] = {
		[QUEUE_FILE] = "file",	     [QUEUE_DIR] = "dir",
		[QUEUE_SYMLINK] = "symlink", [QUEUE_DELETE] = "delete",
		[QUEUE_MOVE] = "move",	     [QUEUE_LINK] = "link",
	};

	/* A special file's operation is named by its kind ("fifo"). */
	return op->type == QUEUE_SPECIAL ? cfs_kind_name(op->kind)
					 : names[op->type];
}

enum cfs_err remote_bad_listing(enum cfs_err rc, int64_t ns,
				struct cfs_error *err)
{
	if (rc != CFS_ERR_BAD_FIELD && rc != CFS_ERR_BAD_PATH &&
	    rc != CFS_ERR_BAD_BLOCK && rc != CFS_ERR_TOO_LARGE)
		return rc;
	cfs_error_prefix(err, "bad listing of namespace %lld", (long long)ns);
	err->code = CFS_ERR_UNREACHABLE;
	return CFS_ERR_UNREACHABLE;
}
