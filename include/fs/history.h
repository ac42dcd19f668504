/*
 * The control socket's history and restore commands (cloudfs(1)), answered
 * from the server's journal (cloudfs-protocol(7): history, list as_of):
 *
 *	{"cmd": "history", "ino": I [, "name": N]}
 *	{"cmd": "restore", "ino": I [, "name": N] [, "jid": J | "at": T]}
 *
 * I is the entry, or the folder where a name N no longer there was.
 */
#ifndef FS_HISTORY_H
#define FS_HISTORY_H

#include <jansson.h>

struct fs;

/* Answer request req of history and of restore (the control socket's
 * table, fs/control.c; cmd is that name). */
json_t *history_list_answer(struct fs *fs, const char *cmd, json_t *req);
json_t *history_restore_answer(struct fs *fs, const char *cmd, json_t *req);

#endif
