/*
 * The commands of cloudfsd.  Each parses its own arguments (argv[0] is the
 * command's name) and returns the process's exit status:
 *
 *	0  success
 *	1  the command failed (the message says what and why)
 *	2  the command line is wrong
 */
#ifndef SERVER_CMD_H
#define SERVER_CMD_H

#include <stdbool.h>

#include "server/meta.h"

#define EXIT_USAGE 2

int cmd_serve(int argc, char **argv);
int cmd_useradd(int argc, char **argv);
int cmd_token(int argc, char **argv);
int cmd_revoke(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_stop(int argc, char **argv);

/* One server per data directory, made if missing (the long polls of a
 * second one would never hear of the first one's commits): a descriptor
 * holding its lock, -2 when another process holds it, -1 on an error
 * (logged). */
int cmd_lock_data_dir(const char *dir);

/*
 * The metadata store a command works on (cmd_meta.c): the one --meta URL
 * names, postgresql://... (a libpq URI: the password from PGPASSWORD or
 * ~/.pgpass, never the command line) or sqlite:DIR (embedded, in DIR),
 * or else the embedded one in the data directory (--data DIR).
 */
struct cmd_meta {
	const char *url; /* --meta; NULL: none given */
	const char *dir; /* the embedded store's directory; NULL: PostgreSQL */
};

/* The option text of --meta for usage messages. */
#define CMD_META_USAGE                                                             \
	"  --meta URL          the metadata store: postgresql://... (libpq URI;\n" \
	"                      password from PGPASSWORD or ~/.pgpass) or\n"        \
	"                      sqlite:DIR (embedded; default: the data directory)\n"

/* Fills *out from --meta's url (NULL when not given) and --data's
 * data_dir (NULL when not given); false, with the problem printed and
 * *status set, when url is no store's. */
bool cmd_meta_resolve(const char *cmd, const char *url, const char *data_dir,
		      struct cmd_meta *out, int *status);

/* Opens the store (meta.h); NULL, with the reason logged, on failure. */
struct meta *cmd_meta_open(const struct cmd_meta *m, meta_notify_fn notify,
			   void *notify_arg);

#endif
