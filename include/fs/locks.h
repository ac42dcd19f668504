/*
 * The locks of mount.cloudfs, in one place: which exist, what each
 * protects, in which order they nest, and which may be held across a
 * network call.  Nothing to include: this header is the written
 * hierarchy (DESIGN.md, STYLE.md), kept next to the headers of the
 * modules it describes.  Update it with any lock you add, move or hold
 * longer; the fields' own comments say "under X" and point here.
 *
 * The rule: no network call is made under a lock that a FUSE handler
 * waits on.  A FUSE handler may wait for the network itself (a read of a
 * block not cached waits for its fetch, bounded by -o timeout=), but not
 * behind a lock some other request holds while it waits for the network.
 *
 * Order (take a lock only while holding locks above it; "leaf": take
 * nothing else while holding it):
 *
 *  1. fs->apply_lock (fs/fs.h), with fs->doubt_over.
 *     Protects: that no listing is applied between a commit and the
 *     settling of its answer; fs->in_doubt.
 *     Taken by: the sync thread applying one page of a listing
 *     (fs/sync.c), the uploader from a commit's request to its settling
 *     and to record refusals and retries (fs/batch.c, fs/upload_blocks.c),
 *     mount start-up.
 *     FUSE handlers: never, neither directly nor through any lock below.
 *     Network: yes, by design: remote_commit() (fs/batch.c,
 *     batch_commit) is made under it, bounded by the uploader's request
 *     bounds; the sync thread waits meanwhile, nothing else does.  No
 *     SQLite transaction is open across that call (doubt_mark()
 *     commits and syncs before it; the settling opens its connection
 *     after the answer).
 *     Nests inside: SQLite (4), the cache's locks (5).
 *
 *  2. sessions->lock (fs/session.c, the table of write sessions), then
 *     session->lock (one file being written).
 *     Protects: the table and each session's settling state; a
 *     session's size, times, base block list and dirty blocks.
 *     Taken by: FUSE handlers (stat of every regular file through
 *     ops_stat, open, release, read and write of a file being written,
 *     lseek, fallocate, copy_file_range, setattr), the settler thread.
 *     sessions->lock is held while waiting for a session->lock
 *     (session_stat, session_read, session_touch, session_ctime).
 *     Network: no: the base blocks a session needs are fetched before
 *     its lock is taken (see below).
 *     Nests inside session->lock: the fetcher (3: opening a cached
 *     block; a fetch only in the rare case below), SQLite (4, a
 *     settling session queues its commit), the cache (5).  A settling
 *     session hashes its dirty blocks under its lock: disk and CPU, not
 *     network, but a stat of that file waits for it, holding the
 *     table's lock.  session_open() holds the table's lock across a
 *     new session's start, a SQLite write (4): behind a long write of
 *     another thread (a large listing applied), every stat waits too.
 *
 *  2'. open_file->lock (fs/openfile.h, one handle), then
 *     open_files->lock (the table of handles), as openfile.h says.
 *     Protects: a handle's block list, size and readahead mark.
 *     Taken by: FUSE handlers (open, read, lseek, release), and
 *     fs_invalidate() in the sync and upload threads (the table's lock
 *     only).
 *     Network: no: a read drops the handle's lock before it waits for a
 *     fetch (fs/ops_file.c); prefetching only queues jobs.
 *     Nests inside: SQLite (4, the mirror re-read), the fetcher (3).
 *     Independent of 2: never held together with a session's locks.
 *
 *  3. fetcher->lock (fs/fetch.c), with its done and store_wake
 *     conditions.  Protects the jobs.  The transfers run outside it, in
 *     the transfer threads; readers wait on done with it released.
 *     Leaf: the storer thread makes cache files (5) outside it.
 *
 *  4. SQLite's write lock on cache.db, taken by the first write of a
 *     transaction and waited for by lib/sql.c's busy handler (up to
 *     10 s, under its leaf turn_lock); connections come from the
 *     cache's pool (cfs_sql_pool.lock, leaf).  FUSE handlers wait on
 *     it (every change to the tree is a transaction): no transaction
 *     may span a network call.  A connection held from the pool is not
 *     a lock (the pool opens another on demand).
 *
 *  5. The cache's locks (include/cache/cache.h): cache->upkeep (read
 *     side: a block being adopted, a session's commit; write side:
 *     eviction, gc and upkeep_measure, which do disk work and SQLite
 *     under it) and cache->touch_lock (leaf).
 *
 *  Leaves, each protecting its module's flags and counters, taken for
 *  a few instructions and never across I/O: uploader->lock
 *  (fs/upload.c; FUSE handlers take it in uploader_wake() and
 *  uploader_sends()), keeper->lock (fs/keeper.c; writers and fetches
 *  wait on its room condition, holding no other lock, while the keeper
 *  measures and evicts without it, from disk only; the fetcher gives
 *  room back under fetcher->lock), listed_dirs->lock
 *  (fs/invalidate.c), control->lock (fs/control.c), sync->lock
 *  (fs/sync.c).  The in-process fake server (fs/remote_fake.c) has
 *  locks of its own, reached only through remote_ops, as a real server
 *  would be: a caller may hold 1 there.
 *
 * Where a session needs a base block the cache lacks (a write, a
 * truncate or a read of a file being written, a commit that rebuilds a
 * grown or cut last block), fs/staging.c fetches it first, with no lock
 * held (staging_bases_fetch()), then takes session->lock and finds it cached.
 * Only a block evicted again in between is fetched under the lock, as
 * all were before: a stat of that file waits for the session's lock
 * while holding sessions->lock, and with it every stat, open and
 * release of the mount would wait for that fetch
 * (tests/integration/fs/test_offline.py, ..._holds_up_no_stat).
 */
#ifndef FS_LOCKS_H
#define FS_LOCKS_H
#endif
