/*
 * The FUSE driver's state, shared by the kernel-facing handlers (fs/ops.c),
 * the sync thread (fs/sync.c) and the mount command (fs/main.c).
 */
#ifndef FS_FS_H
#define FS_FS_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "cache/cache.h"
#include "cache/mirror.h"
#include "fs/fetch.h"
#include "fs/keeper.h"
#include "fs/openfile.h"
#include "fs/remote.h"

struct fs_options {
	const char *url;
	const char *mountpoint;
	const char *token_file;
	const char *cache_dir; /* NULL: derived from the URL and token */
	const char *ca_file;
	const char *log_file;
	unsigned timeout_s; /* network: connect, stall, uncached read */
	unsigned readahead; /* blocks fetched ahead of a sequential reader */
	unsigned parallel;  /* block transfers at once */
	unsigned settle_ms; /* from a written file's last close to its commit */
	uint64_t cache_size; /* bytes of blocks kept at most (0: no limit) */
	uint64_t cache_min_free; /* bytes left free on its disk (0: none) */
	int64_t at; /* a point-in-time mount: unix seconds (0: live) */
	/* Streaming sync: announce our large uploads' pending lists, and
	 * prefetch the blocks of others' as they land (fs/sync.c). */
	bool streaming;
	bool foreground;
	bool debug;
	bool single_thread;
};

struct control;
struct fuse_session; /* the kernel layer's: fs/main.c, fs/ops.c */
struct sync;
struct sessions;
struct uploader;

struct fs {
	struct fs_options opt;
	struct remote *remote; /* NULL until prepared */
	struct cache *cache;
	struct keeper *keeper;
	struct fetcher *fetch;
	struct open_files *open;
	struct listed_dirs *listed; /* fs/invalidate.h */
	struct sessions *sessions;
	struct uploader *upload;
	struct sync *sync;
	struct control *control; /* NULL when there is no control socket */
	struct fuse_session *se; /* NULL until mounted */
	char client[CACHE_CLIENT_ID_SIZE]; /* the cache's, for commits */
	uid_t uid;			   /* the owner of every entry */
	gid_t gid;
	/* Held by the sync thread applying a listing, and by the uploader
	 * from a commit's request to its settling (across the network:
	 * no FUSE handler waits on it; the lock order is fs/locks.h's). */
	pthread_mutex_t apply_lock;
	/*
	 * Under apply_lock: some queued operations may have been applied by
	 * the server without this mount knowing: sent, with no answer
	 * recorded (lost, or the mount before this one ended first;
	 * cache/local.h, queue_sent()).  A listing would show their nodes as
	 * someone else's new entries, so none is applied until the uploader
	 * has their answers (false) and signals doubt_over.  Only those
	 * operations count: one that was answered and waits for a listing
	 * (its folder moved, or shared) must not hold the listing back.
	 */
	bool in_doubt;
	pthread_cond_t doubt_over;
	/*
	 * Ends the sync thread's long poll early (atomic; only that thread
	 * clears it): set when it stops, and by the uploader when the mirror
	 * follows a namespace no listing has come for yet, which the long
	 * poll, started before, does not watch (a folder that became shared
	 * while it had changes queued, cache/mirror.c invariant 10).
	 */
	bool relist;
};

/*
 * Lists every namespace the mirror follows up to the server's head (each
 * from its cursor, new ones from 0) and applies the pages; after mounting,
 * also tells the kernel what to drop.  Stops early when *stop turns true,
 * and before the mount when commits are in doubt (in_doubt).
 */
enum cfs_err sync_catch_up(struct fs *fs, struct remote_conn *conn,
			   const bool *stop, struct cfs_error *err);

/* Starts the sync thread: long polls, catches up, reconnects with backoff. */
struct sync *sync_start(struct fs *fs);
void sync_stop(struct sync *s);
/* Long polls answered, and rounds that failed (then backed off), since
 * the start. */
void sync_counts(struct sync *s, uint64_t *longpolls, uint64_t *failures);
/* Landed blocks of pending lists handed to the fetcher (streaming sync). */
uint64_t sync_streamed(struct sync *s);

#endif
