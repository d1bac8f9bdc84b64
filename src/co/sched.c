/*
 * The per-thread coroutine scheduler: stacks (mmap + guard page, pooled),
 * starting and ending coroutines, the wait/wake primitive on the default
 * loop, cancel, and the SIGSEGV handler that names a coroutine whose stack
 * overflowed into its guard page.
 *
 * Control flow is a chain: resuming a coroutine records who resumed it (its
 * origin) and a coroutine that waits or ends switches back to its origin.
 * The loop resumes waiting coroutines from the thread's own stack; a waker
 * inside a coroutine (channel push, cancel) resumes the woken one nested.
 * A finished coroutine cannot free the stack it runs on, so its origin
 * releases it right after the switch back (co_resume).
 */
#include <swoop/co.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <swoop/alloc.h>
#include <swoop/error.h>
#include <swoop/log.h>
#include <swoop/timer.h>

#include "co/internal.h"
#include "event/internal.h"

#ifdef SWOOP_CO_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef SWOOP_CO_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

static _Thread_local swoop_co_sched_t *tls_sched;
static pthread_key_t sched_key;
static pthread_once_t sched_once = PTHREAD_ONCE_INIT;
static struct sigaction old_segv;

static void on_segv(int sig, siginfo_t *si, void *uctx);
static void co_release(swoop_co_sched_t *s, swoop_co_t *co);

/* ---- stacks ------------------------------------------------------------ */

static void stack_unmap(swoop_co_sched_t *s, swoop_co_t *co)
{
    void *map = co->map;
    size_t len = co->map_len;
#ifdef SWOOP_CO_ASAN
    /* Frames that never returned (the switch out of a finished coroutine)
     * leave poisoned shadow behind; clear it before the pages go. */
    ASAN_UNPOISON_MEMORY_REGION(co->stack_lo, (size_t)((char *)co - co->stack_lo));
#endif
#ifdef SWOOP_CO_TSAN
    /* The last coroutine's fiber stays with its stack while pooled. */
    if (co->tsan_fiber)
        __tsan_destroy_fiber(co->tsan_fiber);
#endif
    s->mapped--;
    munmap(map, len);
}

static void pool_drain(swoop_co_sched_t *s)
{
    while (s->pool) {
        swoop_co_t *co = s->pool;
        s->pool = co->pool_next;
        s->pooled--;
        stack_unmap(s, co);
    }
}

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

/*
 * Makes [p, p + len) a guard: a guard region (MADV_GUARD_INSTALL, Linux
 * 6.13+: markers in the page tables, the mapping stays one VMA) where the
 * kernel has them, else a PROT_NONE page by mprotect, which splits the
 * mapping in two: each guarded stack then costs two of vm.max_map_count's
 * mappings instead of one. Either way a touch raises SIGSEGV. 0 or -1
 * (errno set).
 */
static int guard_install(void *p, size_t len)
{
    static _Atomic int no_guard_regions; /* learned once per process */
    if (!atomic_load_explicit(&no_guard_regions, memory_order_relaxed)) {
        if (madvise(p, len, MADV_GUARD_INSTALL) == 0)
            return 0;
        if (errno != EINVAL)
            return -1;
        atomic_store_explicit(&no_guard_regions, 1, memory_order_relaxed);
    }
    return mprotect(p, len, PROT_NONE);
}

/* A coroutine record on a stack of the configured size: from the pool, or a
 * fresh mapping. Returns NULL and sets *err (SWOOP_ENOMEM) on failure. */
static swoop_co_t *co_alloc(swoop_co_sched_t *s, int *err)
{
    if (s->pool) {
        swoop_co_t *co = s->pool;
        s->pool = co->pool_next;
        s->pooled--;
        return co;
    }
    size_t size = s->opt.stack_size;
    size_t guard = s->opt.no_guard_page ? 0 : s->page;
    size_t len = size + guard;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED) {
        int e = errno;
        swoop_log(SWOOP_LOG_ERROR, e,
                  "coroutine stack: mmap of %zu bytes failed (%llu stacks mapped; memory or "
                  "vm.max_map_count exhausted?)",
                  len, (unsigned long long)s->mapped);
        *err = e == ENOMEM ? SWOOP_ENOMEM : -e;
        return NULL;
    }
    if (guard && guard_install(map, guard) != 0) {
        /* Splitting the mapping in two is what runs into vm.max_map_count. */
        int e = errno;
        munmap(map, len);
        swoop_log(SWOOP_LOG_ERROR, e,
                  "coroutine stack: the guard page failed (%llu stacks mapped; "
                  "vm.max_map_count exhausted? see no_guard_page)",
                  (unsigned long long)s->mapped);
        *err = e == ENOMEM ? SWOOP_ENOMEM : -e;
        return NULL;
    }
    /* The record sits at the top of the stack, 64-byte aligned. */
    uintptr_t top = (uintptr_t)map + len;
    swoop_co_t *co = (swoop_co_t *)((top - sizeof(swoop_co_t)) & ~(uintptr_t)63);
    memset(co, 0, sizeof(*co));
    co->map = map;
    co->map_len = len;
    co->guard = guard;
    co->stack_lo = map + guard;
    co->stack_size = size;
    s->mapped++;
    return co;
}

/* ---- the scheduler ----------------------------------------------------- */

static void sched_destroy(void *p)
{
    swoop_co_sched_t *s = p;
    if (s == NULL)
        return;
    pool_drain(s);
    swoop__idmap_free(&s->by_id);
    if (s->altstack) {
        stack_t off = {.ss_flags = SS_DISABLE};
        sigaltstack(&off, NULL);
        munmap(s->altstack, s->altstack_len);
    }
#ifdef SWOOP_CO_TSAN
    s->main.tsan_fiber = NULL;
#endif
    if (tls_sched == s)
        tls_sched = NULL;
    swoop_free(s);
}

static void sched_once_init(void)
{
    pthread_key_create(&sched_key, sched_destroy);
    /* The overflow reporter: process-wide, chained to whatever handler was
     * there (a sanitizer's, or the default). */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
}

swoop_co_sched_t *swoop__co_sched(void)
{
    if (tls_sched)
        return tls_sched;
    pthread_once(&sched_once, sched_once_init);
    swoop_co_sched_t *s = swoop_calloc(1, sizeof(*s));
    long page = sysconf(_SC_PAGESIZE);
    s->page = page > 0 ? (size_t)page : 4096;
    s->opt.stack_size = SWOOP_CO_STACK_DEFAULT;
    s->opt.pool_max = SWOOP_CO_POOL_DEFAULT;
    swoop__idmap_init(&s->by_id);
#ifdef SWOOP_CO_TSAN
    s->main.tsan_fiber = __tsan_get_current_fiber();
#endif
    /* A signal on a stack that just overflowed needs a stack of its own.
     * Keep an alternate stack someone (a sanitizer) already set up. */
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && (cur.ss_flags & SS_DISABLE)) {
        size_t len = 64 * 1024;
        void *alt = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (alt != MAP_FAILED) {
            stack_t ss = {.ss_sp = alt, .ss_size = len, .ss_flags = 0};
            if (sigaltstack(&ss, NULL) == 0) {
                s->altstack = alt;
                s->altstack_len = len;
            } else {
                munmap(alt, len);
            }
        }
        if (s->altstack == NULL)
            swoop_log(SWOOP_LOG_WARNING, errno,
                      "coroutines: no alternate signal stack; a stack overflow will not be "
                      "reported");
    }
    tls_sched = s;
    pthread_setspecific(sched_key, s);
    return s;
}

swoop_co_t *swoop__co_current(void)
{
    return tls_sched ? tls_sched->current : NULL;
}

/* ---- switching --------------------------------------------------------- */

#ifdef SWOOP_CO_UCONTEXT
static void uc_entry(unsigned lo, unsigned hi);
#endif
static void co_entry(void *p);

static void stack_bounds(swoop_co_sched_t *s, swoop_co_t *co, const void **bottom, size_t *size)
{
    if (co == &s->main) {
        *bottom = s->main.stack_lo;
        *size = s->main.stack_size;
    } else {
        *bottom = co->stack_lo;
        *size = (size_t)((char *)co - co->stack_lo);
    }
}

/* Runs on the context that was just switched to. */
static void after_switch(swoop_co_sched_t *s, void *fake)
{
#ifdef SWOOP_CO_ASAN
    const void *bottom = NULL;
    size_t size = 0;
    __sanitizer_finish_switch_fiber(fake, &bottom, &size);
    if (s->switch_from == &s->main) {
        s->main.stack_lo = (char *)(uintptr_t)bottom;
        s->main.stack_size = size;
    }
#else
    (void)s;
    (void)fake;
#endif
}

static void co_jump(swoop_co_sched_t *s, swoop_co_t *from, swoop_co_t *to, int from_ends)
{
    void *fake = NULL;
    s->switch_from = from;
#ifdef SWOOP_CO_ASAN
    const void *bottom;
    size_t size;
    stack_bounds(s, to, &bottom, &size);
    /* A finished coroutine whose stack is pooled keeps ASan's fake stack
     * for the next coroutine on it (making one costs an mmap, and dropping
     * it an munmap, per coroutine); NULL makes ASan drop it. */
    void **save = &fake;
    if (from_ends)
        save = from->keep ? &from->asan_fake : NULL;
    __sanitizer_start_switch_fiber(save, bottom, size);
#else
    (void)from_ends;
    (void)stack_bounds;
#endif
#ifdef SWOOP_CO_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
#ifdef SWOOP_CO_UCONTEXT
    swapcontext(&from->ctx.uc, &to->ctx.uc);
#else
    swoop__co_switch(&from->ctx.sp, to->ctx.sp);
#endif
    after_switch(s, fake);
}

static void co_resume(swoop_co_sched_t *s, swoop_co_t *co)
{
    swoop_co_t *from = s->current ? s->current : &s->main;
    co->origin = from;
    co->state = CO_RUNNING;
    s->current = co;
    co_jump(s, from, co, 0);
    /* Back here: `co` waits or has ended. */
    s->current = from == &s->main ? NULL : from;
    if (co->state == CO_DEAD)
        co_release(s, co);
}

static void co_entry(void *p)
{
    swoop_co_t *co = p;
    swoop_co_sched_t *s = tls_sched;
#ifdef SWOOP_CO_ASAN
    after_switch(s, co->asan_fake);
    co->asan_fake = NULL;
#else
    after_switch(s, NULL);
#endif
    co->fn(co->arg);
    co->state = CO_DEAD;
    size_t guard = s->opt.no_guard_page ? 0 : s->page;
    co->keep = co->stack_size == s->opt.stack_size && co->guard == guard;
    swoop__idmap_del(&s->by_id, co->id);
    s->live--;
    co_jump(s, co, co->origin, 1);
    __builtin_unreachable();
}

#ifdef SWOOP_CO_UCONTEXT
static void uc_entry(unsigned lo, unsigned hi)
{
    co_entry((void *)(((uintptr_t)hi << 32) | (uintptr_t)lo));
}
#endif

/*
 * Stacks beyond pool_max are unmapped by a timer, a batch at a time, not
 * when their coroutines end: munmap flushes TLBs (slow, more so in a VM),
 * and a burst of thousands of coroutines ending in one loop pass would
 * otherwise pay it all before the loop answers anything else.
 */
enum { TRIM_MS = 100, TRIM_BATCH = 256 };

static void trim_cb(int64_t id, void *arg)
{
    swoop_co_sched_t *s = tls_sched;
    s->trim_timer = 0;
    for (int i = 0; i < TRIM_BATCH && s->pooled > s->opt.pool_max && s->pool; i++) {
        swoop_co_t *co = s->pool;
        s->pool = co->pool_next;
        s->pooled--;
        stack_unmap(s, co);
    }
    if (s->pooled > s->opt.pool_max) {
        swoop_loop_t *loop = swoop_loop_default();
        int64_t t = loop ? swoop__loop_timer_after_lib(loop, TRIM_MS, trim_cb, NULL) : -1;
        s->trim_timer = t > 0 ? t : 0;
    }
}

static void trim_arm(swoop_co_sched_t *s)
{
    swoop_loop_t *loop = swoop_loop_default();
    swoop_timer_info_t info;
    if (loop == NULL)
        return;
    /* A freed loop drops its timers: check that ours is still there. */
    if (s->trim_timer && swoop_loop_timer_info(loop, s->trim_timer, &info) == 0)
        return;
    int64_t t = swoop__loop_timer_after_lib(loop, TRIM_MS, trim_cb, NULL);
    s->trim_timer = t > 0 ? t : 0;
}

static void co_release(swoop_co_sched_t *s, swoop_co_t *co)
{
    if (co->keep) {
#ifdef SWOOP_CO_ASAN
        /* Every frame returned except the top few (entry, the last
         * switch): clear the top of the stack only, which keeps a pooled
         * start cheap under ASan too. */
        size_t usable = (size_t)((char *)co - co->stack_lo);
        size_t top = usable < 32768 ? usable : 32768;
        ASAN_UNPOISON_MEMORY_REGION((char *)co - top, top);
#endif
        co->pool_next = s->pool;
        s->pool = co;
        s->pooled++;
        if (s->pooled > s->opt.pool_max)
            trim_arm(s);
    } else {
        stack_unmap(s, co);
    }
}

/* ---- public: start, run, id -------------------------------------------- */

int64_t swoop_co_go(swoop_co_fn fn, void *arg)
{
    if (fn == NULL)
        return SWOOP_EINVAL;
    swoop_co_sched_t *s = swoop__co_sched();
    int err = SWOOP_ENOMEM;
    swoop_co_t *co = co_alloc(s, &err);
    if (co == NULL)
        return err;
    co->id = ++s->next_id;
    co->fn = fn;
    co->arg = arg;
    co->state = CO_RUNNING;
    co->cancel_pending = 0;
    co->timer_id = 0;
    co->unlink = NULL;
    co->wait_obj = NULL;
    co->origin = NULL;
    size_t usable = (size_t)((char *)co - co->stack_lo);
#ifdef SWOOP_CO_UCONTEXT
    getcontext(&co->ctx.uc);
    co->ctx.uc.uc_stack.ss_sp = co->stack_lo;
    co->ctx.uc.uc_stack.ss_size = usable;
    co->ctx.uc.uc_link = NULL;
    uintptr_t p = (uintptr_t)co;
    makecontext(&co->ctx.uc, (void (*)(void))uc_entry, 2, (unsigned)(p & 0xffffffffu),
                (unsigned)(p >> 32));
#else
    co->ctx.sp = swoop__co_make(co->stack_lo, usable, co_entry, co);
#endif
#ifdef SWOOP_CO_TSAN
    /*
     * A new fiber for every coroutine, even on a pooled stack: the last one
     * never returned from its entry function (it switched away at its end),
     * so reusing its fiber would stack one more frame in TSan's shadow call
     * stack per coroutine, until TSan dies of it (about 65,000 later).
     */
    /* Made before the old one goes, so the two never share an address. */
    void *old_fiber = co->tsan_fiber;
    co->tsan_fiber = __tsan_create_fiber(0);
    if (old_fiber)
        __tsan_destroy_fiber(old_fiber);
#endif
    swoop__idmap_put(&s->by_id, co->id, co);
    s->live++;
    s->created++;
    if (s->live > s->peak)
        s->peak = s->live;
    int64_t id = co->id;
    co_resume(s, co);
    return id;
}

int64_t swoop_co_id(void)
{
    swoop_co_t *co = swoop__co_current();
    return co ? co->id : 0;
}

int swoop_co_run(swoop_co_fn fn, void *arg)
{
    if (swoop__co_current())
        return SWOOP_ESTATE;
    swoop_loop_t *loop = swoop_loop_default();
    if (loop == NULL)
        return SWOOP_ENOMEM;
    int64_t id = swoop_co_go(fn, arg);
    if (id < 0)
        return (int)id;
    swoop_co_sched_t *s = tls_sched;
    while (s->live > 0) {
        int rc = swoop_loop_run_once(loop);
        if (rc < 0)
            return rc;
        if (rc == 0 && s->live > 0) {
            swoop_log(SWOOP_LOG_ERROR, 0,
                      "swoop_co_run: %llu coroutines wait for what nothing can bring "
                      "(no timer, watcher or post left on the loop)",
                      (unsigned long long)s->live);
            return SWOOP_EDEADLK;
        }
    }
    return 0;
}

int swoop_co_set_options(const swoop_co_options_t *opt)
{
    if (opt == NULL)
        return SWOOP_EINVAL;
    size_t size = opt->stack_size ? opt->stack_size : SWOOP_CO_STACK_DEFAULT;
    if (size < SWOOP_CO_STACK_MIN || size > ((size_t)1 << 30))
        return SWOOP_EINVAL;
    swoop_co_sched_t *s = swoop__co_sched();
    size = (size + s->page - 1) & ~(s->page - 1);
    s->opt.stack_size = size;
    s->opt.no_guard_page = opt->no_guard_page ? 1 : 0;
    s->opt.pool_max = opt->pool_max ? opt->pool_max : SWOOP_CO_POOL_DEFAULT;
    pool_drain(s);
    return 0;
}

void swoop_co_stats(swoop_co_stats_t *out)
{
    swoop_co_sched_t *s = swoop__co_sched();
    out->live = s->live;
    out->peak = s->peak;
    out->created = s->created;
    out->pooled = s->pooled;
    out->mapped = s->mapped;
    out->stack_size = s->opt.stack_size;
}

/* ---- wait, wake, cancel ------------------------------------------------ */

static void on_wait_timeout(int64_t id, void *arg)
{
    swoop_co_t *co = arg;
    co->timer_id = 0;
    if (co->unlink)
        co->unlink(co);
    swoop__co_wake(co, SWOOP_ETIMEDOUT);
}

int swoop__co_wait(int64_t timeout_ms, swoop_co_unlink_fn unlink)
{
    swoop_co_sched_t *s = tls_sched;
    swoop_co_t *co = s ? s->current : NULL;
    if (co == NULL) {
        return SWOOP_ESTATE;
    }
    if (co->cancel_pending) {
        co->cancel_pending = 0;
        if (unlink)
            unlink(co);
        return SWOOP_ECANCELED;
    }
    if (timeout_ms == 0) {
        if (unlink)
            unlink(co);
        return SWOOP_ETIMEDOUT;
    }
    if (timeout_ms > 0) {
        swoop_loop_t *loop = swoop_loop_default();
        int64_t id = loop ? swoop__loop_timer_after_lib(loop, timeout_ms, on_wait_timeout, co)
                          : SWOOP_ENOMEM;
        if (id < 0) {
            if (unlink)
                unlink(co);
            return (int)id;
        }
        co->timer_id = id;
    }
    co->unlink = unlink;
    co->state = CO_WAITING;
    co_jump(s, co, co->origin, 0);
    return co->wait_result;
}

void swoop__co_wake(swoop_co_t *co, int result)
{
    swoop_co_sched_t *s = tls_sched;
    if (co->timer_id) {
        swoop_loop_timer_clear(swoop_loop_default(), co->timer_id);
        co->timer_id = 0;
    }
    co->unlink = NULL;
    co->wait_obj = NULL;
    co->wait_result = result;
    co_resume(s, co);
}

int swoop_co_cancel(int64_t id)
{
    swoop_co_sched_t *s = swoop__co_sched();
    swoop_co_t *co = id > 0 ? swoop__idmap_get(&s->by_id, id) : NULL;
    if (co == NULL)
        return SWOOP_ENOENT;
    if (co->state == CO_WAITING) {
        if (co->unlink)
            co->unlink(co);
        swoop__co_wake(co, SWOOP_ECANCELED);
    } else {
        co->cancel_pending = 1;
    }
    return 0;
}

int swoop_co_sleep(int64_t ms)
{
    if (swoop__co_current() == NULL)
        return SWOOP_ESTATE;
    if (ms <= 0)
        return 0;
    int rc = swoop__co_wait(ms, NULL);
    return rc == SWOOP_ETIMEDOUT ? 0 : rc;
}

/* ---- the overflow reporter --------------------------------------------- */

static size_t fmt_u64(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        p[i] = tmp[n - 1 - i];
    return n;
}

static size_t fmt_str(char *p, const char *str)
{
    size_t n = strlen(str);
    memcpy(p, str, n);
    return n;
}

/*
 * Only async-signal-safe work: read the thread's running coroutine, compare
 * the fault address with its guard page, format by hand, one write(2).
 * A fault that is not ours goes to the previous handler. Ours restores the
 * default action and returns: the faulting instruction runs again and the
 * process dies of SIGSEGV, as it would have without coroutines.
 */
static void on_segv(int sig, siginfo_t *si, void *uctx)
{
    swoop_co_sched_t *s = tls_sched;
    swoop_co_t *co = s ? s->current : NULL;
    uintptr_t addr = (uintptr_t)si->si_addr;
    if (co && co->guard) {
        uintptr_t lo = (uintptr_t)co->map;
        uintptr_t hi = lo + co->guard;
        /* A frame larger than the guard page can step past it: accept
         * faults up to 64 KiB below too. */
        if (addr < hi && addr + 65536 >= lo) {
            char msg[192];
            size_t n = 0;
            n += fmt_str(msg + n, "swoop: coroutine ");
            n += fmt_u64(msg + n, (uint64_t)co->id);
            n += fmt_str(msg + n, " overflowed its ");
            n += fmt_u64(msg + n, co->stack_size);
            n += fmt_str(msg + n, "-byte stack (pid ");
            n += fmt_u64(msg + n, (uint64_t)getpid());
            n += fmt_str(msg + n, "); raising SIGSEGV\n");
            ssize_t w = write(swoop_log_fd(), msg, n);
            (void)w;
            struct sigaction dfl;
            memset(&dfl, 0, sizeof(dfl));
            dfl.sa_handler = SIG_DFL;
            sigemptyset(&dfl.sa_mask);
            sigaction(SIGSEGV, &dfl, NULL);
            return;
        }
    }
    if ((old_segv.sa_flags & SA_SIGINFO) && old_segv.sa_sigaction) {
        old_segv.sa_sigaction(sig, si, uctx);
        return;
    }
    if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN) {
        old_segv.sa_handler(sig);
        return;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGSEGV, &dfl, NULL);
    /* A fault runs its instruction again on return; a SIGSEGV sent by
     * kill() or raise() does not, so send it again (it stays blocked until
     * this handler returns, then kills with the default action). */
    if (si->si_code <= 0)
        raise(sig);
}
