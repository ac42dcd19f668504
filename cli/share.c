/* cloudfs share, unshare, leave and shares (include/cli/cli.h). */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cloudfs/cmdtable.h"

static int print_shares(const struct cli_opts *opts, json_t *a)
{
	json_t *s, *m;
	size_t i, k;

	if (opts->json) {
		cli_print_json(a);
		return CLI_OK;
	}
	json_array_foreach(json_object_get(a, "shares"), i, s)
	{
		printf("%s (owner %s):", cli_text(s, "path"),
		       cli_text(s, "owner"));
		json_array_foreach(json_object_get(s, "members"), k, m)
			printf(" %s", cli_text(m, "user"));
		putchar('\n');
	}
	json_decref(a);
	return CLI_OK;
}

/* The commands of cli_share(): but for shares, each asks the mount to
 * change who shares PATH, and says what it did with done (a printf
 * format of PATH, then USER when it takes one). */
static const struct share_command {
	const char *name;
	bool lists; /* shares: lists them, of one mount */
	bool takes_user;
	const char *done;
} commands[] = {
	{ .name = "share",
	  .takes_user = true,
	  .done = "shared '%s' with %s\n" },
	{ .name = "unshare",
	  .takes_user = true,
	  .done = "'%s' is no longer shared with %s\n" },
	{ .name = "leave", .done = "left '%s'\n" },
	{ .name = "shares", .lists = true },
};

int cli_share(const struct cli_opts *opts, const char *cmd, int argc,
	      char **argv)
{
	const struct share_command *c = CFS_CMDTABLE_FIND(commands, cmd);
	int want = c && c->takes_user ? 2 : 1;
	struct cli_target t;
	json_t *a;

	assert(c); /* cli/main.c runs it for these names only */
	if (c->lists) {
		if (argc > 1) {
			cli_error("shares takes one MOUNTPOINT at most");
			return CLI_USAGE;
		}
		if (!cli_target(opts, argc ? argv[0] : NULL, &t))
			return CLI_FAILED;
		a = cli_ask(&t, json_pack("{s:s}", "cmd", "shares"));
		return a ? print_shares(opts, a) : CLI_FAILED;
	}
	if (argc != want || opts->cache_dir) {
		cli_error(
			want == 1
				? "%s takes PATH, a shared folder in a mount"
				: "%s takes PATH (a folder in a mount) and USER",
			cmd);
		return CLI_USAGE;
	}
	if (!cli_target(opts, argv[0], &t))
		return CLI_FAILED;
	a = cli_ask(&t, json_pack("{s:s, s:I, s:s?}", "cmd", cmd, "ino",
				  (json_int_t)t.ino, "user",
				  want == 2 ? argv[1] : NULL));
	if (!a)
		return CLI_FAILED;
	if (opts->json)
		cli_print_json(json_pack("{s:s, s:O, s:s?}", "path", argv[0],
					 "ns", json_object_get(a, "ns"), "user",
					 want == 2 ? argv[1] : NULL));
	else
		printf(c->done, argv[0], want == 2 ? argv[1] : NULL);
	json_decref(a);
	return CLI_OK;
}
