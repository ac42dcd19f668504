/*
 * Protocol constants shared by cloudfsd and its clients: the default
 * address, the version, every request limit, and the entry kinds of the
 * journal.  man/cloudfs-protocol.7 documents each of them.
 */
#ifndef CLOUDFS_PROTO_H
#define CLOUDFS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFS_PROTOCOL_VERSION 1
#define CFS_DEFAULT_HOST     "127.0.0.1"
#define CFS_DEFAULT_PORT     8470

/* Request limits; the server answers 413 (too_large) beyond them. */
#define CFS_MAX_JSON_BODY	(1u * 1024 * 1024) /* every other endpoint */
#define CFS_MAX_COMMIT_BODY	(8u * 1024 * 1024) /* block lists */
#define CFS_MAX_LONGPOLL_BODY	(64u * 1024)
#define CFS_MAX_BATCH_OPS	1000
#define CFS_MAX_NEED_BLOCKS	10000
#define CFS_MAX_FILE_SIZE	(256ull * 1024 * 1024 * 1024)
#define CFS_MAX_SYMLINK_TARGET	4096
#define CFS_LIST_DEFAULT_LIMIT	1000
#define CFS_LIST_MAX_LIMIT	5000
/* A list page stops before this many bytes (about; at least one entry),
 * far below the 64 MiB a client takes in one answer. */
#define CFS_LIST_MAX_PAGE_BYTES (8u * 1024 * 1024)
#define CFS_LONGPOLL_DEFAULT_S	60
#define CFS_LONGPOLL_MAX_S	300
#define CFS_LONGPOLL_MAX_NS	1000
#define CFS_PENDING_MAX_BLOCKS	1024 /* landed blocks in one long poll */

/* POST /block/batch: at most this many blocks, a block's worth of bytes in
 * all (so a batch costs the server what one PUT /block/ID does), each
 * after a header line "ID SIZE\n" of at most CFS_BATCH_HEADER_MAX bytes. */
#define CFS_MAX_BATCH_BLOCKS 256
#define CFS_BATCH_HEADER_MAX (64 + 1 + 7 + 1)
#define CFS_MAX_BATCH_BODY \
	(CFS_BLOCK_SIZE + CFS_MAX_BATCH_BLOCKS * CFS_BATCH_HEADER_MAX)

/* Only permission bits travel; set-id and sticky bits are dropped. */
#define CFS_MODE_MASK 0777

/* What a journal row says a node is.  The numbers are stored on disk. */
enum cfs_kind {
	CFS_KIND_DELETED = 0,
	CFS_KIND_FILE = 1,
	CFS_KIND_DIR = 2,
	CFS_KIND_SYMLINK = 3,
	CFS_KIND_MOUNT = 4, /* a shared folder's namespace mounted here */
	/* Special files: the namespace keeps them as entries; opening one
	 * is the local kernel's business.  A device's target names it. */
	CFS_KIND_FIFO = 5,
	CFS_KIND_SOCKET = 6,
	CFS_KIND_CHARDEV = 7,
	CFS_KIND_BLOCKDEV = 8,
	/* A further name of a file, symlink or special file of the same
	 * namespace (a hard link): the entry's "of" names that node, which
	 * holds the content and the attributes of every name. */
	CFS_KIND_LINK = 9,
};

/* A FIFO, socket or device. */
bool cfs_kind_is_special(enum cfs_kind kind);

/* A kind whose entries carry a target: symlinks (a path) and devices
 * ("MAJOR:MINOR", decimal). */
bool cfs_kind_has_target(enum cfs_kind kind);

/* Wire name of a kind ("file"); "?" for a value outside the enum. */
const char *cfs_kind_name(enum cfs_kind kind);

/* Kind for a wire name; false when the name is unknown. */
bool cfs_kind_from_name(const char *name, enum cfs_kind *kind);

/*
 * A device's target: "MAJOR:MINOR", each in decimal digits below 2^32.
 * The two numbers travel apart because Linux and macOS pack them into
 * dev_t differently.  Parse: true when s is one.
 */
#define CFS_DEVICE_TARGET_MAX sizeof("4294967295:4294967295")
bool cfs_device_parse(const char *s, uint32_t *major, uint32_t *minor);
void cfs_device_format(char out[CFS_DEVICE_TARGET_MAX], uint32_t major,
		       uint32_t minor);

/*
 * What bodies take on the wire, at most, for the size caps: a block id in
 * a JSON array (64 hex digits, quotes, a comma), and a string of JSON
 * (escapes make a byte up to six; NULL takes nothing).  The server stops
 * list pages by them, the mount splits its commit batches.
 */
#define CFS_WIRE_BLOCK_ID_BYTES 67
uint64_t cfs_wire_string_bytes(const char *s);

#endif
