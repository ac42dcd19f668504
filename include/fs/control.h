/*
 * The mount's control socket, CACHE/control (a Unix socket in the private
 * cache directory, so only its user reaches it), through which the
 * cloudfs command asks a live mount what only it knows (the server's
 * heads, transfers under way) and has it do what must not race with it
 * (eviction, verification, gc, pins).
 *
 * One request per connection: a JSON object on one line, {"cmd": NAME,
 * ...}; one JSON object answers it, {"error": MESSAGE} when it failed.
 * The commands are in cloudfs(1)'s terms:
 *
 *	status {server}     the queue, open writes, uploads and block reads
 *	                    under way, hits and misses; unless server is
 *	                    false, namespaces with cursor and head
 *	stat                inspect_stat_json() (cache/inspect.h), with hits
 *	                    and misses
 *	ls {ino | path}     inspect_ls_json() of entry ino, or of path in the
 *	                    mount's tree
 *	evict {ino | path, keep}
 *	                    cache/upkeep.h; neither ino nor path: by least
 *	                    recent use
 *	verify, gc          cache/upkeep.h, with the blocks found bad
 *
 * While a mount is live, cloudfs asks it here rather than opening cache.db
 * itself: what it reads is then the mount's own view, and no connection of
 * another process can checkpoint or delete the mount's write-ahead log.
 *	pin {ino, pin}      pins (true) or unpins (false) entry ino
 *	share, unshare, leave, shares   fs/share.h
 */
#ifndef FS_CONTROL_H
#define FS_CONTROL_H

struct fs;
struct control;

/* Listens at CACHE/control; NULL (logged) when it cannot. */
struct control *control_start(struct fs *fs);

/* Stops listening and waits for the requests under way. */
void control_stop(struct control *c);

#endif
