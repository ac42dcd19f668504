/* cloudfs share, unshare, leave and shares (include/cli/cli.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

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

int cli_share(const struct cli_opts *opts, const char *cmd, int argc,
	      char **argv)
{
	int want = strcmp(cmd, "leave") == 0 ? 1 : 2;
	struct cli_target t;
	json_t *a;

	if (strcmp(cmd, "shares") == 0) {
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
	else if (strcmp(cmd, "share") == 0)
		printf("shared '%s' with %s\n", argv[0], argv[1]);
	else if (strcmp(cmd, "unshare") == 0)
		printf("'%s' is no longer shared with %s\n", argv[0], argv[1]);
	else
		printf("left '%s'\n", argv[0]);
	json_decref(a);
	return CLI_OK;
}
