/*
 * The counters behind GET /metrics (server/metrics.h).
 *
 * Every counter is a relaxed atomic in static storage, written from the
 * request threads with one atomic add and no lock: a scrape is rare and
 * may see a request half counted, a request is frequent and must not wait.
 * Requests are counted per route and per status (100-599), so a row is an
 * index, never a search; the rows are mostly zero and a scrape prints only
 * the others.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cloudfs/buf.h"
#include "cloudfs/clock.h"
#include "server/api.h"
#include "server/metrics.h"

#define STATUS_MIN    100
#define STATUS_MAX    599
#define N_STATUS      (STATUS_MAX - STATUS_MIN + 1)
/* The row of requests for paths no route serves. */
#define ROW_UNMATCHED ROUTES_MAX

/* The exposition text's cap: every route at a dozen statuses fits. */
#define TEXT_MAX (256u * 1024)

/* Block store durations, upper bounds in microseconds (le=, in seconds). */
static const uint64_t bucket_us[] = { 1000,   5000,   10000,   50000,
				      100000, 500000, 1000000, 5000000 };
#define N_BUCKETS (sizeof(bucket_us) / sizeof(bucket_us[0]))

static const char *const store_op_name[METRICS_STORE_OPS] = {
	[METRICS_STORE_WRITE] = "write",
	[METRICS_STORE_OPEN] = "open",
};

struct histogram {
	atomic_uint_fast64_t bucket[N_BUCKETS + 1]; /* the last is +Inf */
	atomic_uint_fast64_t sum_us;
};

static struct {
	atomic_uint_fast64_t requests[ROUTES_MAX + 1][N_STATUS];
	atomic_uint_fast64_t commits, commit_ops;
	atomic_uint_fast64_t commit_groups, grouped_commits;
	atomic_uint_fast64_t blocks, block_bytes;
	atomic_int_fast64_t longpolls, connections;
	struct histogram store[METRICS_STORE_OPS];
} m;

static void add(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *c)
{
	return atomic_load_explicit(c, memory_order_relaxed);
}

void metrics_request(const struct route *route, unsigned status)
{
	size_t row = route ? route_index(route) : ROW_UNMATCHED;

	if (status < STATUS_MIN || status > STATUS_MAX)
		return; /* never answered: the client went away first */
	add(&m.requests[row][status - STATUS_MIN], 1);
}

void metrics_commit(size_t committed)
{
	add(&m.commits, 1);
	add(&m.commit_ops, committed);
}

void metrics_commit_group(size_t commits)
{
	add(&m.commit_groups, 1);
	add(&m.grouped_commits, commits);
}

void metrics_block_uploaded(uint64_t size)
{
	add(&m.blocks, 1);
	add(&m.block_bytes, size);
}

void metrics_longpoll_held(int delta)
{
	atomic_fetch_add_explicit(&m.longpolls, delta, memory_order_relaxed);
}

void metrics_connection(int delta)
{
	atomic_fetch_add_explicit(&m.connections, delta, memory_order_relaxed);
}

void metrics_store_time(enum metrics_store_op op, const struct timespec *start)
{
	struct histogram *h = &m.store[op];
	struct timespec end;
	uint64_t us;
	size_t i;

	clock_gettime(CLOCK_MONOTONIC, &end);
	us = cfs_elapsed_us(start, &end);
	for (i = 0; i < N_BUCKETS && us > bucket_us[i]; i++)
		;
	add(&h->bucket[i], 1);
	add(&h->sum_us, us);
}

/* Appends one formatted line; a line never reaches 512 bytes. */
__attribute__((format(printf, 2, 3))) static int line(struct cfs_buf *b,
						      const char *fmt, ...)
{
	char s[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(s, sizeof(s), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(s))
		return -EOVERFLOW;
	return cfs_buf_append(b, s, (size_t)n);
}

static int counter(struct cfs_buf *b, const char *name, const char *help,
		   uint64_t v)
{
	return line(b, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help,
		    name, name, (unsigned long long)v);
}

static int gauge(struct cfs_buf *b, const char *name, const char *help,
		 int64_t v)
{
	return line(b, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", name, help,
		    name, name, (long long)v);
}

static int render_requests(struct cfs_buf *b)
{
	int e = line(b, "# HELP cloudfsd_http_requests_total Requests "
			"answered, by route pattern and status.\n"
			"# TYPE cloudfsd_http_requests_total counter\n");

	for (size_t row = 0; !e && row <= ROUTES_MAX; row++) {
		const struct route *r = NULL;

		if (row == ROW_UNMATCHED)
			;
		else if (row < route_count())
			r = route_nth(row);
		else
			continue;
		for (size_t s = 0; !e && s < N_STATUS; s++) {
			uint64_t n = get(&m.requests[row][s]);

			if (n)
				e = line(b,
					 "cloudfsd_http_requests_total{method="
					 "\"%s\",route=\"%s\",status=\"%zu\"} "
					 "%llu\n",
					 r ? r->method : "",
					 r ? r->pattern : "unmatched",
					 s + STATUS_MIN, (unsigned long long)n);
		}
	}
	return e;
}

static int render_store(struct cfs_buf *b)
{
	const char *name = "cloudfsd_blockstore_seconds";
	int e = line(b,
		     "# HELP %s Block store durations: write makes an "
		     "uploaded block durable, open readies one for sending.\n"
		     "# TYPE %s histogram\n",
		     name, name);

	for (size_t op = 0; !e && op < METRICS_STORE_OPS; op++) {
		struct histogram *h = &m.store[op];
		uint64_t total = 0;

		for (size_t i = 0; !e && i <= N_BUCKETS; i++) {
			total += get(&h->bucket[i]);
			if (i < N_BUCKETS)
				e = line(b,
					 "%s_bucket{op=\"%s\",le=\"%g\"} "
					 "%llu\n",
					 name, store_op_name[op],
					 (double)bucket_us[i] / 1e6,
					 (unsigned long long)total);
			else
				e = line(b,
					 "%s_bucket{op=\"%s\",le=\"+Inf\"} "
					 "%llu\n",
					 name, store_op_name[op],
					 (unsigned long long)total);
		}
		if (!e)
			e = line(b,
				 "%s_sum{op=\"%s\"} %.6f\n"
				 "%s_count{op=\"%s\"} %llu\n",
				 name, store_op_name[op],
				 (double)get(&h->sum_us) / 1e6, name,
				 store_op_name[op], (unsigned long long)total);
	}
	return e;
}

enum cfs_err metrics_render(char **text, struct cfs_error *err)
{
	struct cfs_buf b;
	int e;

	cfs_buf_init(&b, TEXT_MAX);
	e = render_requests(&b);
	if (!e)
		e = counter(
			&b, "cloudfsd_commits_total",
			"Commits answered, whatever their operations' fate.",
			get(&m.commits));
	if (!e)
		e = counter(&b, "cloudfsd_committed_operations_total",
			    "Operations committed.", get(&m.commit_ops));
	if (!e)
		e = counter(&b, "cloudfsd_commit_groups_total",
			    "Transactions that held several commits.",
			    get(&m.commit_groups));
	if (!e)
		e = counter(&b, "cloudfsd_grouped_commits_total",
			    "Commits written in such a transaction.",
			    get(&m.grouped_commits));
	if (!e)
		e = counter(&b, "cloudfsd_blocks_uploaded_total",
			    "Blocks stored by uploads.", get(&m.blocks));
	if (!e)
		e = counter(&b, "cloudfsd_block_upload_bytes_total",
			    "Bytes of the blocks stored by uploads.",
			    get(&m.block_bytes));
	if (!e)
		e = gauge(&b, "cloudfsd_longpolls_held",
			  "Long polls waiting for a change.",
			  atomic_load_explicit(&m.longpolls,
					       memory_order_relaxed));
	if (!e)
		e = gauge(&b, "cloudfsd_connections_open",
			  "Client connections open.",
			  atomic_load_explicit(&m.connections,
					       memory_order_relaxed));
	if (!e)
		e = render_store(&b);
	if (e) {
		cfs_buf_release(&b);
		return cfs_fail(err, CFS_ERR_INTERNAL,
				"cannot write the metrics: %s", strerror(-e));
	}
	*text = b.data;
	return CFS_OK;
}

enum cfs_err api_metrics(struct api_req *req, struct api_resp *resp,
			 struct cfs_error *err)
{
	(void)req;
	return metrics_render(&resp->text, err);
}
