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

#endif
