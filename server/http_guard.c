/*
 * Connection deadlines, body budgets and long-poll caps (server/http_guard.h).
 *
 * Invariants, all under g->lock:
 *  1. A connection is in g->conns from http_guard_open() to
 *     http_guard_close(); libmicrohttpd closes its socket only after
 *     telling us, so a socket in the list is still the connection's and
 *     shutdown(2) on it can hit nothing else.
 *  2. A user's record exists while it holds body bytes or parked polls.
 *  3. g->body_used is the sum of the users' body_used.
 */
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "cloudfs/log.h"
#include "cloudfs/platform.h"
#include "server/http_guard.h"

#define TICK_MS		 100
#define PRESSURE_IDLE_MS 1000
#define BODY_RATE	 (64u * 1024) /* bytes a second a body must keep up */
#define LOG_EVERY_MS	 10000
#define USER_BUCKETS	 64
#define PARSE_TURNS	 4 /* large JSON parses at once, one a user */

enum phase { IDLE, BODY, BUSY, PARKED };

struct http_guard_conn {
	int fd;
	enum phase phase;
	uint64_t deadline_ms; /* IDLE: since; BODY: deadline */
	bool cut;	      /* shut down; waiting for the close */
	void *parked;	      /* PARKED: gone()'s argument, until told */
	struct http_guard_conn *prev, *next;
};

struct user_use {
	int64_t user;
	uint64_t body_used;
	unsigned polls;
	unsigned parses;
	struct user_use *next;
};

struct http_guard {
	struct http_limits lim;
	void (*gone)(void *arg);
	pthread_mutex_t lock;
	pthread_cond_t cond; /* the thread's tick */
	pthread_t thread;
	bool stopping;
	struct http_guard_conn *conns;
	unsigned n_conns;
	uint64_t body_used;
	struct user_use *users[USER_BUCKETS];
	unsigned parses;
	/* Cuts since the last log line, so an attack logs a line a while. */
	unsigned cut_idle, cut_body, cut_parked;
	uint64_t logged_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void cut(struct http_guard_conn *c, unsigned *count)
{
	shutdown(c->fd, SHUT_RDWR);
	c->cut = true;
	(*count)++;
}

static void log_cuts(struct http_guard *g, uint64_t now)
{
	if (now - g->logged_ms < LOG_EVERY_MS ||
	    !(g->cut_idle | g->cut_body | g->cut_parked))
		return;
	cfs_log_warn("cut connections in the last %llu s: %u sent no request "
		     "in time, %u sent their body too slowly, %u long polls "
		     "whose client hung up (%u of %u connections open)",
		     (unsigned long long)(now - g->logged_ms) / 1000,
		     g->cut_idle, g->cut_body, g->cut_parked, g->n_conns,
		     g->lim.max_connections);
	g->cut_idle = g->cut_body = g->cut_parked = 0;
	g->logged_ms = now;
}

/* Hands the parked connections whose client hung up to gone(). */
static void find_gone(struct http_guard *g)
{
	struct pollfd *fds;
	struct http_guard_conn **who;
	size_t n = 0;

	for (struct http_guard_conn *c = g->conns; c; c = c->next)
		n += c->phase == PARKED && c->parked;
	if (!n)
		return;
	fds = calloc(n, sizeof(*fds));
	who = calloc(n, sizeof(*who));
	n = 0;
	for (struct http_guard_conn *c = g->conns; fds && who && c; c = c->next)
		if (c->phase == PARKED && c->parked) {
			fds[n] = (struct pollfd){
				.fd = c->fd, .events = platform_poll_peer_closed
			};
			who[n++] = c;
		}
	if (n && poll(fds, n, 0) > 0)
		for (size_t i = 0; i < n; i++)
			if (fds[i].revents &
			    (platform_poll_peer_closed | POLLHUP | POLLERR)) {
				void *arg = who[i]->parked;

				/* libmicrohttpd leaves a resumed connection
				 * whose client hung up hanging, unless its
				 * socket fails: cut it, then wake it. */
				who[i]->parked = NULL;
				cut(who[i], &g->cut_parked);
				g->gone(arg);
			}
	free(fds);
	free(who);
}

static void sweep(struct http_guard *g, uint64_t now)
{
	bool pressure = (uint64_t)g->n_conns * 4 >=
			(uint64_t)g->lim.max_connections * 3;
	uint64_t idle_ms = pressure ? PRESSURE_IDLE_MS
				    : (uint64_t)g->lim.header_timeout_s * 1000;

	for (struct http_guard_conn *c = g->conns; c; c = c->next) {
		if (c->cut)
			continue;
		if (c->phase == IDLE && now - c->deadline_ms >= idle_ms)
			cut(c, &g->cut_idle);
		else if (c->phase == BODY && now >= c->deadline_ms)
			cut(c, &g->cut_body);
	}
	find_gone(g);
	log_cuts(g, now);
}

static void *guard_thread(void *arg)
{
	struct http_guard *g = arg;

	pthread_mutex_lock(&g->lock);
	while (!g->stopping) {
		uint64_t at = now_ms() + TICK_MS;
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!g->stopping && now_ms() < at)
			if (pthread_cond_timedwait(&g->cond, &g->lock, &ts))
				break;
		if (!g->stopping)
			sweep(g, now_ms());
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

struct http_guard *http_guard_new(const struct http_limits *lim,
				  void (*gone)(void *arg))
{
	struct http_guard *g = calloc(1, sizeof(*g));

	if (!g)
		return NULL;
	g->lim = *lim;
	g->gone = gone;
	g->logged_ms = now_ms();
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
	if (pthread_create(&g->thread, NULL, guard_thread, g)) {
		pthread_cond_destroy(&g->cond);
		pthread_mutex_destroy(&g->lock);
		free(g);
		return NULL;
	}
	return g;
}

void http_guard_free(struct http_guard *g)
{
	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->stopping = true;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
	pthread_join(g->thread, NULL);
	for (size_t i = 0; i < USER_BUCKETS; i++)
		while (g->users[i]) {
			struct user_use *u = g->users[i];

			g->users[i] = u->next;
			free(u);
		}
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

struct http_guard_conn *http_guard_open(struct http_guard *g, int fd)
{
	struct http_guard_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->phase = IDLE;
	c->deadline_ms = now_ms();
	pthread_mutex_lock(&g->lock);
	c->next = g->conns;
	if (g->conns)
		g->conns->prev = c;
	g->conns = c;
	g->n_conns++;
	pthread_mutex_unlock(&g->lock);
	return c;
}

void http_guard_close(struct http_guard *g, struct http_guard_conn *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&g->lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		g->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	g->n_conns--;
	pthread_mutex_unlock(&g->lock);
	free(c);
}

static void set_phase(struct http_guard *g, struct http_guard_conn *c,
		      enum phase phase, uint64_t deadline_ms, void *parked)
{
	if (!c)
		return;
	pthread_mutex_lock(&g->lock);
	c->phase = phase;
	c->deadline_ms = deadline_ms;
	c->parked = parked;
	pthread_mutex_unlock(&g->lock);
}

void http_guard_request(struct http_guard *g, struct http_guard_conn *c,
			uint64_t body)
{
	uint64_t s = g->lim.body_timeout_s + body / BODY_RATE;

	if (body)
		set_phase(g, c, BODY, now_ms() + s * 1000, NULL);
	else
		set_phase(g, c, BUSY, 0, NULL);
}

void http_guard_busy(struct http_guard *g, struct http_guard_conn *c)
{
	set_phase(g, c, BUSY, 0, NULL);
}

void http_guard_parked(struct http_guard *g, struct http_guard_conn *c,
		       void *arg)
{
	set_phase(g, c, PARKED, 0, arg);
}

void http_guard_idle(struct http_guard *g, struct http_guard_conn *c)
{
	set_phase(g, c, IDLE, now_ms(), NULL);
}

/* The user's record, made if there is none; NULL when out of memory. */
static struct user_use *user_of(struct http_guard *g, int64_t user)
{
	struct user_use **slot = &g->users[(uint64_t)user % USER_BUCKETS];
	struct user_use *u;

	for (u = *slot; u; u = u->next)
		if (u->user == user)
			return u;
	u = calloc(1, sizeof(*u));
	if (u) {
		u->user = user;
		u->next = *slot;
		*slot = u;
	}
	return u;
}

/* Invariant 2: drops the record of a user who holds nothing. */
static void user_tidy(struct http_guard *g, struct user_use *u)
{
	struct user_use **p = &g->users[(uint64_t)u->user % USER_BUCKETS];

	if (u->body_used || u->polls || u->parses)
		return;
	while (*p != u)
		p = &(*p)->next;
	*p = u->next;
	free(u);
}

/* Locks the guard and finds or makes the user's record; NULL (unlocked)
 * with *err set when out of memory. */
static struct user_use *user_lock(struct http_guard *g, int64_t user,
				  struct cfs_error *err)
{
	struct user_use *u;

	pthread_mutex_lock(&g->lock);
	u = user_of(g, user);
	if (!u) {
		pthread_mutex_unlock(&g->lock);
		cfs_fail(err, CFS_ERR_INTERNAL, "out of memory");
	}
	return u;
}

/* Keeps invariant 2 and unlocks. */
static void user_unlock(struct http_guard *g, struct user_use *u)
{
	user_tidy(g, u);
	pthread_mutex_unlock(&g->lock);
}

enum cfs_err http_guard_reserve(struct http_guard *g, int64_t user,
				uint64_t bytes, struct cfs_error *err)
{
	struct user_use *u = user_lock(g, user, err);
	enum cfs_err rc = CFS_OK;

	if (!u)
		return err->code;
	if (u->body_used + bytes > g->lim.user_body_budget)
		rc = cfs_fail(err, CFS_ERR_UNAVAILABLE,
			      "this user is sending %llu bytes of request "
			      "bodies already (at most %llu at once); retry "
			      "when they are in",
			      (unsigned long long)u->body_used,
			      (unsigned long long)g->lim.user_body_budget);
	else if (g->body_used + bytes > g->lim.body_budget)
		rc = cfs_fail(err, CFS_ERR_UNAVAILABLE,
			      "the server is receiving %llu bytes of request "
			      "bodies already (at most %llu at once); retry "
			      "soon",
			      (unsigned long long)g->body_used,
			      (unsigned long long)g->lim.body_budget);
	if (rc == CFS_OK) {
		u->body_used += bytes;
		g->body_used += bytes;
	}
	user_unlock(g, u);
	return rc;
}

void http_guard_unreserve(struct http_guard *g, int64_t user, uint64_t bytes)
{
	struct user_use *u = user_lock(g, user, NULL);

	if (u) {
		u->body_used -= bytes;
		g->body_used -= bytes;
		user_unlock(g, u);
	}
}

enum cfs_err http_guard_park(struct http_guard *g, int64_t user,
			     struct cfs_error *err)
{
	struct user_use *u = user_lock(g, user, err);
	enum cfs_err rc = CFS_OK;

	if (!u)
		return err->code;
	if (u->polls >= g->lim.user_longpolls)
		rc = cfs_fail(err, CFS_ERR_UNAVAILABLE,
			      "this user has %u long polls waiting already "
			      "(at most %u)",
			      u->polls, g->lim.user_longpolls);
	else
		u->polls++;
	user_unlock(g, u);
	return rc;
}

void http_guard_unpark(struct http_guard *g, int64_t user)
{
	struct user_use *u = user_lock(g, user, NULL);

	if (u) {
		u->polls--;
		user_unlock(g, u);
	}
}

enum cfs_err http_guard_parse_begin(struct http_guard *g, int64_t user,
				    struct cfs_error *err)
{
	struct user_use *u = user_lock(g, user, err);
	enum cfs_err rc = CFS_OK;

	if (!u)
		return err->code;
	if (u->parses || g->parses >= PARSE_TURNS) {
		rc = cfs_fail(err, CFS_ERR_UNAVAILABLE,
			      "%s large JSON bodies are being read; retry "
			      "soon",
			      u->parses ? "this user's other" : "too many");
	} else {
		u->parses++;
		g->parses++;
	}
	user_unlock(g, u);
	return rc;
}

void http_guard_parse_end(struct http_guard *g, int64_t user)
{
	struct user_use *u = user_lock(g, user, NULL);

	if (u) {
		u->parses--;
		g->parses--;
		user_unlock(g, u);
	}
}
