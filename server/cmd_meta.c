/*
 * The metadata store a command works on (server/cmd.h): --meta URL, or
 * the data directory's embedded store.
 */
#include <stdio.h>
#include <string.h>

#include "cloudfs/log.h"
#include "server/cmd.h"

static bool prefixed(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool cmd_meta_resolve(const char *cmd, const char *url, const char *data_dir,
		      struct cmd_meta *out, int *status)
{
	*out = (struct cmd_meta){ .url = url, .dir = data_dir };
	if (!url)
		return true;
	if (prefixed(url, "postgresql://") || prefixed(url, "postgres://")) {
		out->dir = NULL;
		return true;
	}
	if (prefixed(url, "sqlite:") && url[strlen("sqlite:")]) {
		out->dir = url + strlen("sqlite:");
		return true;
	}
	fprintf(stderr,
		"cloudfsd %s: --meta must be postgresql://... or sqlite:DIR, not '%s'\n",
		cmd, url);
	*status = EXIT_USAGE;
	return false;
}

struct meta *cmd_meta_open(const struct cmd_meta *m, meta_notify_fn notify,
			   void *notify_arg)
{
	struct cfs_error err;
	struct meta *meta;

	if (m->dir ? meta_sqlite_open(m->dir, notify, notify_arg, &meta, &err)
		   : meta_pg_open(m->url, notify, notify_arg, &meta, &err)) {
		cfs_log_error("%s", err.msg);
		return NULL;
	}
	return meta;
}
