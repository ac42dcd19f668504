/*
 * The configuration file: what lets `mount.cloudfs MOUNTPOINT` and an fstab
 * line without secrets work.  Two files, read in this order, a key in a
 * later one replacing the same key from an earlier one:
 *
 *   /etc/cloudfs/config                       system-wide
 *   $XDG_CONFIG_HOME/cloudfs/config           the user's (~/.config/...)
 *
 * The format is one "key = value" a line; blank lines and lines starting
 * with '#' are ignored; spaces around key and value are dropped.  The keys
 * are server, token_file, ca and options (mount options, as after -o).  A
 * leading "~/" in token_file and ca is $HOME.  An unknown key or a line
 * without '=' is an error naming the file and line: a typo ("sever =")
 * silently ignored would mount with the wrong settings.  A file that is
 * not there is no error.
 */
#ifndef CLOUDFS_CONFIG_H
#define CLOUDFS_CONFIG_H

#include <stddef.h>

#define CFS_CONFIG_SYSTEM "/etc/cloudfs/config"

/* Values read so far, each malloc'ed or NULL when no file set it. */
struct cfs_config {
	char *server, *token_file, *ca, *options;
	char *options_file; /* the file options came from, for errors */
};

/* The user's configuration directory, $XDG_CONFIG_HOME/cloudfs or
 * $HOME/.config/cloudfs, into dir.  -1 when neither variable is set (a
 * mount at boot) or dir is too small. */
int cfs_config_dir(char *dir, size_t dir_len);

/* Reads the file at path into cfg, replacing the keys it sets.  Returns 0
 * (also when there is no such file), or -1 with a message naming the file
 * and line in err. */
int cfs_config_read(struct cfs_config *cfg, const char *path, char *err,
		    size_t err_len);

/* Reads the system file, then the user's (see cfs_config_read). */
int cfs_config_load(struct cfs_config *cfg, char *err, size_t err_len);

/* Writes server and token_file into the file at path, keeping its other
 * lines, through a temporary file and a rename so that a reader never sees
 * half a file.  Returns 0, or -1 with a message in err. */
int cfs_config_save(const char *path, const char *server,
		    const char *token_file, char *err, size_t err_len);

void cfs_config_release(struct cfs_config *cfg);

#endif
