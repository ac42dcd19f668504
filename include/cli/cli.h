/*
 * The cloudfs command: what its sub-commands share.
 *
 *	cli/main.c    the command line, dispatch, exit statuses
 *	cli/target.c  which mount or cache a command is about, and the
 *	              mount's control socket (fs/control.h)
 *	cli/status.c  cloudfs status [--wait]
 *	cli/stats.c   cloudfs stats
 *	cli/cache.c   cloudfs cache SUBCOMMAND
 *	cli/share.c   cloudfs share, unshare, leave, shares
 *	cli/warm.c    reading files whole through a mount, with progress
 */
#ifndef CLI_CLI_H
#define CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "cache/cache.h"

/* Exit statuses (cloudfs(1)). */
enum {
	CLI_OK = 0,
	CLI_FAILED = 1,
	CLI_USAGE = 2,
	CLI_NOT_WELL = 3, /* done, but not synced, or bad blocks found */
};

struct cli_opts {
	bool json;
	bool wait;
	double timeout; /* status --wait: seconds, 0 for none */
	const char *cache_dir;
	int64_t jid;		/* restore --jid: the version (0: not given) */
	int64_t at;		/* restore --at: unix seconds (0: not given) */
	const char *token_file; /* login --token-file (NULL: the default) */
};

/* What a command is about: a live mount (by a path in it) or a cache
 * directory. */
struct cli_target {
	char cache_dir[4096];
	char path[4096]; /* the path given, "" with --cache */
	uint64_t ino;	 /* of path in the mount (0: none) */
	bool live;	 /* a mount is serving the cache */
};

/* Resolves path (NULL: the current directory) or opts->cache_dir; prints
 * what is wrong and returns false when it cannot. */
bool cli_target(const struct cli_opts *opts, const char *path,
		struct cli_target *t);

/* The mounts of cloudfs (in /proc/self/mounts on Linux), as a NULL-ended
 * array of mountpoints (free each and the array); NULL when out of memory.
 * *listed is false where the platform cannot list mounts at all. */
char **cli_mounts(bool *listed);

/* Sends request to the mount serving t and returns its answer, or NULL
 * after printing what failed.  Consumes request. */
json_t *cli_ask(const struct cli_target *t, json_t *request);

/* Prints o as one JSON document on stdout, and releases it. */
void cli_print_json(json_t *o);

/* A string field of a mount's answer, "?" when the answer lacks it (a
 * mount of another version, or a broken one: never a NULL to print). */
const char *cli_text(json_t *o, const char *key);

/* Prints a message on stderr, "cloudfs: " first. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cli_status(const struct cli_opts *opts, int argc, char **argv);
int cli_stats(const struct cli_opts *opts, int argc, char **argv);
int cli_cache(const struct cli_opts *opts, int argc, char **argv);
int cli_share(const struct cli_opts *opts, const char *cmd, int argc,
	      char **argv);
/* history and restore (cmd) of one path. */
int cli_history(const struct cli_opts *opts, const char *cmd, int argc,
		char **argv);
/* login URL: checks a token read from stdin against URL, then writes the
 * token file and the configuration (cli/login.c). */
int cli_login(const struct cli_opts *opts, int argc, char **argv);

/* Reads every file at or below path whole (fetching what is not cached);
 * progress on stderr when it is a terminal.  *files and *bytes count what
 * was read.  false after printing what failed. */
bool cli_warm(const char *path, uint64_t *files, uint64_t *bytes);

#endif
