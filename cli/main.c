/* The cloudfs command: its command line and exit statuses
 * (include/cli/cli.h, cloudfs(1)). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cloudfs/cmdtable.h"
#include "cloudfs/clock.h"
#include "cloudfs/log.h"
#include "config.h"

static const char usage[] =
	"usage: cloudfs [OPTIONS] COMMAND [ARGS]\n"
	"Shows and controls what a cloudfs mount has synced, shared and\n"
	"cached.\n"
	"\n"
	"commands:\n"
	"  login URL              read a token (from the server's admin) on\n"
	"                         stdin, check it against the server at URL,\n"
	"                         keep it for mount.cloudfs MOUNTPOINT\n"
	"  status [MOUNTPOINT]    what is synced: each namespace against the\n"
	"                         server, changes left to send, conflicts\n"
	"  stats [MOUNTPOINT]     what the mount did since it started: reads,\n"
	"                         fetches, uploads, commits, long polls\n"
	"  share PATH USER        share the folder at PATH with USER (it\n"
	"                         becomes a shared folder if it is not one)\n"
	"  unshare PATH USER      the owner takes USER off shared folder PATH\n"
	"  leave PATH             leave the shared folder at PATH\n"
	"  shares [MOUNTPOINT]    the shared folders, owners and members\n"
	"  history PATH           the versions of a file or folder (also one\n"
	"                         deleted) the server keeps\n"
	"  restore PATH           bring back the version before the last (of\n"
	"                         a deleted file or folder: the last one), or\n"
	"                         the one of --jid or --at, as a new version\n"
	"  cache stat [PATH]      bytes used and the limit, files cached,\n"
	"                         pinned, pending; hit ratio since mount\n"
	"  cache ls [PATH]        per file: cached bytes and blocks, state\n"
	"  cache pin PATH         fetch a file or tree whole and keep it\n"
	"  cache unpin PATH       let eviction take it again\n"
	"  cache warm PATH        fetch without pinning\n"
	"  cache evict [PATH]     drop clean, unpinned blocks\n"
	"  cache verify           re-hash every cached block; drop bad ones\n"
	"  cache gc               drop block files and rows nothing uses\n"
	"\n"
	"A PATH or MOUNTPOINT names a mount (default: the current directory;\n"
	"status without one reports every cloudfs mount).\n"
	"\n"
	"options:\n"
	"  --cache DIR            a cache directory instead of a mount (also\n"
	"                         when nothing is mounted); PATH is then a\n"
	"                         path in the cache's tree\n"
	"  --json                 print JSON, for scripts\n"
	"  --wait                 status: wait until every change is on the\n"
	"                         server, with progress\n"
	"  --timeout SECONDS      status --wait: give up after this long\n"
	"  --jid N                restore: the version with JID N (a folder:\n"
	"                         with its contents as of JID N)\n"
	"  --at TIME              restore: the version of TIME, as\n"
	"                         2026-12-01T10:00[:SS][Z] or @UNIX_SECONDS\n"
	"  --token-file FILE      login: where to keep the token (default\n"
	"                         ~/.config/cloudfs/token)\n"
	"  -h, --help             show this help\n"
	"  -V, --version          show the version\n"
	"\n"
	"exit status: 0 success (status: synced), 1 failure, 2 wrong command\n"
	"line, 3 not everything is well (status: not synced or --wait timed\n"
	"out; verify: bad blocks found and removed).\n"
	"See cloudfs(1).\n";

/* The options that only some commands take. */
enum {
	TAKES_WAIT = 1,	      /* --wait, --timeout */
	TAKES_VERSION = 2,    /* --jid, --at */
	TAKES_TOKEN_FILE = 4, /* --token-file */
};

/* The commands, each with what runs it (told its own name, when it runs
 * several) and the options above it takes. */
static const struct command {
	const char *name;
	int (*run)(const struct cli_opts *opts, int argc, char **argv);
	int (*run_named)(const struct cli_opts *opts, const char *cmd, int argc,
			 char **argv);
	unsigned takes;
} commands[] = {
	{ .name = "status", .run = cli_status, .takes = TAKES_WAIT },
	{ .name = "stats", .run = cli_stats },
	{ .name = "cache", .run = cli_cache },
	{ .name = "share", .run_named = cli_share },
	{ .name = "unshare", .run_named = cli_share },
	{ .name = "leave", .run_named = cli_share },
	{ .name = "shares", .run_named = cli_share },
	{ .name = "history", .run_named = cli_history },
	{ .name = "restore", .run_named = cli_history, .takes = TAKES_VERSION },
	{ .name = "login", .run = cli_login, .takes = TAKES_TOKEN_FILE },
};

int main(int argc, char **argv)
{
	static const struct option longs[] = {
		{ "cache", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "wait", no_argument, NULL, 'w' },
		{ "timeout", required_argument, NULL, 't' },
		{ "jid", required_argument, NULL, 'J' },
		{ "at", required_argument, NULL, 'A' },
		{ "token-file", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli_opts opts = { 0 };
	const struct command *cmd;
	unsigned takes;
	char *end;
	int c;

	cfs_log_init("cloudfs", CFS_LOG_WARN);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "hV", longs, NULL)) != -1) {
		switch (c) {
		case 'c':
			opts.cache_dir = optarg;
			break;
		case 'j':
			opts.json = true;
			break;
		case 'w':
			opts.wait = true;
			break;
		case 't':
			opts.timeout = strtod(optarg, &end);
			if (*end || opts.timeout <= 0) {
				cli_error(
					"--timeout takes a number of seconds above 0, not '%s'",
					optarg);
				return CLI_USAGE;
			}
			break;
		case 'J':
			opts.jid = strtoll(optarg, &end, 10);
			if (*end || opts.jid <= 0) {
				cli_error("--jid takes a JID above 0, not '%s'",
					  optarg);
				return CLI_USAGE;
			}
			break;
		case 'A':
			if (!cfs_time_parse(optarg, &opts.at)) {
				cli_error(
					"--at takes a time as 2026-12-01T10:00, 2026-12-01T10:00:30Z or @1795000000, not '%s'",
					optarg);
				return CLI_USAGE;
			}
			break;
		case 'T':
			opts.token_file = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			return CLI_OK;
		case 'V':
			printf("cloudfs %s\n", CLOUDFS_VERSION);
			return CLI_OK;
		default:
			cli_error(
				"unknown option '%s' ('cloudfs --help' lists them)",
				argv[optind - 1]);
			return CLI_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		cli_error("a command is needed ('cloudfs --help' lists them)");
		return CLI_USAGE;
	}
	cmd = CFS_CMDTABLE_FIND(commands, argv[0]);
	takes = cmd ? cmd->takes : 0;
	if ((opts.wait || opts.timeout) && !(takes & TAKES_WAIT)) {
		cli_error("--wait and --timeout are for status");
		return CLI_USAGE;
	}
	if ((opts.jid || opts.at) && !(takes & TAKES_VERSION)) {
		cli_error("--jid and --at are for restore");
		return CLI_USAGE;
	}
	if (opts.jid && opts.at) {
		cli_error("give --jid or --at, not both");
		return CLI_USAGE;
	}
	if (opts.token_file && !(takes & TAKES_TOKEN_FILE)) {
		cli_error("--token-file is for login");
		return CLI_USAGE;
	}
	if (opts.timeout && !opts.wait) {
		cli_error("--timeout is for status --wait");
		return CLI_USAGE;
	}
	if (cmd && cmd->run)
		return cmd->run(&opts, argc - 1, argv + 1);
	if (cmd)
		return cmd->run_named(&opts, argv[0], argc - 1, argv + 1);
	cli_error("unknown command '%s' ('cloudfs --help' lists them)",
		  argv[0]);
	return CLI_USAGE;
}
