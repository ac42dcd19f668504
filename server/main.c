/* cloudfsd: the cloudfs server.  Dispatches to the commands of cmd.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloudfs/log.h"
#include "config.h"
#include "server/cmd.h"

static const char usage[] =
	"usage: cloudfsd COMMAND [OPTIONS]\n"
	"\n"
	"The cloudfs server: metadata (users, namespaces, the journal) and\n"
	"content-addressed blocks, kept under one data directory, or the\n"
	"metadata in PostgreSQL, shared by many servers (--meta URL), and the\n"
	"blocks in an S3 bucket (--blocks s3://BUCKET/PREFIX; see serve --help).\n"
	"\n"
	"commands:\n"
	"  serve --data DIR [--meta URL] [--listen HOST:PORT] [--threads N]\n"
	"        [--retention DURATION] [--gc-every DURATION]\n"
	"        [--tls-cert FILE --tls-key FILE] [--pidfile FILE]\n"
	"        [--blocks dir:DIR|s3://BUCKET[/PREFIX] ...]\n"
	"                           serve in the foreground (default listen\n"
	"                           address 127.0.0.1:8470)\n"
	"  stop --data DIR [--timeout SECONDS]\n"
	"                           stop the server of DIR, wait for its exit\n"
	"  gc --data DIR [--meta URL] [--retention DURATION] [--blocks ...]\n"
	"                           collect garbage by hand, with a report\n"
	"  useradd (--data DIR | --meta URL) NAME\n"
	"                           create a user; print a new token\n"
	"  token (--data DIR | --meta URL) NAME\n"
	"                           print another token for a user\n"
	"  revoke (--data DIR | --meta URL) TOKEN\n"
	"                           revoke a token\n"
	"  --meta URL: postgresql://... (libpq URI; password from PGPASSWORD\n"
	"  or ~/.pgpass) or sqlite:DIR (the embedded store in DIR)\n"
	"\n"
	"options:\n"
	"  -h, --help               show this help (or a command's)\n"
	"  -V, --version            show the version\n"
	"\n"
	"exit status: 0 success, 1 failure, 2 wrong command line.\n"
	"See cloudfsd(8) and cloudfs-protocol(7).\n";

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "serve", cmd_serve }, { "useradd", cmd_useradd },
	{ "token", cmd_token }, { "revoke", cmd_revoke },
	{ "gc", cmd_gc },	{ "stop", cmd_stop },
};

int main(int argc, char **argv)
{
	cfs_log_init("cloudfsd", CFS_LOG_INFO);
	if (argc < 2) {
		fprintf(stderr,
			"cloudfsd: a command is needed ('cloudfsd --help' lists them)\n");
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		fputs(usage, stdout);
		return 0;
	}
	if (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0) {
		printf("cloudfsd %s\n", CLOUDFS_VERSION);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr,
		"cloudfsd: unknown command '%s' ('cloudfsd --help' lists them)\n",
		argv[1]);
	return EXIT_USAGE;
}
