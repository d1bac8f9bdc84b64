/*
 * The manager loop (see manager.h), after nginx's ngx_master_process_cycle.
 *
 * Signals: every signal the manager acts on is blocked except inside
 * sigsuspend(), and its handler only sets a volatile sig_atomic_t flag; the
 * loop then acts on the flags in normal context. Because the signals can
 * only arrive inside sigsuspend, a flag can never be set between the last
 * check and going to sleep. Timers (user timers, restart back-off, SIGKILL
 * deadlines) live on the default loop driven by the alarm driver: SIGALRM
 * is blocked the same way and interrupts sigsuspend like the others.
 *
 * Restart policy: a current process that exits unexpectedly is restarted
 * with the same id; if it died within SWOOP_MANAGER_QUICK_DEATH_MS of its
 * fork, consecutive such deaths delay the restart (0, min, 2*min, ... up to
 * max), so a broken worker cannot become a fork storm. Expected exits
 * (reload, max_request) restart at once. Exit code SWOOP_EXIT_FATAL never
 * restarts.
 *
 * Stopping a process always means SIGTERM plus a timer that SIGKILLs it
 * after max_wait_ms (and says so in the log), whether for reload,
 * max_request or shutdown. At shutdown every deadline starts together, but
 * task workers (SWOOP_SLOT_TASK) get their SIGTERM only once every other
 * process is gone: the event workers' last requests may still post tasks.
 */
#include "proc/manager.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <swoop/process.h>
#include <swoop/timer.h>

#include "base/internal.h"

static volatile sig_atomic_t flag_child;
static volatile sig_atomic_t flag_term;
static volatile sig_atomic_t flag_reload_all;
static volatile sig_atomic_t flag_reload_task;
static volatile sig_atomic_t flag_retire;
static volatile sig_atomic_t flag_reopen;

/* The manager running in this process; timer callbacks find it here. */
static swoop_manager_t *current_mgr;

const int swoop__manager_signals[] = {SIGCHLD, SIGTERM, SIGINT, SIGQUIT,
                                      SIGUSR1, SIGUSR2, SIGIO,  0 /* SIGRTMIN, set at run */};
const int swoop__manager_signal_count = (int)SWOOP_ARRAY_SIZE(swoop__manager_signals) - 1;

static void manager_spawn(swoop_manager_t *mgr, int id);
static void manager_reload_step(swoop_manager_t *mgr);
static void manager_stop_tasks(swoop_manager_t *mgr, int force);
static void on_task_term_timer(int64_t timer_id, void *arg);

/* Shutdown: task workers get their SIGTERM this long before the deadline at the latest. */
#define TASK_TERM_MARGIN_MS 250

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void on_signal(int signo)
{
    switch (signo) {
    case SIGCHLD:
        flag_child = 1;
        break;
    case SIGTERM:
    case SIGINT:
    case SIGQUIT:
        flag_term = 1;
        break;
    case SIGUSR1:
        flag_reload_all = 1;
        break;
    case SIGUSR2:
        flag_reload_task = 1;
        break;
    case SIGIO:
        flag_retire = 1;
        break;
    default:
        if (signo == SIGRTMIN)
            flag_reopen = 1;
        break;
    }
}

void swoop__manager_request_shutdown(void)
{
    flag_term = 1;
}

void swoop__manager_request_reload(int task_only)
{
    if (task_only)
        flag_reload_task = 1;
    else
        flag_reload_all = 1;
}

int swoop__manager_init(swoop_manager_t *mgr, int worker_num, const swoop_manager_hooks_t *hooks)
{
    memset(mgr, 0, sizeof(*mgr));
    mgr->worker_num = worker_num;
    mgr->hooks = *hooks;
    mgr->max_wait_ms = 3000;
    mgr->reload_async = 1;
    mgr->backoff_min_ms = 10;
    mgr->backoff_max_ms = 3000;
    mgr->slots = swoop_calloc((size_t)worker_num, sizeof(*mgr->slots));
    return 0;
}

void swoop__manager_destroy(swoop_manager_t *mgr)
{
    swoop_free(mgr->slots);
    swoop_free(mgr->detached);
    swoop_free(mgr->reload_queue);
    mgr->slots = NULL;
    mgr->detached = NULL;
    mgr->reload_queue = NULL;
}

void swoop__manager_set_flags(swoop_manager_t *mgr, int id, unsigned flags)
{
    if (id >= 0 && id < mgr->worker_num)
        mgr->slots[id].flags = flags;
}

int swoop__manager_backoff_ms(const swoop_manager_t *mgr, int fails)
{
    if (fails <= 1)
        return 0; /* a single crash restarts at once */
    int64_t d = mgr->backoff_min_ms;
    for (int i = 2; i < fails && d < mgr->backoff_max_ms; i++)
        d *= 2;
    return (int)(d < mgr->backoff_max_ms ? d : mgr->backoff_max_ms);
}

/* ---- kill deadlines ---- */

static int find_detached(swoop_manager_t *mgr, pid_t pid)
{
    for (int i = 0; i < mgr->ndetached; i++) {
        if (mgr->detached[i].pid == pid)
            return i;
    }
    return -1;
}

static int find_slot(swoop_manager_t *mgr, pid_t pid)
{
    for (int i = 0; i < mgr->worker_num; i++) {
        if (mgr->slots[i].pid == pid)
            return i;
    }
    return -1;
}

static void on_kill_deadline(int64_t timer_id, void *arg)
{
    swoop_manager_t *mgr = current_mgr;
    pid_t pid = (pid_t)(intptr_t)arg;
    if (mgr == NULL)
        return;
    int id = -1;
    int i = find_slot(mgr, pid);
    if (i >= 0 && mgr->slots[i].kill_timer == timer_id) {
        mgr->slots[i].kill_timer = 0;
        id = i;
    } else if ((i = find_detached(mgr, pid)) >= 0 && mgr->detached[i].kill_timer == timer_id) {
        mgr->detached[i].kill_timer = 0;
        id = mgr->detached[i].id;
    } else {
        return; /* already reaped */
    }
    swoop_log(SWOOP_LOG_WARNING, 0,
              "worker(pid=%d, id=%d) did not exit within max_wait_time (%d ms): exit timeout, "
              "forced kill (SIGKILL)",
              (int)pid, id, mgr->max_wait_ms);
    if (kill(pid, SIGKILL) < 0 && errno != ESRCH)
        swoop_log(SWOOP_LOG_ERROR, errno, "kill(%d, SIGKILL) failed", (int)pid);
}

static int64_t arm_kill(swoop_manager_t *mgr, pid_t pid)
{
    int64_t id = swoop_timer_after(mgr->max_wait_ms > 0 ? mgr->max_wait_ms : 1, on_kill_deadline,
                                   (void *)(intptr_t)pid);
    if (id < 0) {
        swoop_log(SWOOP_LOG_ERROR, (int)id, "cannot arm the kill timer of pid %d: killing now",
                  (int)pid);
        kill(pid, SIGKILL);
        return 0;
    }
    return id;
}

static void terminate(pid_t pid, int id)
{
    if (kill(pid, SIGTERM) < 0 && errno != ESRCH)
        swoop_log(SWOOP_LOG_ERROR, errno, "kill(%d, SIGTERM) of worker %d failed", (int)pid, id);
}

/* Moves the current process of slot `id` out of it; `term` sends it SIGTERM. */
static void detach_current(swoop_manager_t *mgr, int id, int term)
{
    swoop_mgr_slot_t *s = &mgr->slots[id];
    if (mgr->ndetached == mgr->detached_cap) {
        int cap = mgr->detached_cap ? mgr->detached_cap * 2 : mgr->worker_num + 4;
        mgr->detached = swoop_realloc(mgr->detached, (size_t)cap * sizeof(*mgr->detached));
        mgr->detached_cap = cap;
    }
    swoop_mgr_detached_t *d = &mgr->detached[mgr->ndetached++];
    d->pid = s->pid;
    d->id = id;
    d->kill_timer = s->kill_timer ? s->kill_timer : arm_kill(mgr, s->pid);
    if (term)
        terminate(s->pid, id);
    s->pid = 0;
    s->kill_timer = 0;
    s->stopping = 0;
    if (mgr->stats)
        atomic_store(&mgr->stats[id].pid, 0);
}

/* ---- spawning and back-off ---- */

static void on_respawn_timer(int64_t timer_id, void *arg)
{
    swoop_manager_t *mgr = current_mgr;
    int id = (int)(intptr_t)arg;
    if (mgr == NULL || mgr->slots[id].respawn_timer != timer_id)
        return;
    mgr->slots[id].respawn_timer = 0;
    if (!mgr->shutting_down && mgr->slots[id].pid == 0)
        manager_spawn(mgr, id);
}

static void schedule_respawn(swoop_manager_t *mgr, int id, int delay_ms)
{
    swoop_mgr_slot_t *s = &mgr->slots[id];
    if (s->respawn_timer)
        return;
    if (delay_ms <= 0) {
        manager_spawn(mgr, id);
        return;
    }
    int64_t t = swoop_timer_after(delay_ms, on_respawn_timer, (void *)(intptr_t)id);
    if (t < 0) {
        swoop_log(SWOOP_LOG_ERROR, (int)t, "cannot arm the restart timer of worker %d", id);
        return;
    }
    s->respawn_timer = t;
}

static void manager_spawn(swoop_manager_t *mgr, int id)
{
    swoop_mgr_slot_t *s = &mgr->slots[id];
    swoop_proc_stat_t *st = mgr->stats ? &mgr->stats[id] : NULL;
    /*
     * Reset the shared counters before fork: the child may run (and count
     * requests, and store its own pid) before fork() returns here.
     */
    uint64_t started = now_ms();
    if (st) {
        atomic_store(&st->pid, 0);
        /* A later process may get a pid this slot once retired: forget it. */
        atomic_store(&st->retire_pid, 0);
        atomic_store(&st->requests, 0);
        atomic_store(&st->request_limit, 0);
        atomic_store(&st->start_ms, started);
        if (s->spawned)
            atomic_fetch_add(&st->restarts, 1);
    }
    pid_t pid = mgr->hooks.before_spawn ? mgr->hooks.before_spawn(mgr->hooks.data, id) : 0;
    if (pid == 0) {
        pid = swoop__spawn(mgr->hooks.worker_main, mgr->hooks.data, id, mgr->hooks.role);
        if (mgr->hooks.after_spawn)
            mgr->hooks.after_spawn(mgr->hooks.data, id, pid);
    }
    if (pid < 0) {
        if (st && s->spawned)
            atomic_fetch_sub(&st->restarts, 1);
        /*
         * fork failed (EAGAIN, ENOMEM) or the hook refused (logged): retry
         * later, with the back-off of a quick death.
         */
        s->fails++;
        int delay = swoop__manager_backoff_ms(mgr, s->fails);
        schedule_respawn(mgr, id, delay > 0 ? delay : mgr->backoff_min_ms);
        return;
    }
    s->pid = pid;
    s->stopping = 0;
    s->started_ms = started;
    if (st)
        atomic_store(&st->pid, pid); /* the child stores the same value itself */
    s->spawned = 1;
    swoop_log(SWOOP_LOG_DEBUG, 0, "worker %d started, pid %d", id, (int)pid);
}

/* ---- reaping ---- */

static int live_count(const swoop_manager_t *mgr)
{
    int n = mgr->ndetached;
    for (int i = 0; i < mgr->worker_num; i++)
        n += mgr->slots[i].pid != 0;
    return n;
}

static void log_exit(pid_t pid, int id, int code, int signo, const char *what)
{
    if (signo)
        swoop_log(SWOOP_LOG_WARNING, 0, "%s(pid=%d, id=%d) killed by signal %d (%s)", what,
                  (int)pid, id, signo, strsignal(signo));
    else if (code != 0)
        swoop_log(SWOOP_LOG_WARNING, 0, "%s(pid=%d, id=%d) exited with code %d", what, (int)pid, id,
                  code);
    else
        swoop_log(SWOOP_LOG_INFO, 0, "%s(pid=%d, id=%d) exited", what, (int)pid, id);
}

/* A one-by-one reload waits for slot `id`'s old process; it is gone: go on. */
static void reload_slot_done(swoop_manager_t *mgr, int id)
{
    if (mgr->reload_queue && mgr->reload_pos < mgr->reload_len &&
        mgr->reload_queue[mgr->reload_pos] == id) {
        mgr->reload_pos++;
        manager_reload_step(mgr);
    }
}

static void handle_exit(swoop_manager_t *mgr, pid_t pid, int status)
{
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int signo = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    int abnormal = signo != 0 || code != 0;

    int di = find_detached(mgr, pid);
    if (di >= 0) {
        swoop_mgr_detached_t d = mgr->detached[di];
        mgr->detached[di] = mgr->detached[--mgr->ndetached];
        if (d.kill_timer)
            swoop_timer_clear(d.kill_timer);
        log_exit(pid, d.id, code, signo, "old worker");
        if (mgr->hooks.on_reap)
            mgr->hooks.on_reap(mgr->hooks.data, d.id, pid, code, signo);
        if (mgr->stats) {
            atomic_store(&mgr->stats[d.id].last_exit_code, code);
            atomic_store(&mgr->stats[d.id].last_signal, signo);
        }
        if (abnormal && mgr->hooks.on_worker_error)
            mgr->hooks.on_worker_error(mgr->hooks.data, d.id, pid, code, signo);
        return;
    }

    int id = find_slot(mgr, pid);
    if (id < 0 && mgr->hooks.on_stray && mgr->hooks.on_stray(mgr->hooks.data, pid, code, signo))
        return;
    if (id < 0) {
        swoop_log(SWOOP_LOG_NOTICE, 0, "reaped unknown child pid %d (status %d)", (int)pid, status);
        return;
    }
    swoop_mgr_slot_t *s = &mgr->slots[id];
    int expected = s->stopping;
    if (mgr->stats) {
        swoop_proc_stat_t *st = &mgr->stats[id];
        expected |= atomic_load(&st->retire_pid) == pid;
        atomic_store(&st->last_exit_code, code);
        atomic_store(&st->last_signal, signo);
        atomic_store(&st->pid, 0);
    }
    if (s->kill_timer) {
        swoop_timer_clear(s->kill_timer);
        s->kill_timer = 0;
    }
    s->pid = 0;
    s->stopping = 0;
    log_exit(pid, id, code, signo, "worker");
    if (mgr->hooks.on_reap)
        mgr->hooks.on_reap(mgr->hooks.data, id, pid, code, signo);
    if (abnormal && mgr->hooks.on_worker_error)
        mgr->hooks.on_worker_error(mgr->hooks.data, id, pid, code, signo);

    if (mgr->shutting_down)
        return;
    if (code == SWOOP_EXIT_FATAL) {
        s->fatal = 1;
        swoop_log(SWOOP_LOG_ERROR, 0,
                  "worker(pid=%d, id=%d) exited with the fatal code %d: not restarted", (int)pid,
                  id, SWOOP_EXIT_FATAL);
        /* Not restarted, but a one-by-one reload must not wait for it forever. */
        if (expected)
            reload_slot_done(mgr, id);
        return;
    }
    if (expected) {
        s->fails = 0;
        manager_spawn(mgr, id);
    } else {
        uint64_t lived = now_ms() - s->started_ms;
        if (lived >= SWOOP_MANAGER_QUICK_DEATH_MS)
            s->fails = 0;
        s->fails++;
        int delay = swoop__manager_backoff_ms(mgr, s->fails);
        if (delay > 0)
            swoop_log(SWOOP_LOG_WARNING, 0,
                      "worker %d died %d times in a row within %d ms of its start: restart in %d "
                      "ms",
                      id, s->fails, SWOOP_MANAGER_QUICK_DEATH_MS, delay);
        schedule_respawn(mgr, id, delay);
    }
    if (expected)
        reload_slot_done(mgr, id);
}

static void manager_reap(swoop_manager_t *mgr)
{
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid == 0)
            return;
        if (pid < 0) {
            if (errno == EINTR)
                continue;
            if (errno != ECHILD)
                swoop_log(SWOOP_LOG_ERROR, errno, "waitpid() failed");
            return;
        }
        handle_exit(mgr, pid, status);
    }
}

/* ---- max_request: a worker asked to be replaced ---- */

static void manager_retire(swoop_manager_t *mgr)
{
    if (mgr->stats == NULL || mgr->shutting_down)
        return;
    for (int id = 0; id < mgr->worker_num; id++) {
        swoop_mgr_slot_t *s = &mgr->slots[id];
        /*
         * A process already being stopped (reload, shutdown) exits anyway and is
         * handled as its slot's exit; detaching it would leave a one-by-one
         * reload waiting for a slot exit that never comes.
         */
        if (s->pid == 0 || s->stopping || atomic_load(&mgr->stats[id].retire_pid) != s->pid)
            continue;
        swoop_log(SWOOP_LOG_INFO, 0, "worker(pid=%d, id=%d) reached max_request: replacing it",
                  (int)s->pid, id);
        detach_current(mgr, id, 0); /* it is already stopping by itself */
        s->fails = 0;
        manager_spawn(mgr, id);
    }
}

/* ---- reload ---- */

static void manager_reload_step(swoop_manager_t *mgr)
{
    while (mgr->reload_pos < mgr->reload_len) {
        int id = mgr->reload_queue[mgr->reload_pos];
        swoop_mgr_slot_t *s = &mgr->slots[id];
        if (s->pid != 0) {
            s->stopping = 1;
            s->kill_timer = arm_kill(mgr, s->pid);
            terminate(s->pid, id);
            return; /* handle_exit continues once it is gone and restarted */
        }
        mgr->reload_pos++;
    }
    swoop_log(SWOOP_LOG_NOTICE, 0, "reload finished");
    swoop_free(mgr->reload_queue);
    mgr->reload_queue = NULL;
    mgr->reload_len = mgr->reload_pos = 0;
}

static void manager_reload(swoop_manager_t *mgr, int task_only)
{
    if (mgr->shutting_down)
        return;
    if (mgr->reload_queue) {
        swoop_log(SWOOP_LOG_NOTICE, 0, "a reload is already in progress: request ignored");
        return;
    }
    int n = 0;
    for (int id = 0; id < mgr->worker_num; id++)
        n += !task_only || (mgr->slots[id].flags & SWOOP_SLOT_TASK);
    swoop_log(SWOOP_LOG_NOTICE, 0, "reloading %d %sworkers (%s)", n, task_only ? "task " : "",
              mgr->reload_async ? "all at once" : "one by one");
    if (n == 0)
        return;
    if (mgr->reload_async) {
        for (int id = 0; id < mgr->worker_num; id++) {
            swoop_mgr_slot_t *s = &mgr->slots[id];
            if (task_only && !(s->flags & SWOOP_SLOT_TASK))
                continue;
            if (s->pid == 0)
                continue; /* backing off or fatal: nothing to replace */
            detach_current(mgr, id, 1);
            s->fails = 0;
            manager_spawn(mgr, id);
        }
        return;
    }
    mgr->reload_queue = swoop_malloc((size_t)n * sizeof(int));
    mgr->reload_len = 0;
    mgr->reload_pos = 0;
    for (int id = 0; id < mgr->worker_num; id++) {
        if (!task_only || (mgr->slots[id].flags & SWOOP_SLOT_TASK))
            mgr->reload_queue[mgr->reload_len++] = id;
    }
    manager_reload_step(mgr);
}

/* ---- shutdown ---- */

static void manager_begin_shutdown(swoop_manager_t *mgr)
{
    if (mgr->shutting_down)
        return;
    mgr->shutting_down = 1;
    swoop_free(mgr->reload_queue);
    mgr->reload_queue = NULL;
    swoop_log(SWOOP_LOG_NOTICE, 0, "shutting down: stopping %d processes", live_count(mgr));
    if (mgr->hooks.on_shutdown_begin)
        mgr->hooks.on_shutdown_begin(mgr->hooks.data);
    /*
     * Every deadline starts now, so the whole stop takes max_wait_ms at most;
     * task workers get their SIGTERM only once the others are gone (below).
     */
    /* Only a manager with task slots (the server's) holds their SIGTERM back. */
    mgr->task_stop_pending = 0;
    for (int id = 0; id < mgr->worker_num; id++)
        mgr->task_stop_pending |= (mgr->slots[id].flags & SWOOP_SLOT_TASK) != 0;
    for (int id = 0; id < mgr->worker_num; id++) {
        swoop_mgr_slot_t *s = &mgr->slots[id];
        if (s->respawn_timer) {
            swoop_timer_clear(s->respawn_timer);
            s->respawn_timer = 0;
        }
        if (s->pid == 0)
            continue;
        s->stopping = 1;
        if (s->kill_timer == 0)
            s->kill_timer = arm_kill(mgr, s->pid);
        if (!(s->flags & SWOOP_SLOT_TASK))
            terminate(s->pid, id);
    }
    for (int i = 0; i < mgr->ndetached; i++) {
        swoop_mgr_detached_t *d = &mgr->detached[i];
        if (d->kill_timer == 0)
            d->kill_timer = arm_kill(mgr, d->pid);
        if (!(mgr->slots[d->id].flags & SWOOP_SLOT_TASK))
            terminate(d->pid, d->id);
    }
    manager_stop_tasks(mgr, 0);
    /*
     * An event worker stuck past the deadline would leave the task workers
     * SIGKILLed without ever being asked to stop: ask them a little before.
     */
    if (mgr->task_stop_pending && mgr->max_wait_ms > 2 * TASK_TERM_MARGIN_MS) {
        mgr->task_term_timer =
            swoop_timer_after(mgr->max_wait_ms - TASK_TERM_MARGIN_MS, on_task_term_timer, NULL);
        if (mgr->task_term_timer < 0)
            mgr->task_term_timer = 0;
    }
}

static void on_task_term_timer(int64_t timer_id, void *arg)
{
    swoop_manager_t *mgr = current_mgr;
    if (mgr == NULL || mgr->task_term_timer != timer_id)
        return;
    mgr->task_term_timer = 0;
    manager_stop_tasks(mgr, 1);
}

/*
 * Shutdown: the task workers stop last. Event workers drain their requests
 * and wait for the tasks those posted (on_finish, taskwait), so the task
 * workers keep serving until no other process is left.
 */
static void manager_stop_tasks(swoop_manager_t *mgr, int force)
{
    if (!mgr->task_stop_pending)
        return;
    for (int id = 0; !force && id < mgr->worker_num; id++) {
        if (!(mgr->slots[id].flags & SWOOP_SLOT_TASK) && mgr->slots[id].pid != 0)
            return;
    }
    for (int i = 0; !force && i < mgr->ndetached; i++) {
        if (!(mgr->slots[mgr->detached[i].id].flags & SWOOP_SLOT_TASK))
            return;
    }
    mgr->task_stop_pending = 0;
    if (mgr->task_term_timer > 0) {
        swoop_timer_clear(mgr->task_term_timer);
        mgr->task_term_timer = 0;
    }
    for (int id = 0; id < mgr->worker_num; id++) {
        if ((mgr->slots[id].flags & SWOOP_SLOT_TASK) && mgr->slots[id].pid != 0)
            terminate(mgr->slots[id].pid, id);
    }
    for (int i = 0; i < mgr->ndetached; i++)
        terminate(mgr->detached[i].pid, mgr->detached[i].id);
}

/* Nothing runs and nothing will: every slot is fatal. */
static int all_fatal(const swoop_manager_t *mgr)
{
    for (int id = 0; id < mgr->worker_num; id++) {
        const swoop_mgr_slot_t *s = &mgr->slots[id];
        if (!s->fatal || s->pid || s->respawn_timer)
            return 0;
    }
    return mgr->ndetached == 0;
}

static void manager_reopen(swoop_manager_t *mgr)
{
    if (mgr->hooks.on_reopen)
        mgr->hooks.on_reopen(mgr->hooks.data);
    for (int id = 0; id < mgr->worker_num; id++) {
        if (mgr->slots[id].pid)
            kill(mgr->slots[id].pid, SIGRTMIN);
    }
    for (int i = 0; i < mgr->ndetached; i++)
        kill(mgr->detached[i].pid, SIGRTMIN);
}

/* ---- the loop ---- */

static void signal_set(sigset_t *set)
{
    sigemptyset(set);
    for (int i = 0; i < swoop__manager_signal_count; i++)
        sigaddset(set, swoop__manager_signals[i]);
    sigaddset(set, SIGRTMIN);
}

int swoop__manager_run(swoop_manager_t *mgr)
{
    if (current_mgr != NULL)
        return SWOOP_EBUSY;
    sigset_t ours, saved_mask, suspend_mask;
    signal_set(&ours);
    sigaddset(&ours, SIGALRM);
    sigprocmask(SIG_BLOCK, &ours, &saved_mask);

    struct sigaction sa, saved[SWOOP_ARRAY_SIZE(swoop__manager_signals)], saved_pipe;
    memset(&sa, 0, sizeof(sa));
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_signal;
    sa.sa_flags = 0; /* the loop never blocks outside sigsuspend: no SA_RESTART needed */
    int n = 0;
    for (; n <= swoop__manager_signal_count; n++) {
        int signo = n < swoop__manager_signal_count ? swoop__manager_signals[n] : SIGRTMIN;
        if (sigaction(signo, &sa, &saved[n]) < 0) {
            int err = errno;
            swoop_log(SWOOP_LOG_ERROR, err, "sigaction(%d) failed", signo);
            while (n-- > 0)
                sigaction(n < swoop__manager_signal_count ? swoop__manager_signals[n] : SIGRTMIN,
                          &saved[n], NULL);
            sigprocmask(SIG_SETMASK, &saved_mask, NULL);
            return -err;
        }
    }
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, &saved_pipe);

    int rc = swoop_timer_alarm_start();
    if (rc < 0) {
        swoop_log(SWOOP_LOG_ERROR, rc, "cannot start the manager's timer driver");
    } else {
        /* The alarm driver unblocks SIGALRM; keep it for sigsuspend like the rest. */
        sigset_t alrm;
        sigemptyset(&alrm);
        sigaddset(&alrm, SIGALRM);
        sigprocmask(SIG_BLOCK, &alrm, NULL);
    }
    suspend_mask = saved_mask;
    for (int signo = 1; signo < NSIG; signo++) {
        if (sigismember(&ours, signo))
            sigdelset(&suspend_mask, signo);
    }

    flag_child = flag_term = flag_reload_all = flag_reload_task = flag_retire = flag_reopen = 0;
    current_mgr = mgr;
    mgr->running = 1;
    mgr->shutting_down = 0;
    mgr->task_stop_pending = 0;
    mgr->task_term_timer = 0;

    if (rc == 0) {
        for (int id = 0; id < mgr->worker_num; id++)
            manager_spawn(mgr, id);
        if (mgr->hooks.on_start)
            mgr->hooks.on_start(mgr->hooks.data);
    } else {
        flag_term = 1;
    }

    for (;;) {
        swoop_timer_alarm_dispatch();
        if (flag_child) {
            flag_child = 0;
            manager_reap(mgr);
        }
        if (flag_retire) {
            flag_retire = 0;
            manager_retire(mgr);
        }
        if (flag_term) {
            flag_term = 0;
            manager_begin_shutdown(mgr);
        }
        if (flag_reload_all || flag_reload_task) {
            int task_only = !flag_reload_all;
            flag_reload_all = flag_reload_task = 0;
            if (!task_only && !mgr->shutting_down && mgr->hooks.on_reload)
                mgr->hooks.on_reload(mgr->hooks.data);
            manager_reload(mgr, task_only);
        }
        if (flag_reopen) {
            flag_reopen = 0;
            manager_reopen(mgr);
        }
        if (!mgr->shutting_down && all_fatal(mgr)) {
            swoop_log(SWOOP_LOG_ERROR, 0, "every worker exited with the fatal code: shutting down");
            manager_begin_shutdown(mgr);
        }
        if (mgr->shutting_down)
            manager_stop_tasks(mgr, 0); /* once the event workers are gone */
        if (mgr->shutting_down && live_count(mgr) == 0)
            break;
        /* A callback or timer above may have raised a flag: act on it before sleeping. */
        if (flag_child || flag_term || flag_reload_all || flag_reload_task || flag_retire ||
            flag_reopen)
            continue;
        sigsuspend(&suspend_mask);
    }

    if (mgr->hooks.on_shutdown)
        mgr->hooks.on_shutdown(mgr->hooks.data);
    swoop_log(SWOOP_LOG_NOTICE, 0, "manager stopped");

    mgr->running = 0;
    current_mgr = NULL;
    if (rc == 0)
        swoop_timer_alarm_stop();
    /*
     * A signal still pending here (a late SIGIO of a retiring worker, a second
     * SIGTERM, a reload) would meet the restored default action when the mask
     * is restored, and SIGIO's or SIGUSR1's default kills: ignoring a pending
     * signal discards it (POSIX), then the caller's action comes back.
     * SIGCHLD is left alone (its default is to ignore; SIG_IGN would reap).
     */
    struct sigaction ign;
    memset(&ign, 0, sizeof(ign));
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    for (int i = 0; i <= swoop__manager_signal_count; i++) {
        int signo = i < swoop__manager_signal_count ? swoop__manager_signals[i] : SIGRTMIN;
        if (signo != SIGCHLD)
            sigaction(signo, &ign, NULL);
        sigaction(signo, &saved[i], NULL);
    }
    sigaction(SIGPIPE, &saved_pipe, NULL);
    sigprocmask(SIG_SETMASK, &saved_mask, NULL);
    return rc < 0 ? rc : 0;
}
