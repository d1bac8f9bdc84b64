/*
 * Coroutines: handler code written top to bottom (connect, write, read,
 * sleep) that waits without blocking the thread. Each coroutine has its own
 * stack (mmap, a PROT_NONE guard page below it, pooled and reused); a call
 * that would block parks the coroutine on the thread's default event loop
 * (a timer for sleep and timeouts, an fd watcher for I/O) and the loop
 * resumes it when the event comes. Switching is our own assembly on x86-64
 * and AArch64 (ucontext with the CMake option SWOOP_CO_UCONTEXT).
 *
 * Everything here is per thread: a coroutine runs, waits and ends on the
 * thread that started it, and the functions below act on the calling
 * thread's scheduler. Coroutines are cooperative: one runs at a time and
 * only gives the thread back inside a waiting call.
 *
 * Wake-ups run the woken coroutine at once (a channel push resumes the
 * popper before the push returns), nested inside the waker, and return to
 * the waker when the woken coroutine waits again or ends.
 *
 * Timeouts are in milliseconds: < 0 waits for ever, 0 does not wait (returns
 * SWOOP_ETIMEDOUT when the call would have had to wait), > 0 waits at most
 * that long. A waiting call returns SWOOP_ETIMEDOUT when its time runs out,
 * SWOOP_ECANCELED when swoop_co_cancel targets its coroutine, and
 * SWOOP_ESTATE when called outside a coroutine and it would have to wait.
 *
 * A stack overflow that reaches the guard page is reported by a SIGSEGV
 * handler on an alternate signal stack with one write(2) to the log
 * descriptor ("coroutine N overflowed its S-byte stack") and then kills
 * the process with SIGSEGV (in a server the manager starts a new worker).
 */
#ifndef SWOOP_CO_H
#define SWOOP_CO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <swoop/common.h>
#include <swoop/loop.h>

SWOOP_BEGIN_DECLS

/** A coroutine's body. When it returns, the coroutine ends. */
typedef void (*swoop_co_fn)(void *arg);

/** A bounded channel between coroutines (opaque). */
typedef struct swoop_co_chan_s swoop_co_chan_t;

/** A wait group: waits for a counter to reach zero (opaque). */
typedef struct swoop_co_wg_s swoop_co_wg_t;

/** Default usable stack size of a coroutine (256 KiB; untouched pages cost no memory). */
#define SWOOP_CO_STACK_DEFAULT (256u * 1024u)
/** Smallest stack size accepted by swoop_co_set_options. */
#define SWOOP_CO_STACK_MIN (16u * 1024u)
/** Default number of finished coroutines' stacks kept for reuse per thread. */
#define SWOOP_CO_POOL_DEFAULT 1024u

/** Per-thread scheduler options (swoop_co_set_options). */
typedef struct swoop_co_options_s {
    /** Usable stack bytes per coroutine, rounded up to pages; 0 = SWOOP_CO_STACK_DEFAULT. */
    size_t stack_size;
    /**
     * 1 = no PROT_NONE guard page under each stack. Saves one of the two
     * memory mappings per stack (the kernel's vm.max_map_count, 65530 by
     * default, bounds guarded stacks near 32,000 per process), but an
     * overflow then silently corrupts whatever lies below the stack.
     */
    int no_guard_page;
    /** Finished stacks kept for reuse; 0 = SWOOP_CO_POOL_DEFAULT. */
    size_t pool_max;
} swoop_co_options_t;

/** What swoop_co_stats reports about the calling thread's coroutines. */
typedef struct swoop_co_stats_s {
    uint64_t live;     /**< coroutines started and not ended */
    uint64_t peak;     /**< highest `live` so far */
    uint64_t created;  /**< coroutines started so far */
    uint64_t pooled;   /**< stacks waiting in the pool for reuse */
    uint64_t mapped;   /**< stacks currently mapped (running, waiting and pooled) */
    size_t stack_size; /**< usable bytes per stack */
} swoop_co_stats_t;

/**
 * Sets the calling thread's scheduler options. New values apply to stacks
 * made from now on; pooled stacks of another size are unmapped. Returns 0 or
 * SWOOP_EINVAL (stack_size below SWOOP_CO_STACK_MIN or above 1 GiB).
 */
SWOOP_EXTERN int swoop_co_set_options(const swoop_co_options_t *opt);

/** Fills `out` for the calling thread. */
SWOOP_EXTERN void swoop_co_stats(swoop_co_stats_t *out);

/**
 * Standalone entry point: starts `fn(arg)` as a coroutine and runs the
 * thread's default loop until every coroutine of this thread has ended.
 * Returns 0, SWOOP_ESTATE inside a coroutine, SWOOP_EDEADLK when coroutines
 * still wait but nothing is left that could wake them (no timer, watcher or
 * post on the loop; they stay parked), or the error of swoop_co_go.
 */
SWOOP_EXTERN int swoop_co_run(swoop_co_fn fn, void *arg);

/**
 * Starts `fn(arg)` as a new coroutine and runs it now, until it waits or
 * ends; then returns to the caller (also from inside a coroutine). Returns
 * the coroutine's id (> 0, unique in the thread), SWOOP_EINVAL without fn,
 * or SWOOP_ENOMEM when no stack could be mapped (mmap or mprotect failed:
 * memory or vm.max_map_count exhausted; the cause is logged).
 */
SWOOP_EXTERN int64_t swoop_co_go(swoop_co_fn fn, void *arg);

/** Returns the running coroutine's id, or 0 outside a coroutine. */
SWOOP_EXTERN int64_t swoop_co_id(void);

/**
 * Parks the calling coroutine for `ms` milliseconds (a loop timer). Returns
 * 0 (also at once for ms <= 0), SWOOP_ECANCELED or SWOOP_ESTATE.
 */
SWOOP_EXTERN int swoop_co_sleep(int64_t ms);

/**
 * Parks the calling coroutine until `fd` is ready for `events`
 * (SWOOP_READABLE and/or SWOOP_WRITABLE). Returns the ready bits (> 0,
 * possibly with SWOOP_HANGUP / SWOOP_IOERROR), SWOOP_ETIMEDOUT,
 * SWOOP_ECANCELED, SWOOP_ESTATE, SWOOP_EINVAL, or SWOOP_EEXIST when another
 * watcher of the loop already watches the fd (one waiter per fd at a time).
 */
SWOOP_EXTERN int swoop_co_wait_fd(int fd, unsigned events, int64_t timeout_ms);

/**
 * Opens a TCP connection to host:port. A numeric IPv4/IPv6 address is used
 * directly; a name is resolved by getaddrinfo on a short-lived thread of its
 * own while the loop keeps running (the addresses are tried in order).
 * Returns a nonblocking, close-on-exec socket (the caller closes it), or
 * SWOOP_ENOENT (name not found), SWOOP_ECONNREFUSED, SWOOP_ETIMEDOUT,
 * SWOOP_ECANCELED, SWOOP_ESTATE, SWOOP_EINVAL, or another negative errno.
 * `timeout_ms` covers the resolution and the connect together.
 */
SWOOP_EXTERN int swoop_co_connect(const char *host, int port, int64_t timeout_ms);

/**
 * Reads up to `len` bytes from `fd` (a socket or pipe), waiting while there
 * is nothing to read. Returns the byte count (0 at end of file),
 * SWOOP_ETIMEDOUT, SWOOP_ECANCELED, SWOOP_ESTATE or a negative errno. A
 * socket need not be nonblocking (the read uses MSG_DONTWAIT); any other fd
 * must be O_NONBLOCK or the read blocks the thread.
 */
SWOOP_EXTERN ssize_t swoop_co_read(int fd, void *buf, size_t len, int64_t timeout_ms);

/**
 * Writes all `len` bytes to `fd`, waiting while the kernel buffer is full.
 * Returns `len`, or an error (SWOOP_ETIMEDOUT, SWOOP_ECANCELED, SWOOP_EPIPE,
 * ...) after which an unknown part may have been written. The timeout
 * bounds the whole call. Never raises SIGPIPE on a socket.
 */
SWOOP_EXTERN ssize_t swoop_co_write(int fd, const void *buf, size_t len, int64_t timeout_ms);

/**
 * Cancels the pending waiting call of coroutine `id`: it returns
 * SWOOP_ECANCELED, and the coroutine runs on at once (before this returns).
 * If the coroutine is not waiting (it is running, or it resumed another),
 * its next waiting call returns SWOOP_ECANCELED at once. Returns 0 or
 * SWOOP_ENOENT for an id that is not a live coroutine of this thread.
 */
SWOOP_EXTERN int swoop_co_cancel(int64_t id);

/**
 * Makes a channel holding at most `capacity` items; capacity 0 makes each
 * push wait for a pop (rendezvous). Items are pointers the channel only
 * passes along. Returns 0 and sets *out, or SWOOP_EINVAL.
 */
SWOOP_EXTERN int swoop_co_chan_new(swoop_co_chan_t **out, size_t capacity);

/**
 * Pushes `item`. Hands it straight to the oldest waiting popper (which runs
 * at once), else queues it if there is room, else waits for room. Items
 * leave in push order. Returns 0, SWOOP_ECLOSED (closed before or while
 * waiting; the item was not pushed), SWOOP_ETIMEDOUT, SWOOP_ECANCELED, or
 * SWOOP_ESTATE (it would have to wait outside a coroutine).
 */
SWOOP_EXTERN int swoop_co_chan_push(swoop_co_chan_t *ch, void *item, int64_t timeout_ms);

/**
 * Pops the oldest item into *item, waiting for one if the channel is empty.
 * Returns 0, SWOOP_ECLOSED once the channel is closed and empty (items
 * pushed before the close are still delivered), SWOOP_ETIMEDOUT,
 * SWOOP_ECANCELED, or SWOOP_ESTATE (it would have to wait outside a
 * coroutine).
 */
SWOOP_EXTERN int swoop_co_chan_pop(swoop_co_chan_t *ch, void **item, int64_t timeout_ms);

/**
 * Closes the channel: every waiting pusher and popper returns SWOOP_ECLOSED
 * (each runs at once, in the order they started waiting), later pushes fail
 * and pops drain what is queued. Returns 0, or SWOOP_ECLOSED if already
 * closed.
 */
SWOOP_EXTERN int swoop_co_chan_close(swoop_co_chan_t *ch);

/** Returns the number of items queued in the channel. */
SWOOP_EXTERN size_t swoop_co_chan_len(const swoop_co_chan_t *ch);

/**
 * Frees a channel nobody waits on (close it first to release waiters).
 * Queued items are dropped (not freed). Returns 0 or SWOOP_EBUSY.
 */
SWOOP_EXTERN int swoop_co_chan_free(swoop_co_chan_t *ch);

/** Makes a wait group with a count of 0. Returns 0 and sets *out. */
SWOOP_EXTERN int swoop_co_wg_new(swoop_co_wg_t **out);

/**
 * Adds `n` (may be negative) to the count. When it reaches 0 every waiter
 * runs (at once, in order). Returns 0 or SWOOP_ERANGE if the count would
 * go below 0 (it is left unchanged).
 */
SWOOP_EXTERN int swoop_co_wg_add(swoop_co_wg_t *wg, int64_t n);

/** swoop_co_wg_add(wg, -1). */
SWOOP_EXTERN int swoop_co_wg_done(swoop_co_wg_t *wg);

/**
 * Waits until the count is 0. Returns 0 (at once if it already is),
 * SWOOP_ETIMEDOUT, SWOOP_ECANCELED or SWOOP_ESTATE.
 */
SWOOP_EXTERN int swoop_co_wg_wait(swoop_co_wg_t *wg, int64_t timeout_ms);

/** Returns the current count. */
SWOOP_EXTERN int64_t swoop_co_wg_count(const swoop_co_wg_t *wg);

/** Frees a wait group nobody waits on. Returns 0 or SWOOP_EBUSY. */
SWOOP_EXTERN int swoop_co_wg_free(swoop_co_wg_t *wg);

/** A pool of connections to one host:port for the coroutines of one thread (opaque). */
typedef struct swoop_co_pool_s swoop_co_pool_t;

/** Default number of idle connections a pool keeps (swoop_co_pool_options_t.max_idle). */
#define SWOOP_CO_POOL_MAX_IDLE 64
/** Default time an idle connection is kept before it is closed, in ms. */
#define SWOOP_CO_POOL_IDLE_TIMEOUT_MS 60000

/** Connection pool options; a zeroed struct gives the defaults. */
typedef struct swoop_co_pool_options_s {
    /** Idle connections kept for reuse (0: SWOOP_CO_POOL_MAX_IDLE); a put beyond it closes the
     *  connection idle the longest. Capped at max_open when that is set. */
    size_t max_idle;
    /** Connections open at once, idle or out (0: no limit). At the limit, get waits for a put. */
    size_t max_open;
    /** An idle connection older than this is closed instead of reused (0: the default,
     *  SWOOP_CO_POOL_IDLE_TIMEOUT_MS; < 0: never). Checked when get or put runs (no timer). */
    int64_t idle_timeout_ms;
    /** A connection idle at least this long is probed (a non-blocking MSG_PEEK) before it goes
     *  out, and dropped if the peer closed it or left bytes on it (0: probe every time). A
     *  zeroed struct probes every time; 1000 is a good value for a busy pool, which then saves
     *  the probe's syscall on connections used within the last second. */
    int64_t check_after_ms;
} swoop_co_pool_options_t;

/** Counters of a pool (swoop_co_pool_stats). */
typedef struct swoop_co_pool_stats_s {
    size_t open;            /**< connections open: idle, out, or being connected */
    size_t idle;            /**< of which idle in the pool */
    size_t waiting;         /**< coroutines waiting in get for a connection */
    uint64_t connects;      /**< connections made */
    uint64_t reuses;        /**< gets answered with a pooled connection */
    uint64_t probes_failed; /**< idle connections found closed (or with stray bytes) and dropped */
} swoop_co_pool_stats_t;

/**
 * Makes a pool of connections to host:port (a numeric address or a name,
 * resolved at each connect as swoop_co_connect does). `opt` may be NULL.
 * No connection is made yet. Returns 0 and sets *out, or SWOOP_EINVAL.
 * A pool belongs to the thread whose coroutines use it.
 */
SWOOP_EXTERN int swoop_co_pool_new(swoop_co_pool_t **out, const char *host, int port,
                                   const swoop_co_pool_options_t *opt);

/**
 * Takes a connection: the most recently returned idle one (probed first if
 * it idled check_after_ms or more), else a new one (swoop_co_connect), else,
 * at max_open, waits for one to be put back. `timeout_ms` bounds the wait
 * and the connect. Returns the fd (give it back with swoop_co_pool_put,
 * never close it yourself), or SWOOP_ETIMEDOUT, SWOOP_ECANCELED,
 * SWOOP_ESTATE (outside a coroutine) or a connect error.
 */
SWOOP_EXTERN int swoop_co_pool_get(swoop_co_pool_t *pool, int64_t timeout_ms);

/**
 * Gives a connection back. `reusable` 1: the exchange on it completed and
 * nothing is left unread, so it is kept (or handed to a waiting get);
 * 0: it is closed (after an error or a timeout, its state is unknown).
 * Returns 0 or SWOOP_EINVAL.
 */
SWOOP_EXTERN int swoop_co_pool_put(swoop_co_pool_t *pool, int fd, int reusable);

/** Fills `out` with the pool's counters. */
SWOOP_EXTERN void swoop_co_pool_stats(const swoop_co_pool_t *pool, swoop_co_pool_stats_t *out);

/**
 * Closes the idle connections and frees the pool. Returns 0, or SWOOP_EBUSY
 * (and frees nothing) while a connection is out or a coroutine waits.
 */
SWOOP_EXTERN int swoop_co_pool_free(swoop_co_pool_t *pool);

SWOOP_END_DECLS

#endif /* SWOOP_CO_H */
