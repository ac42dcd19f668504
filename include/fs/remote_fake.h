/*
 * An in-process fake server behind the remote seam (fs/remote.h), for
 * deterministic tests of fs/ and cache/ code: namespaces with journals
 * (JIDs strictly increasing per namespace), commits with need_blocks,
 * base-JID conflicts and replayed answers by (client, seq), listings
 * from a cursor, long polls that wake on a commit, and blocks by SHA-256
 * that a user may download only if a file in a namespace they can read
 * lists it or they uploaded it themselves (the Dropship rule; an unknown
 * block and a forbidden one get the same answer); pending block lists
 * of announcing commits, whose blocks land as their committer uploads
 * them and wake long polls that ask for them (they never expire).
 *
 * Faults are drawn per call from a seeded generator, or forced for the
 * next call: an error answer (nothing applied), an outage (nothing
 * applied, unreachable), and a dropped answer (applied, then
 * unreachable).  Delays, from a generator of their own, hold a call
 * before it takes the server's lock, so that concurrent calls are
 * answered in another order than they were made.
 *
 * Sharing as the server shares (server/meta_sql_share.c): a folder of
 * the caller's root namespace becomes a namespace of its own holding the
 * subtree with its node ids at new JIDs, the folder a MOUNT of it; the
 * old namespace journals the subtree deleted, its nodes keeping their
 * JIDs.  Invitations mount the folder in the invitee's root (users are
 * named by fake_user_name()); leaving and removal delete that mount.
 * History answers every row that was at a path, newest first (with no
 * "before": the fake restores no folders).
 */
#ifndef FS_REMOTE_FAKE_H
#define FS_REMOTE_FAKE_H

#include "fs/remote.h"

struct fake_server;

enum fake_fault {
	FAKE_OK,
	FAKE_ERROR,  /* answered 503 unavailable; nothing applied */
	FAKE_OUTAGE, /* unreachable; nothing applied */
	FAKE_DROP,   /* applied, then the answer is lost: unreachable */
};

struct fake_server *fake_server_new(void);
void fake_server_free(struct fake_server *s);

/* A new namespace (its head 0) readable by user (0 to 63). */
int64_t fake_namespace(struct fake_server *s, unsigned user);
/* Lets user read namespace ns too. */
void fake_add_member(struct fake_server *s, int64_t ns, unsigned user);

/* Faults: each call draws one with probability percent/100 from a
 * generator seeded with seed (0 percent: none). */
void fake_faults(struct fake_server *s, unsigned percent, unsigned seed);
/* Delays: percent/100 of calls wait 1 to max_ms ms first, drawn from a
 * generator seeded with seed (0 percent: none). */
void fake_delays(struct fake_server *s, unsigned percent, unsigned max_ms,
		 unsigned seed);
/* The name of user (0 to 63) for the sharing verbs: "userN". */
void fake_user_name(unsigned user, char name[16]);
/* The next call gets fault f, whatever the draw; or the next commit. */
void fake_fault_next(struct fake_server *s, enum fake_fault f);
void fake_fault_commit(struct fake_server *s, enum fake_fault f);

/* Batch uploads answered as a server older than them answers them
 * (CFS_ERR_NOT_FOUND, nothing stored), or served again. */
void fake_no_batch(struct fake_server *s, bool no_batch);
/* Block uploads so far: requests in all, and the batches among them. */
unsigned fake_uploads(struct fake_server *s, unsigned *batches);

/* A remote of s as user: its calls are that user's. */
struct remote *fake_remote_new(struct fake_server *s, unsigned user);

/* The journal of ns: its head, and whether JID jid is a row of node. */
int64_t fake_head(struct fake_server *s, int64_t ns);
bool fake_journal_has(struct fake_server *s, int64_t ns, int64_t jid,
		      int64_t node);

/*
 * What is at path of ns now (kind, and for a file its size), or
 * CFS_KIND_DELETED when nothing is.  Paths as in commits ("a/b").
 */
enum cfs_kind fake_lookup(struct fake_server *s, int64_t ns, const char *path,
			  uint64_t *size);

/* Calls fn for each live entry of ns with its path, parents first, and
 * of the shared folders it mounts, below their MOUNT entries. */
void fake_walk(struct fake_server *s, int64_t ns,
	       void (*fn)(void *arg, const char *path, enum cfs_kind kind,
			  uint64_t size),
	       void *arg);

/* Returns once n long polls wait for a commit: they found nothing new
 * under the lock a commit takes, so the next commit wakes them. */
void fake_wait_parked(struct fake_server *s, unsigned n);

/* Commits one operation of another device (no client, no seq). */
struct remote_result fake_commit_one(struct fake_server *s, int64_t ns,
				     const struct queued_op *op);

#endif
