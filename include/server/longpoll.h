/*
 * The long-poll registry: requests that wait for any of several namespaces
 * to move past their cursors.  A waiting request holds no thread: the HTTP
 * layer suspends its connection and this registry resumes it when a commit
 * touches a watched namespace, when its deadline passes, or at shutdown.
 *
 * A waiter goes IDLE -> WAITING (longpoll_add) -> PARKED (longpoll_park,
 * connection suspended) -> WOKEN, or from WAITING straight to WOKEN when
 * the wake-up comes before it parks (then it is never suspended).  resume()
 * is called exactly once for a parked waiter, under the registry's lock, so
 * a connection is never resumed before it was suspended.
 *
 * Lock order: the registry's lock is taken after none of ours and held only
 * briefly; resume() and suspend() must not call back into the registry.
 */
#ifndef SERVER_LONGPOLL_H
#define SERVER_LONGPOLL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct longpoll;
struct longpoll_watch;

struct longpoll_waiter {
	/* All fields are the registry's, protected by its lock. */
	enum { LP_IDLE, LP_WAITING, LP_PARKED, LP_WOKEN } state;
	bool timed_out; /* woken by its deadline */
	bool stopping;	/* woken because the registry is stopping */
	uint64_t deadline_ms;
	size_t heap_index;
	struct longpoll_watch *watches;
	size_t n_watches;
	void (*resume)(void *arg);
	void *arg;
	struct longpoll_waiter *wake_next;
};

/* Starts the registry and its deadline thread; NULL on failure. */
struct longpoll *longpoll_new(void);

/* Wakes every waiter, stops the thread and frees the registry. */
void longpoll_free(struct longpoll *lp);

/* The registry's clock: CLOCK_MONOTONIC in milliseconds. */
uint64_t longpoll_clock_ms(void);

/*
 * Registers w (IDLE or WOKEN) to wait for any of n namespaces until
 * deadline_ms (longpoll_clock_ms).  Returns 0, -ENOMEM, or -ESHUTDOWN when
 * the registry is stopping.
 */
int longpoll_add(struct longpoll *lp, struct longpoll_waiter *w,
		 const int64_t *ns, size_t n, uint64_t deadline_ms);

/*
 * Parks a WAITING waiter: calls suspend(arg) under the lock and returns
 * true, and the wake-up will call resume(arg); returns false (and calls
 * neither) when w was woken already.
 */
bool longpoll_park(struct longpoll *lp, struct longpoll_waiter *w,
		   void (*suspend)(void *arg), void (*resume)(void *arg),
		   void *arg);

/* Removes w if it is still registered; safe in any state. */
void longpoll_cancel(struct longpoll *lp, struct longpoll_waiter *w);

/* Wakes w now as if its deadline had passed, if it is still registered
 * (its client went away: the answer frees the connection). */
void longpoll_expire(struct longpoll *lp, struct longpoll_waiter *w);

/* Wakes every waiter that watches ns. */
void longpoll_notify(struct longpoll *lp, int64_t ns);

/* Wakes every waiter to read the heads again (the store may have missed
 * commits it would have notified). */
void longpoll_notify_all(struct longpoll *lp);

/* Wakes all waiters and refuses new ones (server shutdown). */
void longpoll_shutdown(struct longpoll *lp);

#endif
