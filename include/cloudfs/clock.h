/* The two clocks cloudfs reads. */
#ifndef CLOUDFS_CLOCK_H
#define CLOUDFS_CLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

/* Wall-clock time in nanoseconds since the Unix epoch (mtimes). */
int64_t cfs_now_ns(void);

/* Monotonic time in milliseconds (deadlines and delays). */
uint64_t cfs_monotonic_ms(void);

/* Microseconds from from to to (two readings of one clock), 0 when to
 * is not later: a difference of the nanoseconds alone is negative
 * whenever a second boundary lies between them. */
uint64_t cfs_elapsed_us(const struct timespec *from, const struct timespec *to);

/* The wall-clock time ms milliseconds from now, as pthread_cond_timedwait
 * takes its deadline. */
struct timespec cfs_deadline_in_ms(unsigned long ms);

/* "@UNIX_SECONDS", or "YYYY-MM-DDTHH:MM[:SS]" in local time ("Z" after it:
 * UTC; a space for the "T" will do), as unix seconds in *at; false when
 * s is none of these. */
bool cfs_time_parse(const char *s, int64_t *at);

#endif
