/*
 * The task-spill arena (src/ipc/spill.c): content across fork, exhaustion
 * and its counters, every kind of bad reference, no file or fd left behind,
 * recovery from a SIGKILLed holder, and processes and threads hammering an
 * arena smaller than their demand without ever sharing a block.
 * TEST_LABELS: tsan
 */
#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <swoop/error.h>

#include "ipc/spill.h"
#include "test.h"

enum { WORKERS = 4, HOLD = 3, SMALL = 8 };

static size_t page(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

static swoop_spill_t *spill_new(size_t block_size, uint32_t nblocks)
{
    swoop_spill_t *sp = NULL;
    ASSERT_OK(swoop__spill_open(&sp, swoop_test_tmpdir(), "spill-", block_size, nblocks));
    ASSERT_NOT_NULL(sp);
    return sp;
}

/* A pattern unique to (who, seq), one 8-byte word at a time. */
static void fill(void *p, size_t len, uint64_t who, uint64_t seq)
{
    uint64_t *w = p;
    for (size_t i = 0; i < len / 8; i++)
        w[i] = (who << 56) ^ (seq << 20) ^ i;
}

static int intact(const void *p, size_t len, uint64_t who, uint64_t seq)
{
    const uint64_t *w = p;
    for (size_t i = 0; i < len / 8; i++) {
        if (w[i] != ((who << 56) ^ (seq << 20) ^ i))
            return 0;
    }
    return 1;
}

static void assert_used(swoop_spill_t *sp, uint32_t used)
{
    swoop_spill_stats_t st;
    swoop__spill_stats(sp, &st);
    ASSERT_UEQ(st.used, used);
}

static void send_ref(int fd, const swoop_spill_ref_t *r)
{
    char line[96];
    int n =
        snprintf(line, sizeof(line), "%u %u %llu\n", r->block, r->gen, (unsigned long long)r->len);
    ASSERT_EQ(write(fd, line, (size_t)n), n);
}

static swoop_spill_ref_t read_ref(int fd)
{
    char line[96];
    ASSERT_GT(swoop_test_read_line(fd, line, sizeof(line), 5000), 0);
    unsigned long long len;
    swoop_spill_ref_t r;
    ASSERT_EQ(sscanf(line, "%u %u %llu", &r.block, &r.gen, &len), 3);
    r.len = len;
    return r;
}

static void write_child(void *arg, int ready_fd)
{
    swoop_spill_t *sp = arg;
    swoop_spill_ref_t r;
    void *p;
    ASSERT_OK(swoop__spill_alloc(sp, 10000, &r, &p));
    fill(p, 10000, 7, 42);
    ASSERT_OK(swoop__spill_publish(sp, &r));
    send_ref(ready_fd, &r);
}

TEST(spill_round_trip_between_processes)
{
    swoop_spill_t *sp = spill_new(4 * page(), 4);
    ASSERT_UEQ(swoop__spill_block_size(sp), 4 * page());
    int fd;
    pid_t pid = swoop_test_fork(write_child, sp, &fd);
    swoop_spill_ref_t r = read_ref(fd);
    swoop_test_wait_ok(pid, 5000);
    ASSERT_UEQ(r.len, 10000);
    const void *p = swoop__spill_claim(sp, &r);
    ASSERT_NOT_NULL(p);
    ASSERT(intact(p, 10000, 7, 42));
    ASSERT_OK(swoop__spill_free(sp, &r));
    swoop_spill_stats_t st;
    swoop__spill_stats(sp, &st);
    ASSERT_UEQ(st.blocks, 4);
    ASSERT_UEQ(st.used, 0);
    ASSERT_UEQ(st.allocs, 1);
    close(fd);
    swoop__spill_close(sp);
}

TEST(spill_alloc_until_full_then_free_makes_room)
{
    swoop_spill_t *sp = spill_new(page(), 4);
    swoop_spill_ref_t r[4], extra;
    void *p[4], *q;
    for (int i = 0; i < 4; i++) {
        ASSERT_OK(swoop__spill_alloc(sp, 100, &r[i], &p[i]));
        for (int j = 0; j < i; j++)
            ASSERT_NE(r[i].block, r[j].block);
    }
    ASSERT_EQ(swoop__spill_alloc(sp, 100, &extra, &q), SWOOP_ENOSPC);
    ASSERT_EQ(swoop__spill_alloc(sp, 1, &extra, &q), SWOOP_ENOSPC);
    swoop_spill_stats_t st;
    swoop__spill_stats(sp, &st);
    ASSERT_UEQ(st.used, 4);
    ASSERT_UEQ(st.allocs, 4);
    ASSERT_UEQ(st.full, 2);
    ASSERT_OK(swoop__spill_free(sp, &r[2]));
    ASSERT_OK(swoop__spill_alloc(sp, page(), &extra, &q));
    ASSERT_UEQ(extra.block, r[2].block);
    ASSERT_NE(extra.gen, r[2].gen);
    ASSERT(q == p[2]);
    swoop__spill_stats(sp, &st);
    ASSERT_UEQ(st.used, 4);
    ASSERT_UEQ(st.allocs, 5);
    ASSERT_EQ(swoop__spill_alloc(sp, page() + 1, &extra, &q), SWOOP_E2BIG);
    swoop__spill_close(sp);
}

TEST(spill_refuses_bad_references)
{
    swoop_spill_t *sp = spill_new(page(), 1);
    swoop_spill_ref_t r, bad;
    void *p;
    ASSERT_OK(swoop__spill_alloc(sp, 64, &r, &p));
    ASSERT_NULL(swoop__spill_claim(sp, &r)); /* still WRITING */
    ASSERT_OK(swoop__spill_publish(sp, &r));
    ASSERT_EQ(swoop__spill_publish(sp, &r), SWOOP_ESTATE);
    ASSERT_EQ(swoop__spill_free(sp, &r), SWOOP_ESTATE); /* queued: only a claimer frees it */
    bad = r;
    bad.gen = r.gen + 1;
    ASSERT_NULL(swoop__spill_claim(sp, &bad));
    bad = r;
    bad.gen = 0xffffffffu;
    ASSERT_NULL(swoop__spill_claim(sp, &bad));
    bad = r;
    bad.block = 1;
    ASSERT_NULL(swoop__spill_claim(sp, &bad));
    bad.block = 0xffffffffu;
    ASSERT_NULL(swoop__spill_claim(sp, &bad));
    bad = r;
    bad.len = page() + 1;
    ASSERT_NULL(swoop__spill_claim(sp, &bad));
    ASSERT_NOT_NULL(swoop__spill_claim(sp, &r));
    ASSERT_NULL(swoop__spill_claim(sp, &r)); /* claimed twice */
    ASSERT_OK(swoop__spill_free(sp, &r));
    ASSERT_EQ(swoop__spill_free(sp, &r), SWOOP_ESTATE);

    /* The block comes back with a new generation: the old reference is stale. */
    swoop_spill_ref_t r2;
    ASSERT_OK(swoop__spill_alloc(sp, 64, &r2, &p));
    ASSERT_UEQ(r2.block, r.block);
    ASSERT_OK(swoop__spill_publish(sp, &r2));
    ASSERT_NULL(swoop__spill_claim(sp, &r));
    ASSERT_NOT_NULL(swoop__spill_claim(sp, &r2));
    ASSERT_OK(swoop__spill_free(sp, &r2));
    assert_used(sp, 0);
    swoop__spill_close(sp);
}

static void assert_tmpdir_empty(void)
{
    DIR *d = opendir(swoop_test_tmpdir());
    ASSERT_NOT_NULL(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            FAIL("%s left in the temp dir", e->d_name);
    }
    closedir(d);
}

TEST(spill_open_leaves_no_file_and_no_fd)
{
    int fds = swoop_test_fd_count();
    swoop_spill_t *sp = spill_new(page(), 2);
    ASSERT_EQ(swoop_test_fd_count(), fds);
    char want[512];
    snprintf(want, sizeof(want), "%s/spill-", swoop_test_tmpdir());
    ASSERT(strncmp(swoop__spill_path(sp), want, strlen(want)) == 0);
    assert_tmpdir_empty();
    swoop__spill_close(sp);
    swoop__spill_close(NULL);
    ASSERT_EQ(swoop_test_fd_count(), fds);
}

/* A file size limit makes posix_fallocate fail, as a full tmpfs would. */
static void fallocate_fails_child(void *arg, int ready_fd)
{
    struct rlimit rl = {.rlim_cur = page(), .rlim_max = page()};
    ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &rl), 0);
    signal(SIGXFSZ, SIG_IGN);
    int fds = swoop_test_fd_count();
    swoop_spill_t *sp = NULL;
    ASSERT_EQ(swoop__spill_open(&sp, swoop_test_tmpdir(), "spill-", page(), 4), -EFBIG);
    ASSERT_NULL(sp);
    ASSERT_EQ(swoop_test_fd_count(), fds);
}

TEST(spill_open_failure_leaves_no_file)
{
    swoop_test_wait_ok(swoop_test_fork(fallocate_fails_child, NULL, NULL), 5000);
    assert_tmpdir_empty();
}

TEST(spill_open_rejects_bad_arguments)
{
    swoop_spill_t *sp = NULL;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/missing", swoop_test_tmpdir());
    ASSERT_EQ(swoop__spill_open(&sp, dir, "spill-", page(), 2), SWOOP_ENOENT);
    ASSERT_EQ(swoop__spill_open(&sp, swoop_test_tmpdir(), "spill-", page() + 8, 2), SWOOP_EINVAL);
    ASSERT_EQ(swoop__spill_open(&sp, swoop_test_tmpdir(), "spill-", 0, 2), SWOOP_EINVAL);
    ASSERT_EQ(swoop__spill_open(&sp, swoop_test_tmpdir(), "spill-", page(), 0), SWOOP_EINVAL);
    ASSERT_NULL(sp);
}

TEST(spill_unclaim_then_claim_again)
{
    swoop_spill_t *sp = spill_new(page(), 2);
    swoop_spill_ref_t r;
    void *p;
    ASSERT_OK(swoop__spill_alloc(sp, 256, &r, &p));
    fill(p, 256, 1, 1);
    ASSERT_EQ(swoop__spill_unclaim(sp, &r, getpid()), SWOOP_ESTATE); /* WRITING */
    ASSERT_OK(swoop__spill_publish(sp, &r));
    ASSERT_OK(swoop__spill_unclaim(sp, &r, getpid())); /* QUEUED: a reader died before claiming */
    ASSERT_NOT_NULL(swoop__spill_claim(sp, &r));
    ASSERT_EQ(swoop__spill_unclaim(sp, &r, getpid() + 1), SWOOP_ESTATE); /* another reader */
    ASSERT_OK(swoop__spill_unclaim(sp, &r, getpid()));
    assert_used(sp, 1);
    const void *q = swoop__spill_claim(sp, &r);
    ASSERT_NOT_NULL(q);
    ASSERT(intact(q, 256, 1, 1));
    ASSERT_OK(swoop__spill_free(sp, &r));
    assert_used(sp, 0);
    swoop__spill_close(sp);
}

struct held {
    swoop_spill_t *sp;
    swoop_spill_ref_t queued; /* published by the parent, claimed by the child */
};

static void holder_child(void *arg, int ready_fd)
{
    struct held *h = arg;
    swoop_spill_ref_t w, q;
    void *p;
    ASSERT_NOT_NULL(swoop__spill_claim(h->sp, &h->queued));
    ASSERT_OK(swoop__spill_alloc(h->sp, 100, &w, &p));
    ASSERT_OK(swoop__spill_alloc(h->sp, 100, &q, &p));
    fill(p, 96, 3, 3);
    ASSERT_OK(swoop__spill_publish(h->sp, &q));
    send_ref(ready_fd, &w);
    send_ref(ready_fd, &q);
    for (;;)
        pause(); /* until SIGKILL */
}

TEST(spill_reap_frees_a_killed_holders_blocks)
{
    struct held h = {.sp = spill_new(page(), 6)};
    swoop_spill_ref_t mine;
    void *p;
    ASSERT_OK(swoop__spill_alloc(h.sp, 100, &h.queued, &p));
    ASSERT_OK(swoop__spill_publish(h.sp, &h.queued));
    ASSERT_OK(swoop__spill_alloc(h.sp, 100, &mine, &p)); /* the parent's own WRITING block */
    int fd;
    pid_t pid = swoop_test_fork(holder_child, &h, &fd);
    swoop_spill_ref_t w = read_ref(fd);
    swoop_spill_ref_t q = read_ref(fd);
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = swoop_test_wait_pid(pid, 5000);
    ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    assert_used(h.sp, 4);

    ASSERT_EQ(swoop__spill_reap(h.sp, pid), 2); /* WRITING w and READING h.queued */
    ASSERT_EQ(swoop__spill_reap(h.sp, pid), 0);
    assert_used(h.sp, 2);
    ASSERT_NULL(swoop__spill_claim(h.sp, &w));
    ASSERT_NULL(swoop__spill_claim(h.sp, &h.queued));
    const void *got = swoop__spill_claim(h.sp, &q); /* QUEUED survives its writer */
    ASSERT_NOT_NULL(got);
    ASSERT(intact(got, 96, 3, 3));
    ASSERT_OK(swoop__spill_free(h.sp, &q));
    ASSERT_OK(swoop__spill_free(h.sp, &mine));
    assert_used(h.sp, 0);
    close(fd);
    swoop__spill_close(h.sp);
}

/* ---- many writers and readers on an arena smaller than their demand ---- */

struct worker {
    swoop_spill_t *sp;
    uint64_t id;
    int rounds;
    uint64_t *done;    /* successful allocations */
    uint64_t *refused; /* SWOOP_ENOSPC results */
};

/*
 * Each round holds up to HOLD blocks at once through the whole cycle, so
 * WORKERS * HOLD > SMALL blocks are wanted and allocations race for the
 * last ones. A block handed out twice shows up as someone else's pattern.
 */
static void hammer(struct worker *wk)
{
    size_t bs = swoop__spill_block_size(wk->sp);
    uint64_t seq = 0, done = 0, refused = 0;
    for (int round = 0; round < wk->rounds; round++) {
        swoop_spill_ref_t r[HOLD];
        void *p[HOLD];
        int n = 0;
        while (n < HOLD) {
            size_t len = 8 * (1 + (seq * 37) % (bs / 8));
            int rc = swoop__spill_alloc(wk->sp, len, &r[n], &p[n]);
            if (rc == SWOOP_ENOSPC) {
                refused++;
                if (n > 0)
                    break;
                sched_yield(); /* the others hold all of them: they will free some */
                continue;
            }
            ASSERT_OK(rc);
            fill(p[n], len, wk->id, seq);
            n++;
            seq++;
        }
        done += (uint64_t)n;
        for (int i = 0; i < n; i++)
            ASSERT_OK(swoop__spill_publish(wk->sp, &r[i]));
        for (int i = 0; i < n; i++) {
            const void *q = swoop__spill_claim(wk->sp, &r[i]);
            ASSERT(q == p[i]);
        }
        for (int i = 0; i < n; i++) {
            if (!intact(p[i], r[i].len, wk->id, seq - (uint64_t)n + (uint64_t)i))
                FAIL("worker %llu: block %u was overwritten while held", (unsigned long long)wk->id,
                     r[i].block);
            ASSERT_OK(swoop__spill_free(wk->sp, &r[i]));
        }
    }
    *wk->done = done;
    *wk->refused = refused;
}

static void hammer_child(void *arg, int ready_fd)
{
    hammer(arg);
}

static void *hammer_thread(void *arg)
{
    hammer(arg);
    return NULL;
}

static void check_totals(swoop_spill_t *sp, const uint64_t *done, const uint64_t *refused,
                         int rounds)
{
    uint64_t all = 0, full = 0;
    for (int i = 0; i < WORKERS; i++) {
        ASSERT_UGE(done[i], (uint64_t)rounds);
        all += done[i];
        full += refused[i];
    }
    swoop_spill_stats_t st;
    swoop__spill_stats(sp, &st);
    ASSERT_UEQ(st.used, 0);
    ASSERT_UEQ(st.allocs, all);
    ASSERT_UEQ(st.full, full);
}

TEST(spill_processes_never_share_a_block)
{
    enum { ROUNDS = 7000 }; /* about 20,000 cycles per process */
    swoop_spill_t *sp = spill_new(page(), SMALL);
    uint64_t *counts =
        mmap(NULL, page(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT(counts != MAP_FAILED);
    struct worker wk[WORKERS];
    pid_t pids[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        wk[i] = (struct worker){sp, (uint64_t)i + 1, ROUNDS, &counts[i], &counts[WORKERS + i]};
        pids[i] = swoop_test_fork(hammer_child, &wk[i], NULL);
    }
    for (int i = 0; i < WORKERS; i++)
        swoop_test_wait_ok(pids[i], 60000);
    check_totals(sp, counts, counts + WORKERS, ROUNDS);
    munmap(counts, page());
    swoop__spill_close(sp);
}

TEST(spill_threads_never_share_a_block)
{
    enum { ROUNDS = 3000 };
    swoop_spill_t *sp = spill_new(page(), SMALL);
    uint64_t counts[2 * WORKERS] = {0};
    struct worker wk[WORKERS];
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        wk[i] = (struct worker){sp, (uint64_t)i + 1, ROUNDS, &counts[i], &counts[WORKERS + i]};
        ASSERT_EQ(pthread_create(&th[i], NULL, hammer_thread, &wk[i]), 0);
    }
    for (int i = 0; i < WORKERS; i++)
        ASSERT_EQ(pthread_join(th[i], NULL), 0);
    check_totals(sp, counts, counts + WORKERS, ROUNDS);
    swoop__spill_close(sp);
}
