/* Context switch and scheduler: registers and FP control state kept per coroutine, deep
 * recursion, 100,000 sequential and 10,000 concurrent coroutines, ids, sleep, cancel. */
/* TEST_LABELS: tsan */
#include <swoop/co.h>

#include <stdio.h>
#include <sys/mman.h>

#include <swoop/error.h>
#include <swoop/timer.h>

#include "test.h"

static int count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

#if defined(__x86_64__)
/* The asm below loads known values into rbx and r12-r15, calls this (which
 * switches away and back several times), then stores the registers. */
static long saved_regs[2][5];
__attribute__((used)) static long *regs_out_ptr;
__attribute__((used)) static long regs_k;
__attribute__((used)) static void yield_helper(void);
__attribute__((used)) static void yield_helper(void)
{
    for (int i = 0; i < 3; i++)
        ASSERT_OK(swoop_co_sleep(1));
}

static void regs_body(void *arg)
{
    long k = (long)(intptr_t)arg;
    /* Read into registers by the asm before the first switch. */
    regs_out_ptr = saved_regs[k];
    regs_k = k * 0x100000 + 7;
    /* Step past the red zone, align, keep rbp ourselves: the call must not
     * clobber anything the compiler keeps below rsp. */
    __asm__ volatile("leaq -128(%%rsp), %%rsp\n\t"
                     "pushq %%rbp\n\t"
                     "movq %%rsp, %%rbp\n\t"
                     "andq $-16, %%rsp\n\t"
                     "movq regs_out_ptr(%%rip), %%rax\n\t"
                     "pushq %%rax\n\t"
                     "pushq %%rax\n\t"
                     "movq regs_k(%%rip), %%rbx\n\t"
                     "leaq 0x1000(%%rbx), %%r12\n\t"
                     "leaq 0x2000(%%rbx), %%r13\n\t"
                     "leaq 0x3000(%%rbx), %%r14\n\t"
                     "leaq 0x4000(%%rbx), %%r15\n\t"
                     "callq yield_helper\n\t"
                     "popq %%rax\n\t"
                     "popq %%rax\n\t"
                     "movq %%rbx, 0(%%rax)\n\t"
                     "movq %%r12, 8(%%rax)\n\t"
                     "movq %%r13, 16(%%rax)\n\t"
                     "movq %%r14, 24(%%rax)\n\t"
                     "movq %%r15, 32(%%rax)\n\t"
                     "movq %%rbp, %%rsp\n\t"
                     "popq %%rbp\n\t"
                     "leaq 128(%%rsp), %%rsp\n\t"
                     :
                     :
                     : "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
                       "r13", "r14", "r15", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
                       "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
                       "memory", "cc");
}

static void regs_main(void *arg)
{
    ASSERT_GT(swoop_co_go(regs_body, (void *)(intptr_t)0), 0);
    ASSERT_GT(swoop_co_go(regs_body, (void *)(intptr_t)1), 0);
}

TEST(callee_saved_registers_survive_switches)
{
    ASSERT_OK(swoop_co_run(regs_main, NULL));
    for (long k = 0; k < 2; k++) {
        long base = k * 0x100000 + 7;
        ASSERT_EQ(saved_regs[k][0], base);
        ASSERT_EQ(saved_regs[k][1], base + 0x1000);
        ASSERT_EQ(saved_regs[k][2], base + 0x2000);
        ASSERT_EQ(saved_regs[k][3], base + 0x3000);
        ASSERT_EQ(saved_regs[k][4], base + 0x4000);
    }
}

static unsigned get_mxcsr(void)
{
    unsigned v;
    __asm__ volatile("stmxcsr %0" : "=m"(v));
    return v;
}
static void set_mxcsr(unsigned v)
{
    __asm__ volatile("ldmxcsr %0" : : "m"(v));
}
static unsigned short get_fpucw(void)
{
    unsigned short v;
    __asm__ volatile("fnstcw %0" : "=m"(v));
    return v;
}
static void set_fpucw(unsigned short v)
{
    __asm__ volatile("fldcw %0" : : "m"(v));
}

static int fp_ok;

/* Each coroutine picks its own rounding mode (MXCSR bits 13-14, x87 CW bits 10-11) and
 * checks it after every switch, while the others and the loop run with theirs. */
static void fp_body(void *arg)
{
    unsigned rc = (unsigned)(uintptr_t)arg; /* 1 down, 2 up, 3 toward zero */
    set_mxcsr((get_mxcsr() & ~0x6000u) | (rc << 13));
    set_fpucw((unsigned short)((get_fpucw() & ~0x0c00u) | (rc << 10)));
    volatile double one = 1.0, three = 3.0;
    double first = one / three;
    for (int i = 0; i < 5; i++) {
        ASSERT_OK(swoop_co_sleep(1));
        ASSERT_EQ((get_mxcsr() >> 13) & 3u, rc);
        ASSERT_EQ((get_fpucw() >> 10) & 3u, rc);
        double again = one / three; /* SSE division under this coroutine's mode */
        ASSERT(again == first);
    }
    fp_ok++;
}

static void fp_main(void *arg)
{
    for (uintptr_t rc = 1; rc <= 3; rc++)
        ASSERT_GT(swoop_co_go(fp_body, (void *)rc), 0);
    ASSERT_EQ((get_mxcsr() >> 13) & 3u, 0u);
}

TEST(fp_control_state_is_per_coroutine)
{
    unsigned mx = get_mxcsr();
    unsigned short cw = get_fpucw();
    ASSERT_OK(swoop_co_run(fp_main, NULL));
    ASSERT_EQ(fp_ok, 3);
    /* The thread's own state never changed. */
    ASSERT_EQ(get_mxcsr() & 0xffc0u, mx & 0xffc0u);
    ASSERT_EQ(get_fpucw(), cw);
}
#endif

/* Callee-saved values the compiler keeps in registers across waits, on every architecture. */
static void live_values_body(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    uint64_t a = seed * 3, b = seed * 5, c = seed * 7, d = seed * 11, e = seed * 13, f = seed * 17;
    double x = (double)seed * 0.5, y = (double)seed * 0.25;
    for (int i = 0; i < 20; i++) {
        ASSERT_OK(swoop_co_sleep(1));
        a += 1, b += 2, c += 3, d += 4, e += 5, f += 6;
        x += 1.0, y += 2.0;
    }
    ASSERT_EQ(a, seed * 3 + 20);
    ASSERT_EQ(b, seed * 5 + 40);
    ASSERT_EQ(c, seed * 7 + 60);
    ASSERT_EQ(d, seed * 11 + 80);
    ASSERT_EQ(e, seed * 13 + 100);
    ASSERT_EQ(f, seed * 17 + 120);
    ASSERT(x == (double)seed * 0.5 + 20.0);
    ASSERT(y == (double)seed * 0.25 + 40.0);
}

static void live_values_main(void *arg)
{
    for (uintptr_t i = 1; i <= 8; i++)
        ASSERT_GT(swoop_co_go(live_values_body, (void *)(i * 1000)), 0);
}

TEST(live_values_survive_interleaving)
{
    ASSERT_OK(swoop_co_run(live_values_main, NULL));
}

static int recurse(int depth, volatile char *prev)
{
    volatile char frame[1024];
    frame[0] = (char)depth;
    frame[1023] = prev ? prev[0] : 0;
    if (depth == 0)
        return frame[0] + frame[1023];
    int r = recurse(depth - 1, frame);
    return r + (frame[0] == (char)depth);
}

static int deep_result;

static void deep_body(void *arg)
{
    /* ~180 KiB of 1 KiB frames on the 256 KiB default stack, then a wait
     * in the middle of it, then back up. */
    deep_result = recurse(180, NULL);
    ASSERT_OK(swoop_co_sleep(1));
    deep_result += recurse(180, NULL);
}

TEST(deep_recursion_near_stack_size)
{
    ASSERT_OK(swoop_co_run(deep_body, NULL));
    ASSERT_EQ(deep_result, 2 * (180 + 1));
}

static int seq_runs;

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif
#ifdef UNDER_TSAN
void *__tsan_get_current_fiber(void);
/* The fiber the last coroutine ran on. A coroutine on a pooled stack must get a
 * fiber of its own: one reused from the last coroutine keeps that one's entry frame
 * in TSan's shadow stack, one more per coroutine, until TSan dies of it after about
 * 65,000 (too slow to reach in a test; the distinct fibers are what prevents it). */
static void *seq_last_fiber;
#endif

static void seq_body(void *arg)
{
    seq_runs++;
    ASSERT_EQ(swoop_co_id(), (int64_t)(intptr_t)arg);
#ifdef UNDER_TSAN
    void *fiber = __tsan_get_current_fiber();
    ASSERT(fiber != seq_last_fiber);
    seq_last_fiber = fiber;
#endif
}

#ifdef UNDER_TSAN
/* TSan makes a fiber per coroutine (about 2 ms each here): fewer, same checks. */
enum { SEQ = 2000 };
#else
enum { SEQ = 100000 };
#endif

TEST(hundred_thousand_sequential_reuse_one_stack)
{
    swoop_co_stats_t st;
    swoop_co_stats(&st);
    int64_t first = 0;
    for (int i = 0; i < SEQ; i++) {
        int64_t id = swoop_co_go(seq_body, (void *)(intptr_t)(st.created + 1 + (uint64_t)i));
        ASSERT_GT(id, 0);
        if (i == 0)
            first = id;
        else
            ASSERT_EQ(id, first + i);
    }
    ASSERT_EQ(seq_runs, SEQ);
    swoop_co_stats(&st);
    ASSERT_UEQ(st.live, 0);
    ASSERT_UEQ(st.mapped, 1); /* one stack, taken from and returned to the pool each time */
    ASSERT_UEQ(st.pooled, 1);
    ASSERT_EQ(swoop_co_id(), 0);
}

#ifdef UNDER_TSAN
/* TSan's state per fiber costs ~2 ms each on the 2-core test machine. */
enum { CONC = 2000 };
#else
enum { CONC = 10000 };
#endif
static int conc_done;
static int conc_maps_peak;

static void conc_body(void *arg)
{
    ASSERT_OK(swoop_co_sleep(20));
    conc_done++;
}

static void conc_main(void *arg)
{
    int before = count_maps();
    for (int i = 0; i < CONC; i++)
        ASSERT_GT(swoop_co_go(conc_body, NULL), 0);
    conc_maps_peak = count_maps() - before;
}

TEST(ten_thousand_concurrent_with_guard_pages)
{
    /* 64 KiB stacks: ASan sizes each coroutine's fake stack after its real one, and
     * 10,000 fake stacks for 256 KiB stacks cost seconds of page faults. */
    swoop_co_options_t o = {.stack_size = 64 * 1024};
    ASSERT_OK(swoop_co_set_options(&o));
    ASSERT_OK(swoop_co_run(conc_main, NULL));
    ASSERT_EQ(conc_done, CONC);
    swoop_co_stats_t st;
    swoop_co_stats(&st);
    ASSERT_UGE(st.peak, CONC);
    ASSERT_UEQ(st.live, 0);
    /* Two mappings per stack while they all live: the stack and its guard. */
    ASSERT_GE(conc_maps_peak, 2 * CONC - 100);
    /* Past the pool's cap the stacks are unmapped again, by a timer, in batches. */
    ASSERT_UGE(st.pooled, SWOOP_CO_POOL_DEFAULT);
    ASSERT_OK(swoop_loop_run(swoop_loop_default()));
    swoop_co_stats(&st);
    ASSERT_UEQ(st.pooled, SWOOP_CO_POOL_DEFAULT);
    ASSERT_UEQ(st.mapped, SWOOP_CO_POOL_DEFAULT);
}

static void sleeper_body(void *arg)
{
    uint64_t t0 = swoop_test_now_ms();
    ASSERT_OK(swoop_co_sleep(50));
    uint64_t took = swoop_test_now_ms() - t0;
    ASSERT_UGE(took, 50);
    ASSERT_ULE(took, 50 + 250 * swoop_test_multiplier());
    *(int *)arg += 1;
}

TEST(sleep_bounds_and_state_errors)
{
    int n = 0;
    ASSERT_EQ(swoop_co_sleep(10), SWOOP_ESTATE);
    ASSERT_EQ(swoop_co_id(), 0);
    ASSERT_EQ(swoop_co_go(NULL, NULL), SWOOP_EINVAL);
    ASSERT_OK(swoop_co_run(sleeper_body, &n));
    ASSERT_EQ(n, 1);
}

static void nested_run(void *arg)
{
    ASSERT_EQ(swoop_co_run(seq_body, NULL), SWOOP_ESTATE);
    *(int *)arg = 1;
}

TEST(run_inside_a_coroutine_is_refused)
{
    int ran = 0;
    ASSERT_OK(swoop_co_run(nested_run, &ran));
    ASSERT_EQ(ran, 1);
}

static int cancel_rc = 1;
static int64_t cancel_target;

static void cancel_victim(void *arg)
{
    cancel_rc = swoop_co_sleep(10000);
}

static void cancel_killer(int64_t id, void *arg)
{
    ASSERT_OK(swoop_co_cancel(cancel_target));
    ASSERT_EQ(cancel_rc, SWOOP_ECANCELED); /* it ran before cancel returned */
}

TEST(cancel_wakes_a_sleeper_with_ecanceled)
{
    uint64_t t0 = swoop_test_now_ms();
    cancel_target = swoop_co_go(cancel_victim, NULL);
    ASSERT_GT(cancel_target, 0);
    ASSERT_GT(swoop_timer_after(20, cancel_killer, NULL), 0);
    ASSERT_OK(swoop_loop_run(swoop_loop_default()));
    ASSERT_EQ(cancel_rc, SWOOP_ECANCELED);
    ASSERT_ULE(swoop_test_now_ms() - t0, 2000);
    ASSERT_EQ(swoop_co_cancel(cancel_target), SWOOP_ENOENT); /* ended */
    ASSERT_EQ(swoop_co_cancel(0), SWOOP_ENOENT);
    ASSERT_OK(swoop_loop_free(swoop_loop_default()));
}

static void self_cancel(void *arg)
{
    ASSERT_OK(swoop_co_cancel(swoop_co_id()));
    /* Not waiting when cancelled: the next waiting call reports it, once. */
    ASSERT_EQ(swoop_co_sleep(1000), SWOOP_ECANCELED);
    ASSERT_OK(swoop_co_sleep(1));
    *(int *)arg = 1;
}

TEST(cancel_while_running_hits_the_next_wait)
{
    int done = 0;
    ASSERT_OK(swoop_co_run(self_cancel, &done));
    ASSERT_EQ(done, 1);
}

static void forever(void *arg)
{
    swoop_co_chan_t *ch = arg;
    void *item;
    ASSERT_EQ(swoop_co_chan_pop(ch, &item, -1), SWOOP_ECLOSED);
}

TEST(run_reports_a_deadlock)
{
    swoop_co_chan_t *ch;
    ASSERT_OK(swoop_co_chan_new(&ch, 0));
    ASSERT_EQ(swoop_co_run(forever, ch), SWOOP_EDEADLK);
    /* Release the parked coroutine so nothing leaks. */
    ASSERT_OK(swoop_co_chan_close(ch));
    ASSERT_OK(swoop_co_chan_free(ch));
    swoop_co_stats_t st;
    swoop_co_stats(&st);
    ASSERT_UEQ(st.live, 0);
}

TEST(options_and_no_guard_page)
{
    swoop_co_options_t o = {.stack_size = 1000};
    ASSERT_EQ(swoop_co_set_options(&o), SWOOP_EINVAL);
    int grown[2];
    for (int guard = 0; guard < 2; guard++) {
        o.stack_size = 64 * 1024;
        o.no_guard_page = !guard;
        ASSERT_OK(swoop_co_set_options(&o)); /* also unmaps the pooled stacks */
        int before = count_maps();
        swoop_co_chan_t *ch;
        ASSERT_OK(swoop_co_chan_new(&ch, 0));
        for (int i = 0; i < 50; i++)
            ASSERT_GT(swoop_co_go(forever, ch), 0);
        grown[guard] = count_maps() - before;
        swoop_co_stats_t st;
        swoop_co_stats(&st);
        ASSERT_UEQ(st.stack_size, 64 * 1024);
        ASSERT_OK(swoop_co_chan_close(ch));
        ASSERT_OK(swoop_co_chan_free(ch));
    }
    /* Where the kernel has guard regions (MADV_GUARD_INSTALL, Linux 6.13+) the guard
     * costs no mapping; elsewhere the mprotect'ed guard page splits each stack's mapping in
     * two: one more per stack (ASan may add mappings of its own per coroutine, the same in
     * both; TSan's per-fiber mappings come and go, so the count says nothing there). */
    void *probe = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT(probe != MAP_FAILED);
    int regions = madvise(probe, 4096, 102 /* MADV_GUARD_INSTALL */) == 0;
    munmap(probe, 8192);
    printf("# mappings for 50 stacks: %d without guard pages, %d with (guard %s)\n", grown[0],
           grown[1], regions ? "regions" : "pages by mprotect");
#ifndef UNDER_TSAN
    if (regions)
        ASSERT_LE(grown[1] - grown[0], 5);
    else
        ASSERT_GE(grown[1] - grown[0], 45);
#endif
}

/* Past vm.max_map_count a new stack fails with SWOOP_ENOMEM, never a crash. The test
 * fills the map count with one-page mappings of alternating protection (so the kernel
 * cannot merge them), leaving room for a few stacks only. */
TEST_TIMEOUT(map_count_exhaustion_is_an_error, 120)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    /* At the limit the sanitizer's own allocator cannot map either and dies first. */
    printf("# skipped under a sanitizer; runs in plain builds\n");
    return;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    printf("# skipped under a sanitizer; runs in plain builds\n");
    return;
#endif
#endif
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    ASSERT_NOT_NULL(f);
    long max = 0;
    ASSERT_EQ(fscanf(f, "%ld", &max), 1);
    fclose(f);
    if (max > 300000) {
        printf("# vm.max_map_count %ld too high to exhaust cheaply; skipped\n", max);
        return;
    }
    swoop_co_chan_t *ch;
    ASSERT_OK(swoop_co_chan_new(&ch, 0));
    ASSERT_GT(swoop_co_go(forever, ch), 0); /* scheduler, altstack and a stack exist */
    long page = 4096;
    char *hint = NULL;
    long filled = 0;
    long target = max - count_maps() - 60;
    for (long i = 0; i < target; i++) {
        void *p = mmap(NULL, (size_t)page, (i & 1) ? PROT_READ : PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            break;
        if (hint == NULL)
            hint = p;
        filled++;
    }
    int made = 0, err = 0;
    for (int i = 0; i < 200; i++) {
        int64_t id = swoop_co_go(forever, ch);
        if (id < 0) {
            err = (int)id;
            break;
        }
        made++;
    }
    ASSERT_EQ(err, SWOOP_ENOMEM);
    ASSERT_LT(made, 200);
    printf("# %ld filler mappings, %d stacks fit before SWOOP_ENOMEM\n", filled, made);
    ASSERT_OK(swoop_co_chan_close(ch));
    ASSERT_OK(swoop_co_chan_free(ch));
}
