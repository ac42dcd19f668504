/*
 * Command tables: a command line's commands, the control socket's
 * requests, the share verbs are dispatched from a table, not from a
 * chain of strcmp (DESIGN.md).  A table is an array of structs whose
 * first member is the command's name, a const char *; the other members
 * are the table's own (what to run, what it takes).
 */
#ifndef CLOUDFS_CMDTABLE_H
#define CLOUDFS_CMDTABLE_H

#include <stddef.h>

/* The entry of table (n entries of size bytes each) named name, or NULL
 * when none is (name NULL too). */
const void *cfs_cmdtable_find(const void *table, size_t n, size_t size,
			      const char *name);

/* cfs_cmdtable_find() on an array of known length. */
#define CFS_CMDTABLE_FIND(table, name)                                 \
	cfs_cmdtable_find((table), sizeof(table) / sizeof((table)[0]), \
			  sizeof((table)[0]), (name))

#endif
