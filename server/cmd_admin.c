/*
 * The administrative commands: useradd, token and revoke.  They open the
 * metadata store directly, which is safe while servers run on it (SQLite
 * WAL, or PostgreSQL), and print nothing but the token on stdout.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cloudfs/log.h"
#include "server/cmd.h"
#include "server/meta.h"
#include "server/token.h"

/*
 * Parses "--data DIR | --meta URL, OPERAND" (or --help).  Returns -1 when
 * the command should exit at once with *status.
 */
static int parse_args(int argc, char **argv, const char *usage,
		      struct cmd_meta *store, const char **operand, int *status)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "meta", required_argument, NULL, 'm' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *data_dir = NULL, *url = NULL;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "d:m:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			data_dir = optarg;
			break;
		case 'm':
			url = optarg;
			break;
		case 'h':
			fputs(usage, stdout);
			*status = 0;
			return -1;
		default:
			fputs(usage, stderr);
			*status = EXIT_USAGE;
			return -1;
		}
	}
	if ((!data_dir && !url) || optind != argc - 1) {
		fprintf(stderr, "cloudfsd %s: %s\n%s", argv[0],
			!data_dir && !url
				? "--data DIR or --meta URL is required"
				: "expected exactly one operand",
			usage);
		*status = EXIT_USAGE;
		return -1;
	}
	if (!cmd_meta_resolve(argv[0], url, data_dir, store, status))
		return -1;
	*operand = argv[optind];
	return 0;
}

/* Opens the store; for commands other than useradd an embedded one
 * must exist. */
static struct meta *open_store(const struct cmd_meta *store, bool create)
{
	struct stat st;

	if (!create && store->dir && stat(store->dir, &st) != 0) {
		cfs_log_error(
			"no data directory '%s' (useradd or serve creates one)",
			store->dir);
		return NULL;
	}
	return cmd_meta_open(store, NULL, NULL);
}

/* Issues a token for user and prints it. */
static int issue(struct meta *m, const struct meta_user *user)
{
	char token[TOKEN_HEX_LEN + 1];
	uint8_t hash[META_TOKEN_HASH_LEN];
	struct cfs_error err;

	if (token_generate(token)) {
		cfs_log_error("cannot generate a token: no random bytes");
		return 1;
	}
	token_hash(token, strlen(token), hash);
	if (m->ops->token_add(m, user->id, hash, &err)) {
		cfs_log_error("cannot store a token for '%s': %s", user->name,
			      err.msg);
		return 1;
	}
	printf("%s\n", token);
	return fflush(stdout) ? 1 : 0;
}

/* useradd and token: find (or create) the user, then issue a token. */
static int user_token(int argc, char **argv, const char *usage, bool create)
{
	struct cmd_meta store;
	const char *name;
	struct meta_user user;
	struct cfs_error err;
	struct meta *m;
	int status;

	if (parse_args(argc, argv, usage, &store, &name, &status))
		return status;
	m = open_store(&store, create);
	if (!m)
		return 1;
	if (create ? m->ops->user_add(m, name, &user, &err)
		   : m->ops->user_get(m, name, &user, &err)) {
		cfs_log_error("cannot %s: %s",
			      create ? "add user" : "issue a token", err.msg);
		status = 1;
	} else {
		status = issue(m, &user);
	}
	m->ops->close(m);
	return status;
}

int cmd_useradd(int argc, char **argv)
{
	return user_token(
		argc, argv,
		"usage: cloudfsd useradd (--data DIR | --meta URL) NAME\n"
		"Creates user NAME with an empty root namespace and prints a\n"
		"new bearer token (only the token, one line).\n" CMD_META_USAGE,
		true);
}

int cmd_token(int argc, char **argv)
{
	return user_token(
		argc, argv,
		"usage: cloudfsd token (--data DIR | --meta URL) NAME\n"
		"Prints a new bearer token for user NAME; the old ones stay valid.\n" CMD_META_USAGE,
		false);
}

int cmd_revoke(int argc, char **argv)
{
	static const char usage[] =
		"usage: cloudfsd revoke (--data DIR | --meta URL) TOKEN\n"
		"Revokes TOKEN: requests that carry it are refused (401) from now on.\n" CMD_META_USAGE;
	struct cmd_meta store;
	const char *token;
	uint8_t hash[META_TOKEN_HASH_LEN];
	struct cfs_error err;
	struct meta *m;
	int status = 0;

	if (parse_args(argc, argv, usage, &store, &token, &status))
		return status;
	m = open_store(&store, false);
	if (!m)
		return 1;
	token_hash(token, strlen(token), hash);
	if (m->ops->token_revoke(m, hash, &err)) {
		cfs_log_error("cannot revoke: %s", err.msg);
		status = 1;
	}
	m->ops->close(m);
	return status;
}
