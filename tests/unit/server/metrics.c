/*
 * The metrics renderer (src/server/metrics.c) on a stats region built in
 * memory: label values escaped as the text format says (\\, \", \n), the
 * bucket chosen for a duration (bounds inclusive), and histograms summed
 * over writers and made cumulative, +Inf and _count equal, _sum in
 * seconds; the length returned is the one needed, like snprintf.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/error.h>

#include "server/internal.h"
#include "test.h"

TEST(escape_label_values)
{
    char out[64];
    ASSERT_EQ(swoop__metrics_escape(out, sizeof(out), "a\\b\"c\nd"), 10u);
    ASSERT_STR_EQ(out, "a\\\\b\\\"c\\nd");
    ASSERT_EQ(swoop__metrics_escape(out, sizeof(out), "plain"), 5u);
    ASSERT_STR_EQ(out, "plain");
    /* Too small: cut, still NUL-terminated, the length needed returned. */
    ASSERT_EQ(swoop__metrics_escape(out, 4, "\"\"\""), 6u);
    ASSERT_EQ(strlen(out), 3u);
}

TEST(bucket_bounds)
{
    ASSERT_EQ(swoop__hist_bucket(0), 0);
    ASSERT_EQ(swoop__hist_bucket(1000), 0); /* le="0.000001" holds 1 us itself */
    ASSERT_EQ(swoop__hist_bucket(1001), 1);
    ASSERT_EQ(swoop__hist_bucket(2000), 1);
    ASSERT_EQ(swoop__hist_bucket(2001), 2);
    ASSERT_EQ(swoop__hist_bucket(999999), 9); /* le="0.001" */
    ASSERT_EQ(swoop__hist_bucket(50000000000ull), SWOOP_HIST_FINITE - 1);
    ASSERT_EQ(swoop__hist_bucket(50000000001ull), SWOOP_HIST_FINITE); /* +Inf */
    ASSERT_EQ(swoop__hist_bucket(UINT64_MAX), SWOOP_HIST_FINITE);
    for (int i = 1; i < SWOOP_HIST_FINITE; i++)
        ASSERT(swoop__hist_bounds_ns[i] > swoop__hist_bounds_ns[i - 1]);
}

/* A region of 2 workers, no reactor, one HTTP port 8080, one task worker. */
static swoop_srv_shared_t *fake_region(size_t *size)
{
    *size = swoop__shared_size_of(2, 0, 1, 1);
    swoop_srv_shared_t *gs = aligned_alloc(4096, (*size + 4095) / 4096 * 4096);
    ASSERT_NOT_NULL(gs);
    memset(gs, 0, *size);
    gs->magic = SWOOP_STATS_MAGIC;
    gs->version = SWOOP_STATS_VERSION;
    gs->mode = SWOOP_MODE_PROCESS;
    gs->worker_num = 2;
    gs->metric_ports = 1;
    gs->metric_tasks = 1;
    gs->metrics_on = 1;
    gs->port_num[0] = 8080;
    gs->port_http = 1;
    gs->task.queue_id = -1;
    return gs;
}

/* The value of the sample line that starts with `prefix` (followed by a space). */
static long long sample(const char *text, const char *prefix)
{
    size_t pl = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, prefix, pl) == 0 && p[pl] == ' ')
            return atoll(p + pl + 1);
    }
    FAIL("no sample %s", prefix);
    return -1;
}

TEST(histograms_cumulative)
{
    size_t size;
    swoop_srv_shared_t *gs = fake_region(&size);
    /* Worker 0: 3 us, 3 us, 1 ms; worker 1: 3 us, 2 minutes (+Inf); all 2xx on the port. */
    swoop__hist_observe(swoop__hist_latency(gs, 0, 0, 1), 3000);
    swoop__hist_observe(swoop__hist_latency(gs, 0, 0, 1), 3000);
    swoop__hist_observe(swoop__hist_latency(gs, 0, 0, 1), 1000000);
    swoop__hist_observe(swoop__hist_latency(gs, 1, 0, 1), 3000);
    swoop__hist_observe(swoop__hist_latency(gs, 1, 0, 1), 120000000000ull);
    swoop__hist_observe(swoop__hist_task(gs, 0, 1), 2500000000ull); /* a 2.5 s task */
    int n = swoop__metrics_render(gs, NULL, 0);
    ASSERT_GT(n, 1000);
    char *text = malloc((size_t)n + 1);
    ASSERT_EQ(swoop__metrics_render(gs, text, (size_t)n + 1), n);
    ASSERT_EQ(strlen(text), (size_t)n);
    /* Cut short: the same length, a NUL-terminated prefix. */
    char small[100];
    ASSERT_EQ(swoop__metrics_render(gs, small, sizeof(small)), n);
    ASSERT_EQ(strlen(small), sizeof(small) - 1);
    ASSERT_MEM_EQ(small, text, sizeof(small) - 1);

#define LAT "swoop_http_request_duration_seconds"
#define L2  "{port=\"8080\",class=\"2xx\""
    ASSERT_EQ(sample(text, LAT "_bucket" L2 ",le=\"0.000002\"}"), 0);
    ASSERT_EQ(sample(text, LAT "_bucket" L2 ",le=\"0.000005\"}"), 3);
    ASSERT_EQ(sample(text, LAT "_bucket" L2 ",le=\"0.0005\"}"), 3);
    ASSERT_EQ(sample(text, LAT "_bucket" L2 ",le=\"0.001\"}"), 4);
    ASSERT_EQ(sample(text, LAT "_bucket" L2 ",le=\"50\"}"), 4);
    ASSERT_EQ(sample(text, LAT "_bucket" L2 ",le=\"+Inf\"}"), 5);
    ASSERT_EQ(sample(text, LAT "_count" L2 "}"), 5);
    ASSERT_NOT_NULL(strstr(text, LAT "_sum" L2 "} 120.001009000\n"));
    /* HTTP ports always show 2xx..5xx; 1xx only once seen. */
    ASSERT_EQ(sample(text, LAT "_count{port=\"8080\",class=\"5xx\"}"), 0);
    ASSERT_NULL(strstr(text, "class=\"1xx\""));
    ASSERT_NOT_NULL(strstr(text, "swoop_task_run_duration_seconds_sum 2.500000000\n"));
    ASSERT_EQ(sample(text, "swoop_task_run_duration_seconds_bucket{le=\"2\"}"), 0);
    ASSERT_EQ(sample(text, "swoop_task_run_duration_seconds_bucket{le=\"5\"}"), 1);
    /* Every family: HELP then TYPE, counters end in _total. */
    ASSERT_NOT_NULL(strstr(text, "# HELP " LAT " "));
    ASSERT_NOT_NULL(strstr(text, "# TYPE " LAT " histogram\n"));
    for (const char *p = strstr(text, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
        char name[128], type[32];
        ASSERT_EQ(sscanf(p, "# TYPE %127s %31s", name, type), 2);
        if (strcmp(type, "counter") == 0) {
            size_t l = strlen(name);
            ASSERT(l > 6 && strcmp(name + l - 6, "_total") == 0);
        }
    }
    free(text);
    free(gs);
}
