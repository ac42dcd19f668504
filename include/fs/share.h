/*
 * Sharing, for the control socket (fs/control.h): the mount asks the
 * server with its own token, so the cloudfs command needs none.
 *
 *	share {ino, user}    turns folder ino of the root namespace into a
 *	                     shared folder if it is not one, and invites user
 *	unshare {ino, user}  the owner of shared folder ino removes user
 *	leave {ino}          leaves shared folder ino
 *	shares               every shared folder with its owner and members
 *
 * share first commits the files closed within their settling delay and
 * waits (up to the network timeout) for the changes queued under the
 * folder, so that it is shared with them.  That is a courtesy, not what
 * keeps them: a change queued under a folder that became shared (here,
 * elsewhere, or meanwhile) follows it into its namespace
 * (cache/mirror.c, invariant 10).
 */
#ifndef FS_SHARE_H
#define FS_SHARE_H

#include <jansson.h>

struct fs;

/* Answer request req of share, unshare or leave (cmd), and of shares
 * (the control socket's table, fs/control.c); {"error": MESSAGE} when it
 * failed. */
json_t *share_member_answer(struct fs *fs, const char *cmd, json_t *req);
json_t *share_list_answer(struct fs *fs, const char *cmd, json_t *req);

#endif
