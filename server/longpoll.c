/*
 * The long-poll registry (server/longpoll.h).
 *
 * Invariants, all under lp->lock:
 *  1. A waiter is registered (WAITING or PARKED) exactly when its watches
 *     are linked into the buckets and it sits in the deadline heap.
 *  2. Waking unregisters first, then resumes a PARKED waiter once; so
 *     resume() runs at most once per waiter and never for an unparked one.
 *  3. Waking never frees anything: the waiter belongs to its request.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "server/longpoll.h"

#define N_BUCKETS 4096

struct longpoll_watch {
	int64_t ns;
	struct longpoll_waiter *w;
	struct longpoll_watch *next, **pprev; /* bucket list */
};

struct longpoll {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* the deadline thread waits on it */
	pthread_t thread;
	bool stopping;
	struct longpoll_watch *buckets[N_BUCKETS];
	struct longpoll_waiter **heap; /* min-heap by deadline_ms */
	size_t heap_len, heap_cap;
};

uint64_t longpoll_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static size_t bucket_of(int64_t ns)
{
	return (size_t)((uint64_t)ns * 0x9e3779b97f4a7c15ull >> 52) % N_BUCKETS;
}

static void heap_swap(struct longpoll *lp, size_t a, size_t b)
{
	struct longpoll_waiter *t = lp->heap[a];

	lp->heap[a] = lp->heap[b];
	lp->heap[b] = t;
	lp->heap[a]->heap_index = a;
	lp->heap[b]->heap_index = b;
}

static void heap_up(struct longpoll *lp, size_t i)
{
	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (lp->heap[parent]->deadline_ms <= lp->heap[i]->deadline_ms)
			break;
		heap_swap(lp, i, parent);
		i = parent;
	}
}

static void heap_down(struct longpoll *lp, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, min = i;

		if (l < lp->heap_len &&
		    lp->heap[l]->deadline_ms < lp->heap[min]->deadline_ms)
			min = l;
		if (r < lp->heap_len &&
		    lp->heap[r]->deadline_ms < lp->heap[min]->deadline_ms)
			min = r;
		if (min == i)
			return;
		heap_swap(lp, i, min);
		i = min;
	}
}

static void heap_remove(struct longpoll *lp, struct longpoll_waiter *w)
{
	size_t i = w->heap_index;

	lp->heap_len--;
	if (i != lp->heap_len) {
		lp->heap[i] = lp->heap[lp->heap_len];
		lp->heap[i]->heap_index = i;
		heap_down(lp, i);
		heap_up(lp, i);
	}
}

/* Invariant 1, undone. */
static void unregister(struct longpoll *lp, struct longpoll_waiter *w)
{
	for (size_t i = 0; i < w->n_watches; i++) {
		struct longpoll_watch *x = &w->watches[i];

		*x->pprev = x->next;
		if (x->next)
			x->next->pprev = x->pprev;
	}
	heap_remove(lp, w);
	free(w->watches);
	w->watches = NULL;
	w->n_watches = 0;
}

static void wake(struct longpoll *lp, struct longpoll_waiter *w, bool timeout)
{
	bool parked = w->state == LP_PARKED;

	unregister(lp, w);
	w->state = LP_WOKEN;
	w->timed_out = timeout;
	if (parked)
		w->resume(w->arg);
}

static void *deadline_thread(void *arg)
{
	struct longpoll *lp = arg;

	pthread_mutex_lock(&lp->lock);
	while (!lp->stopping) {
		uint64_t now = longpoll_clock_ms();

		if (lp->heap_len == 0) {
			pthread_cond_wait(&lp->cond, &lp->lock);
		} else if (lp->heap[0]->deadline_ms <= now) {
			wake(lp, lp->heap[0], true);
		} else {
			uint64_t at = lp->heap[0]->deadline_ms;
			struct timespec ts = { .tv_sec = (time_t)(at / 1000),
					       .tv_nsec = (long)(at % 1000) *
							  1000000 };

			pthread_cond_timedwait(&lp->cond, &lp->lock, &ts);
		}
	}
	pthread_mutex_unlock(&lp->lock);
	return NULL;
}

struct longpoll *longpoll_new(void)
{
	struct longpoll *lp = calloc(1, sizeof(*lp));
	pthread_condattr_t attr;

	if (!lp)
		return NULL;
	pthread_mutex_init(&lp->lock, NULL);
	/* Deadlines are monotonic: a clock step must not wake everyone. */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&lp->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&lp->thread, NULL, deadline_thread, lp)) {
		pthread_cond_destroy(&lp->cond);
		pthread_mutex_destroy(&lp->lock);
		free(lp);
		return NULL;
	}
	return lp;
}

void longpoll_shutdown(struct longpoll *lp)
{
	pthread_mutex_lock(&lp->lock);
	lp->stopping = true;
	while (lp->heap_len) {
		lp->heap[0]->stopping = true;
		wake(lp, lp->heap[0], true);
	}
	pthread_cond_signal(&lp->cond);
	pthread_mutex_unlock(&lp->lock);
}

void longpoll_free(struct longpoll *lp)
{
	if (!lp)
		return;
	longpoll_shutdown(lp);
	pthread_join(lp->thread, NULL);
	pthread_cond_destroy(&lp->cond);
	pthread_mutex_destroy(&lp->lock);
	free(lp->heap);
	free(lp);
}

int longpoll_add(struct longpoll *lp, struct longpoll_waiter *w,
		 const int64_t *ns, size_t n, uint64_t deadline_ms)
{
	struct longpoll_watch *watches = calloc(n ? n : 1, sizeof(*watches));
	int rc = 0;

	if (!watches)
		return -ENOMEM;
	pthread_mutex_lock(&lp->lock);
	if (lp->stopping) {
		rc = -ESHUTDOWN;
		goto out;
	}
	if (lp->heap_len == lp->heap_cap) {
		size_t cap = lp->heap_cap ? 2 * lp->heap_cap : 64;
		void *p = realloc(lp->heap, cap * sizeof(lp->heap[0]));

		if (!p) {
			rc = -ENOMEM;
			goto out;
		}
		lp->heap = p;
		lp->heap_cap = cap;
	}
	*w = (struct longpoll_waiter){
		.state = LP_WAITING,
		.deadline_ms = deadline_ms,
		.heap_index = lp->heap_len,
		.watches = watches,
		.n_watches = n,
	};
	for (size_t i = 0; i < n; i++) {
		struct longpoll_watch **head = &lp->buckets[bucket_of(ns[i])];

		watches[i] = (struct longpoll_watch){
			.ns = ns[i], .w = w, .next = *head, .pprev = head
		};
		if (*head)
			(*head)->pprev = &watches[i].next;
		*head = &watches[i];
	}
	watches = NULL;
	lp->heap[lp->heap_len++] = w;
	heap_up(lp, w->heap_index);
	if (w->heap_index == 0)
		pthread_cond_signal(&lp->cond);
out:
	pthread_mutex_unlock(&lp->lock);
	free(watches);
	return rc;
}

bool longpoll_park(struct longpoll *lp, struct longpoll_waiter *w,
		   void (*suspend)(void *arg), void (*resume)(void *arg),
		   void *arg)
{
	bool parked = false;

	pthread_mutex_lock(&lp->lock);
	if (w->state == LP_WAITING) {
		suspend(arg);
		w->resume = resume;
		w->arg = arg;
		w->state = LP_PARKED;
		parked = true;
	}
	pthread_mutex_unlock(&lp->lock);
	return parked;
}

void longpoll_cancel(struct longpoll *lp, struct longpoll_waiter *w)
{
	pthread_mutex_lock(&lp->lock);
	if (w->state == LP_WAITING || w->state == LP_PARKED) {
		unregister(lp, w);
		w->state = LP_WOKEN;
	}
	pthread_mutex_unlock(&lp->lock);
}

void longpoll_expire(struct longpoll *lp, struct longpoll_waiter *w)
{
	pthread_mutex_lock(&lp->lock);
	if (w->state == LP_WAITING || w->state == LP_PARKED)
		wake(lp, w, true);
	pthread_mutex_unlock(&lp->lock);
}

void longpoll_notify_all(struct longpoll *lp)
{
	pthread_mutex_lock(&lp->lock);
	while (lp->heap_len)
		wake(lp, lp->heap[0], false);
	pthread_mutex_unlock(&lp->lock);
}

void longpoll_notify(struct longpoll *lp, int64_t ns)
{
	struct longpoll_waiter *woken = NULL;

	pthread_mutex_lock(&lp->lock);
	/*
	 * Collect first, wake after: waking unlinks all of a waiter's
	 * watches, which may include the next one in this very bucket.
	 */
	for (struct longpoll_watch *x = lp->buckets[bucket_of(ns)]; x;
	     x = x->next) {
		if (x->ns != ns || x->w->wake_next || woken == x->w)
			continue;
		x->w->wake_next = woken ? woken : x->w;
		woken = x->w;
	}
	while (woken) {
		struct longpoll_waiter *w = woken;

		woken = w->wake_next == w ? NULL : w->wake_next;
		w->wake_next = NULL;
		wake(lp, w, false);
	}
	pthread_mutex_unlock(&lp->lock);
}
