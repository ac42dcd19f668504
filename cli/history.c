/* cloudfs history and restore (include/cli/cli.h, cloudfs(1)). */
#include <libgen.h>
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli/cli.h"
#include "cloudfs/cmdtable.h"
#include "cloudfs/size.h"

/*
 * The mount serving path, and its request for it: its entry, or (a path
 * not there now) the folder it was in and its name.  false after
 * printing what failed.
 */
static bool target_of(const struct cli_opts *opts, const char *path,
		      const char *cmd, struct cli_target *t, json_t **req)
{
	char dir[4096], base[4096];
	struct stat st;

	if (lstat(path, &st) == 0) {
		if (!cli_target(opts, path, t))
			return false;
		*req = json_pack("{s:s, s:I}", "cmd", cmd, "ino",
				 (json_int_t)t->ino);
	} else {
		snprintf(dir, sizeof(dir), "%s", path);
		snprintf(base, sizeof(base), "%s", path);
		if (!cli_target(opts, dirname(dir), t))
			return false;
		*req = json_pack("{s:s, s:I, s:s}", "cmd", cmd, "ino",
				 (json_int_t)t->ino, "name", basename(base));
	}
	if (!*req)
		cli_error("out of memory");
	return *req != NULL;
}

/* When, in local time. */
static void when(int64_t at, char out[32])
{
	time_t t = (time_t)at;
	struct tm tm;

	if (!localtime_r(&t, &tm) ||
	    !strftime(out, 32, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(out, 32, "%lld", (long long)at);
}

static void print_versions(json_t *a)
{
	json_t *v;
	size_t i;

	printf("%s:\n", cli_text(a, "path"));
	printf("  %-8s %-19s  %-12s %s\n", "JID", "WHEN", "WHAT", "BY");
	json_array_foreach(json_object_get(a, "versions"), i, v)
	{
		const char *kind = cli_text(v, "kind");
		char at[32], what[32];

		when(json_integer_value(json_object_get(v, "at")), at);
		if (strcmp(kind, "file") == 0)
			cfs_size_format((uint64_t)json_integer_value(
						json_object_get(v, "size")),
					what, sizeof(what));
		else
			snprintf(what, sizeof(what), "%s", kind);
		printf("  %-8lld %-19s  %-12s %s\n",
		       (long long)json_integer_value(json_object_get(v, "jid")),
		       at, what, cli_text(v, "author"));
	}
}

static void print_history(json_t *a, const char *path)
{
	(void)path; /* the answer names it, as the mount has it */
	print_versions(a);
}

static void print_restored(json_t *a, const char *path)
{
	printf("restored '%s' from JID %lld (%lld entries)\n", path,
	       (long long)json_integer_value(json_object_get(a, "jid")),
	       (long long)json_integer_value(json_object_get(a, "restored")));
}

/* The commands of cli_history(), each with how it prints the mount's
 * answer about the path given. */
static const struct history_command {
	const char *name;
	void (*print)(json_t *a, const char *path);
} commands[] = {
	{ .name = "history", .print = print_history },
	{ .name = "restore", .print = print_restored },
};

int cli_history(const struct cli_opts *opts, const char *cmd, int argc,
		char **argv)
{
	const struct history_command *c = CFS_CMDTABLE_FIND(commands, cmd);
	struct cli_target t;
	json_t *req, *a;

	assert(c); /* cli/main.c runs it for these names only */
	if (argc != 1 || opts->cache_dir) {
		cli_error("%s takes one PATH in a mount", cmd);
		return CLI_USAGE;
	}
	if (!target_of(opts, argv[0], cmd, &t, &req))
		return CLI_FAILED;
	if (opts->jid)
		json_object_set_new(req, "jid", json_integer(opts->jid));
	if (opts->at)
		json_object_set_new(req, "at", json_integer(opts->at));
	a = cli_ask(&t, req);
	if (!a)
		return CLI_FAILED;
	if (opts->json)
		cli_print_json(json_incref(a));
	else
		c->print(a, argv[0]);
	json_decref(a);
	return CLI_OK;
}
