/*
 * The administrative commands: useradd, token and revoke.  They open the
 * data directory's store directly, which is safe while a server runs on it
 * (SQLite WAL), and print nothing but the token on stdout.
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
 * Parses "--data DIR OPERAND" (or --help).  Returns -1 when the command
 * should exit at once with *status.
 */
static int parse_args(int argc, char **argv, const char *usage,
		      const char **data_dir, const char **operand, int *status)
{
	static const struct option opts[] = {
		{ "data", required_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	*data_dir = NULL;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			*data_dir = optarg;
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
	if (!*data_dir || optind != argc - 1) {
		fprintf(stderr, "cloudfsd %s: %s\n%s", argv[0],
			!*data_dir ? "--data DIR is required"
				   : "expected exactly one operand",
			usage);
		*status = EXIT_USAGE;
		return -1;
	}
	*operand = argv[optind];
	return 0;
}

/* Opens the store; for commands other than useradd it must exist. */
static struct meta *open_store(const char *data_dir, bool create)
{
	struct cfs_error err;
	struct meta *m;
	struct stat st;

	if (!create && stat(data_dir, &st) != 0) {
		cfs_log_error(
			"no data directory '%s' (useradd or serve creates one)",
			data_dir);
		return NULL;
	}
	if (meta_sqlite_open(data_dir, NULL, NULL, &m, &err)) {
		cfs_log_error("%s", err.msg);
		return NULL;
	}
	return m;
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
	const char *data_dir, *name;
	struct meta_user user;
	struct cfs_error err;
	struct meta *m;
	int status;

	if (parse_args(argc, argv, usage, &data_dir, &name, &status))
		return status;
	m = open_store(data_dir, create);
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
		"usage: cloudfsd useradd --data DIR NAME\n"
		"Creates user NAME with an empty root namespace and prints a\n"
		"new bearer token (only the token, one line).\n",
		true);
}

int cmd_token(int argc, char **argv)
{
	return user_token(
		argc, argv,
		"usage: cloudfsd token --data DIR NAME\n"
		"Prints a new bearer token for user NAME; the old ones stay valid.\n",
		false);
}

int cmd_revoke(int argc, char **argv)
{
	static const char usage[] =
		"usage: cloudfsd revoke --data DIR TOKEN\n"
		"Revokes TOKEN: requests that carry it are refused (401) from now on.\n";
	const char *data_dir, *token;
	uint8_t hash[META_TOKEN_HASH_LEN];
	struct cfs_error err;
	struct meta *m;
	int status = 0;

	if (parse_args(argc, argv, usage, &data_dir, &token, &status))
		return status;
	m = open_store(data_dir, false);
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
