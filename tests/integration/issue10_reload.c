/*
 * Issue 10, items 1-3: SIGUSR1 reloads under load in PROCESS mode, with the
 * worker channels as shared-memory rings (ipc_ring 1, the default) and as
 * socketpairs. Every request runs exactly once (its id is counted by the
 * server in shared memory and answered once), a taskwait started before a
 * reload gets its own result, and no connection stalls after a reload (the
 * old process used to clear its successor's sleep flag: ~1 s waits).
 */
/* TEST_LABELS: tsan */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server_common.h"

#define MAX_IDS     (1u << 18)
#define FAST_CONNS  48
#define SLOW_CONNS  8
#define SLOW_MS     200
#define STALL_CONNS 64
#define MAX_CONNS   128

typedef struct shared_s {
    _Atomic uint32_t runs[MAX_IDS]; /* on_receive calls per request id */
    _Atomic int32_t pids[MAX_IDS];  /* the process that ran it (the last one) */
    _Atomic int32_t inside[8];      /* per worker id: the pid in on_receive, 0 */
    _Atomic uint32_t overlaps;      /* two processes of one worker id in on_receive at once */
} shared_t;

static shared_t *sh;
static int use_ring;

/* Requests are lines "<id> <f|m|s>\n"; 's' sleeps SLOW_MS, 'm' a quarter. The reply is "<id>\n". */
static void on_request(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, const void *data,
                       size_t len)
{
    char line[64];
    if (len >= sizeof(line))
        len = sizeof(line) - 1;
    memcpy(line, data, len);
    line[len] = '\0';
    unsigned id;
    char kind;
    if (sscanf(line, "%u %c", &id, &kind) != 2 || id >= MAX_IDS)
        return;
    if (atomic_fetch_add(&sh->runs[id], 1) > 0)
        fprintf(stderr, "request %u runs again in pid %d (first: pid %d)\n", id, (int)getpid(),
                (int)atomic_load(&sh->pids[id]));
    atomic_store(&sh->pids[id], (int32_t)getpid());
    /*
     * Old and new processes of one worker id must never run callbacks side by
     * side: they share the id's rings and its waker (the root of items 1-3).
     */
    int w = swoop_server_worker_id(srv);
    int32_t none = 0;
    if (w >= 0 && w < 8 && !atomic_compare_exchange_strong(&sh->inside[w], &none, getpid())) {
        atomic_fetch_add(&sh->overlaps, 1);
        fprintf(stderr, "worker %d: pid %d runs on_receive while pid %d does\n", w, (int)getpid(),
                (int)none);
        w = -1;
    }
    if (kind == 's')
        swoop_test_sleep_ms(SLOW_MS);
    else if (kind == 'm')
        swoop_test_sleep_ms(SLOW_MS / 4);
    char out[32];
    int n = snprintf(out, sizeof(out), "%u\n", id);
    swoop_server_send(srv, conn, out, (size_t)n);
    if (w >= 0 && w < 8)
        atomic_store(&sh->inside[w], 0);
}

static void setup_load(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "worker_num", "4"));
    ASSERT_OK(swoop_server_set(srv, "reactor_num", "3"));
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "3"));
    ASSERT_OK(swoop_server_set(srv, "ipc_ring", use_ring ? "1" : "0"));
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_on(srv, &(swoop_server_events_t){.on_receive = on_request}));
}

/* ---- a ping-pong client over many connections ---- */

typedef struct conn_s {
    int fd;
    int slow;
    unsigned id; /* outstanding request, 0 = none */
    uint64_t sent_ms;
    char buf[64];
    size_t got;
} conn_t;

typedef struct load_s {
    int ep;
    conn_t *c;
    int n;
    unsigned next_id;
    char slow_kind; /* what the slow connections send: 's' or 'm' */
    long answered;
    uint64_t max_lat_ms;
    uint64_t *lat; /* latencies of the fast connections */
    size_t nlat, lat_cap;
} load_t;

static void load_send(load_t *L, conn_t *c)
{
    c->id = L->next_id++;
    ASSERT_LT(c->id, MAX_IDS);
    char line[32];
    int k = snprintf(line, sizeof(line), "%u %c\n", c->id, c->slow ? L->slow_kind : 'f');
    c->sent_ms = swoop_test_now_ms();
    cli_write(c->fd, line, (size_t)k);
}

static void add_conn(load_t *L, int port, int slow)
{
    ASSERT_LT(L->n, MAX_CONNS);
    conn_t *c = &L->c[L->n];
    c->fd = cli_connect(port);
    c->slow = slow;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)L->n};
    ASSERT_EQ(epoll_ctl(L->ep, EPOLL_CTL_ADD, c->fd, &ev), 0);
    L->n++;
    load_send(L, c);
}

static void load_open(load_t *L, int port, int fast, int slow, unsigned first_id)
{
    memset(L, 0, sizeof(*L));
    L->c = calloc(MAX_CONNS, sizeof(conn_t));
    L->next_id = first_id;
    L->slow_kind = 's';
    L->ep = epoll_create1(EPOLL_CLOEXEC);
    L->lat_cap = 1u << 16;
    L->lat = calloc(L->lat_cap, sizeof(uint64_t));
    for (int i = 0; i < fast + slow; i++)
        add_conn(L, port, i >= fast);
}

/* Runs the ping-pong for `ms`; with `more` 0 it only collects what is outstanding. */
static void load_run(load_t *L, int ms, int more)
{
    uint64_t end = swoop_test_now_ms() + (uint64_t)ms;
    struct epoll_event evs[128];
    for (;;) {
        uint64_t now = swoop_test_now_ms();
        if (now >= end)
            return;
        if (!more) {
            int waiting = 0;
            for (int i = 0; i < L->n; i++)
                waiting |= L->c[i].id != 0;
            if (!waiting)
                return;
        }
        int k = epoll_wait(L->ep, evs, 128, (int)(end - now));
        for (int e = 0; e < k; e++) {
            conn_t *c = &L->c[evs[e].data.u32];
            ssize_t r = recv(c->fd, c->buf + c->got, sizeof(c->buf) - 1 - c->got, 0);
            if (r == 0)
                FAIL("the server closed a connection (request %u outstanding)", c->id);
            if (r < 0) {
                ASSERT(errno == EINTR || errno == EAGAIN);
                continue;
            }
            c->got += (size_t)r;
            char *nl;
            while ((nl = memchr(c->buf, '\n', c->got)) != NULL) {
                *nl = '\0';
                unsigned id = (unsigned)strtoul(c->buf, NULL, 10);
                if (id != c->id)
                    FAIL("reply for request %u, expected %u (a request answered twice?)", id,
                         c->id);
                uint64_t lat = swoop_test_now_ms() - c->sent_ms;
                if (!c->slow) {
                    if (lat > L->max_lat_ms)
                        L->max_lat_ms = lat;
                    if (L->nlat < L->lat_cap)
                        L->lat[L->nlat++] = lat;
                }
                L->answered++;
                size_t used = (size_t)(nl + 1 - c->buf);
                memmove(c->buf, nl + 1, c->got - used);
                c->got -= used;
                c->id = 0;
                if (more)
                    load_send(L, c);
            }
        }
    }
}

static void load_close(load_t *L)
{
    for (int i = 0; i < L->n; i++)
        close(L->c[i].fd);
    close(L->ep);
    free(L->c);
    free(L->lat);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t load_p99(load_t *L)
{
    if (L->nlat == 0)
        return 0;
    qsort(L->lat, L->nlat, sizeof(uint64_t), cmp_u64);
    return L->lat[(L->nlat * 99) / 100];
}

/* Every worker's pid differs from `before` (the reload replaced them all). */
static void wait_all_replaced(srv_handle_t *h, const swoop_server_stats_t *before, load_t *L)
{
    uint64_t deadline = swoop_test_now_ms() + 5000u * swoop_test_multiplier();
    for (;;) {
        swoop_server_stats_t st;
        srv_stats(h, &st);
        int replaced = 0;
        for (int i = 0; i < st.worker_num; i++)
            replaced += st.workers[i].pid > 0 && st.workers[i].pid != before->workers[i].pid;
        if (replaced == st.worker_num)
            return;
        if (swoop_test_now_ms() > deadline)
            FAIL("only %d of %d workers replaced after a reload", replaced, st.worker_num);
        load_run(L, 5, 1);
    }
}

static void check_each_ran_once(load_t *L)
{
    unsigned twice = 0, never = 0;
    for (unsigned id = 1; id < L->next_id; id++) {
        uint32_t n = atomic_load(&sh->runs[id]);
        twice += n > 1;
        never += n == 0;
    }
    uint32_t overlaps = atomic_load(&sh->overlaps);
    printf("# %u requests, %ld answered, %u run more than once, %u never; %u overlaps\n",
           L->next_id - 1, L->answered, twice, never, overlaps);
    ASSERT_EQ(overlaps, 0u);
    ASSERT_EQ(twice, 0u);
    ASSERT_EQ(never, 0u);
    ASSERT_EQ(L->answered, (long)(L->next_id - 1));
}

/* Item 1: 48 ping-pong and 8 slow connections, 20 reloads 300 ms apart. */
static void reload_exact(int ring)
{
    use_ring = ring;
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup_load, NULL, 4);
    load_t L;
    load_open(&L, h.port, FAST_CONNS, SLOW_CONNS, 1);
    load_run(&L, 200, 1);
    /* As an operator's script would: reloads 300 ms apart, overlapping the slow callbacks. */
    for (int i = 0; i < 20; i++) {
        ASSERT_EQ(kill(h.pid, SIGUSR1), 0);
        load_run(&L, 300, 1);
    }
    load_run(&L, 5000 * (int)swoop_test_multiplier(), 0);
    check_each_ran_once(&L);
    load_close(&L);
    srv_stop(&h, 5000);
    munmap(sh, sizeof(*sh));
}

TEST_TIMEOUT(issue10_reload_runs_each_request_once_ring, 120)
{
    reload_exact(1);
}

TEST_TIMEOUT(issue10_reload_runs_each_request_once_pipe, 120)
{
    reload_exact(0);
}

/* Item 3: 64 ping-pong connections (and 3 slow ones), 10 reloads; no lost wake-up. */
static void reload_no_stall(int ring)
{
    use_ring = ring;
    sh = srv_shared(sizeof(*sh));
    srv_handle_t h = srv_start(SWOOP_MODE_PROCESS, setup_load, NULL, 4);
    load_t base;
    load_open(&base, h.port, STALL_CONNS, 0, 1);
    load_run(&base, 1000, 1);
    load_run(&base, 5000, 0);
    uint64_t p99_quiet = load_p99(&base);
    uint64_t max_quiet = base.max_lat_ms;
    unsigned first_id = base.next_id;
    load_close(&base);

    /* A few slow requests keep old processes in a callback while their successors run. */
    load_t L;
    load_open(&L, h.port, STALL_CONNS, 0, first_id);
    L.slow_kind = 'm';
    for (int i = 0; i < 3; i++)
        add_conn(&L, h.port, 1);
    for (int i = 0; i < 10; i++) {
        swoop_server_stats_t before;
        srv_stats(&h, &before);
        ASSERT_EQ(kill(h.pid, SIGUSR1), 0);
        wait_all_replaced(&h, &before, &L);
        load_run(&L, 200, 1);
    }
    load_run(&L, 5000, 0);
    uint64_t p99 = load_p99(&L);
    printf("# latency without reloads: p99 %llu ms, max %llu ms; across 10 reloads: p99 %llu ms, "
           "max %llu ms\n",
           (unsigned long long)p99_quiet, (unsigned long long)max_quiet, (unsigned long long)p99,
           (unsigned long long)L.max_lat_ms);
    /*
     * The stall came from the old process clearing the sleep flag its
     * successor had set (a lost wake-up: the worker's 1 s safety timer).
     * Latency on this shared machine is too noisy to assert (bench/ has the
     * figures); what is asserted is the cause: never two processes of one
     * worker id at work at once, and every request answered.
     */
    uint32_t overlaps = atomic_load(&sh->overlaps);
    ASSERT_EQ(overlaps, 0u);
    ASSERT_EQ(L.answered, (long)(L.next_id - first_id));
    load_close(&L);
    srv_stop(&h, 5000);
    munmap(sh, sizeof(*sh));
}

TEST_TIMEOUT(issue10_reload_no_stall_ring, 120)
{
    reload_no_stall(1);
}

/* ---- item 2: taskwait across a reload ---- */

static void on_tw_request(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id,
                          const void *data, size_t len)
{
    void *res = NULL;
    size_t rlen = 0;
    int rc = swoop_server_taskwait(srv, data, len, 5000, -1, &res, &rlen);
    if (rc < 0) {
        swoop_server_send(srv, conn, "ERR\n", 4);
        return;
    }
    swoop_server_send(srv, conn, res, rlen);
    free(res);
}

/*
 * "a..." runs 800 ms, "b..." 50 ms (in the other task worker): the old
 * process still waits for a's result when b's comes back to its successor.
 */
static void on_tw_task(swoop_server_t *srv, int64_t task_id, int src_worker, const void *data,
                       size_t len)
{
    swoop_test_sleep_ms(len > 0 && *(const char *)data == 'a' ? 800 : 50);
    swoop_server_task_finish(srv, data, len);
}

static void setup_tw(swoop_server_t *srv, void *arg)
{
    ASSERT_OK(swoop_server_set(srv, "worker_num", "1"));
    ASSERT_OK(swoop_server_set(srv, "task_worker_num", "2"));
    ASSERT_OK(swoop_server_set(srv, "max_wait_time", "3"));
    ASSERT_OK(swoop_server_set(srv, "ipc_ring", use_ring ? "1" : "0"));
    ASSERT_OK(swoop_server_set(srv, "open_eof_split", "1"));
    ASSERT_OK(swoop_server_set(srv, "package_eof", "\\n"));
    ASSERT_OK(swoop_server_on(
        srv, &(swoop_server_events_t){.on_receive = on_tw_request, .on_task = on_tw_task}));
}

static int srv_busy(srv_handle_t *h)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    return st.workers[0].busy;
}

static int worker0_replaced(srv_handle_t *h, const swoop_server_stats_t *before)
{
    swoop_server_stats_t st;
    srv_stats(h, &st);
    return st.workers[0].pid > 0 && st.workers[0].pid != before->workers[0].pid;
}

static void taskwait_across_reload(swoop_mode_t mode, int ring)
{
    use_ring = ring;
    srv_handle_t h = srv_start(mode, setup_tw, NULL, 1);
    for (int round = 0; round < 5; round++) {
        int a = cli_connect(h.port), b = cli_connect(h.port);
        char qa[32], qb[32];
        int na = snprintf(qa, sizeof(qa), "a%d\n", round);
        int nb = snprintf(qb, sizeof(qb), "b%d\n", round);
        swoop_server_stats_t before;
        srv_stats(&h, &before);
        cli_write(a, qa, (size_t)na);
        /* Reload while the first request waits for its task; b goes to the successor. */
        WAIT_UNTIL(srv_busy(&h), 2000);
        ASSERT_EQ(kill(h.pid, SIGUSR1), 0);
        WAIT_UNTIL(worker0_replaced(&h, &before), 5000);
        cli_write(b, qb, (size_t)nb);
        char ra[32] = {0}, rb[32] = {0};
        ASSERT_EQ(cli_read_n(b, rb, (size_t)nb, 3000), (size_t)nb);
        ASSERT_EQ(cli_read_n(a, ra, (size_t)na, 3000), (size_t)na);
        ASSERT_MEM_EQ(ra, qa, (size_t)na);
        ASSERT_MEM_EQ(rb, qb, (size_t)nb);
        close(a);
        close(b);
    }
    srv_stop(&h, 5000);
}

TEST_TIMEOUT(issue10_taskwait_across_reload_ring, 120)
{
    taskwait_across_reload(SWOOP_MODE_PROCESS, 1);
}

TEST_TIMEOUT(issue10_taskwait_across_reload_pipe, 120)
{
    taskwait_across_reload(SWOOP_MODE_PROCESS, 0);
}

/* BASE: the old process drains its connections while its successor already serves. */
TEST_TIMEOUT(issue10_taskwait_across_reload_base, 120)
{
    taskwait_across_reload(SWOOP_MODE_BASE, 0);
}
