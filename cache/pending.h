/*
 * The bookkeeping of an entry with local changes, shared inside cache/ by
 * local.c (which makes changes) and queue.c (which settles their fate).
 * Every function runs inside the caller's transaction.
 *
 * Invariants, on top of the mirror's (cache/mirror.c):
 *  1. pending of an entry is the number of its queued operations, plus one
 *     while a write session is open on it.  pending > 0 exactly when the
 *     entry has a shadow row.
 *  2. An entry the server does not have has node -ino, and jid 0; its
 *     shadow says DELETED.  Its children name it by that node id until the
 *     server assigns one (queue_confirm).
 *  3. An entry removed locally stays, hidden (kind DELETED), until the
 *     server confirms the delete: a listing must not bring it back.
 *  4. jid of an entry with local changes is the server's version they are
 *     based on (the last one confirmed); a file's commit carries it as its
 *     base, so a newer version on the server is a conflict, never lost.
 *  5. Operations are sent in ord order; a batch never holds two of one
 *     entry, so every base is read after the previous answer.
 */
#ifndef CACHE_PENDING_H
#define CACHE_PENDING_H

#include "cache/local.h"

/* Adds delta to e's pending count; the first change keeps the server's
 * state as e's shadow (invariant 1). */
enum cfs_err pending_mark(struct cfs_sql *db, const struct mirror_entry *e,
			  int delta, struct cfs_error *err);

/* Puts op into the queue at position ord. */
enum cfs_err pending_enqueue(struct cfs_sql *db, const struct queued_op *op,
			     double ord, struct cfs_error *err);

/* Queues op on entry e, last, and marks e (op's ino and ns are set). */
enum cfs_err pending_queue(struct cfs_sql *db, const struct mirror_entry *e,
			   struct queued_op *op, struct cfs_error *err);

/* Queues the operation that carries e's whole state (file, folder,
 * symlink). */
enum cfs_err pending_queue_state(struct cfs_sql *db,
				 const struct mirror_entry *e,
				 struct cfs_error *err);

/* Queues the operation that carries e's whole state in place of a change
 * that e's count has already (a write session's, which ends, or the one a
 * new entry was inserted with): the count passes to the queued operation,
 * two statements fewer than counting it and dropping the other, and a
 * new entry's shadow stays "none" (invariant 2). */
enum cfs_err pending_pass_state(struct cfs_sql *db,
				const struct mirror_entry *e,
				struct cfs_error *err);

/* Inserts e, which the server does not have, with its node, jid and
 * shadow (invariant 2), and e->pending as its count (1: the change that
 * made it, a write session or a state the caller passes it to with
 * pending_pass_state()); sets e->ino and e->node. */
enum cfs_err pending_insert_new(struct cfs_sql *db, struct mirror_entry *e,
				struct cfs_error *err);

/* One change of ino is over: drops its count, and when it was the last,
 * shows the server's state again if that is newer than what it committed
 * or one of its changes was refused (invariants 1 and 4). */
enum cfs_err pending_done(struct cfs_sql *db, uint64_t ino,
			  struct mirror_changes *ch, struct cfs_error *err);

#endif
