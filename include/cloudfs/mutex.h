/*
 * For assert() that the caller holds a lock a function needs ("t's lock
 * held"): POSIX cannot tell who holds a mutex, but a mutex nobody holds
 * shows the caller does not, which is the mistake to catch.
 */
#ifndef CLOUDFS_MUTEX_H
#define CLOUDFS_MUTEX_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

/* Whether m is locked (by some thread); leaves it as it was. */
static inline bool cfs_mutex_locked(pthread_mutex_t *m)
{
	int rc = pthread_mutex_trylock(m);

	if (rc == 0)
		pthread_mutex_unlock(m);
	return rc == EBUSY;
}

#endif
