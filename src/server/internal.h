/*
 * The server's private definitions: the shared stats and session table, the
 * connection engine shared by PROCESS reactor threads and BASE workers
 * (conn.c), the master (master.c), the worker side (worker.c) and dispatch
 * (dispatch.c).
 */
#ifndef SWOOP_SERVER_INTERNAL_H
#define SWOOP_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <swoop/loop.h>
#include <swoop/server.h>

#include "base/buf.h"
#include "base/internal.h"
#include "base/queue.h"
#include "ipc/channel.h"
#include "ipc/msg.h"
#include "ipc/ring.h"
#include "net/sendmany.h"
#include "net/tls.h"
#include "proc/manager.h"
#include "proc/procfile.h"
#include "proto/framing.h"

#define SWOOP_STATS_MAGIC 0x53574f50u /* "SWOP" */
#define SWOOP_STATS_VERSION                                                                        \
    10u /* 10: owner latency histograms; 9: metrics region; 8: sends_batched; 7: WebSocket */
#define SWOOP_STATS_MEMFD "swoop-stats"

/* Bytes of a client certificate's subject kept per connection (swoop_server_conn_peer_subject). */
#define SWOOP_TLS_SUBJECT_MAX 256

/* conn id = (sequence << SLOT_BITS) | slot */
#define SWOOP_SLOT_BITS 24
#define SWOOP_SLOT_MASK ((1u << SWOOP_SLOT_BITS) - 1)

#define SERVER_WORKER_MAX  1024
#define SERVER_REACTOR_MAX 64
/* Ports with their own request latency histograms (the first ones listened on). */
#define SWOOP_METRICS_PORTS_MAX 16

#define SWOOP_ACCEPT_BATCH 64
#define SWOOP_READ_BUF     65536
#define SWOOP_RING_CAP     (256u * 1024) /* bytes per ring (ipc_ring) */

/* One worker's slot; a cache line each, so workers never share one. */
typedef struct swoop_srv_wstat_s {
    _Alignas(64) _Atomic int32_t pid;
    _Atomic int32_t busy;
    _Atomic uint64_t requests;
    _Atomic uint64_t starts;
    _Atomic uint64_t start_seq; /* msg_seq when the current process started */
    /*
     * PROCESS: the pid of the one process of this worker id that may use the
     * id's channels and rings (worker.c, "the worker id's token"); 0 free.
     * A futex word: a successor waits on it while its predecessor finishes.
     */
    _Atomic uint32_t owner;
    char pad_[28];
} swoop_srv_wstat_t;

/*
 * Traffic counters of one writer (a worker, or a PROCESS reactor thread),
 * summed when read: no two processes or threads write one cache line.
 */
typedef struct swoop_srv_counter_s {
    _Alignas(64) _Atomic uint64_t bytes_in;
    _Atomic uint64_t bytes_out;
    _Atomic uint64_t requests;
    _Atomic uint64_t http_status[4]; /* HTTP responses by class: 2xx, 3xx, 4xx, 5xx */
    _Atomic uint64_t http_bad;       /* HTTP requests refused by the parser (owner) */
    _Atomic uint64_t ws_messages_in; /* WebSocket messages delivered to workers (owner) */
    _Atomic uint64_t ws_dropped;     /* pushes dropped above websocket_output_high_water */
    _Atomic uint64_t ws_slow_closed; /* connections closed above it (policy "close") */
    _Atomic uint64_t sends_batched;  /* writes of a broadcast that went through io_uring */
    _Atomic uint64_t tls_handshakes; /* TLS handshakes completed by this owner */
    _Atomic uint64_t tls_failed;     /* TLS handshakes failed, abandoned or timed out */
    _Atomic uint64_t lingering;      /* closes that lingered (conn.c, lingering close) */
    /* A gauge: bytes waiting in the output buffers of this owner's connections (out_gauge). */
    _Atomic int64_t out_buffered;
} swoop_srv_counter_t;

static_assert(sizeof(swoop_srv_wstat_t) == 64, "one cache line per worker");
static_assert(sizeof(swoop_srv_counter_t) == 128, "two cache lines per counter block");

/* Task counters (src/task/): written by every worker, read by stats. */
typedef struct swoop_srv_task_stats_s {
    _Alignas(64) _Atomic uint64_t posted; /* tasks sent to task workers (redeliveries too) */
    _Atomic uint64_t taken;               /* tasks a task worker took */
    _Atomic uint64_t done;                /* on_task returned */
    _Atomic uint64_t redelivered;
    _Atomic uint64_t failed; /* on_task_error or a failed taskwait sent */
    _Atomic int32_t busy;    /* task workers in on_task */
    int32_t worker_num;
    int32_t queue_id; /* task_ipc_mode 2, 3: the msqid, else -1 */
    /*
     * Tasks taken by task worker processes that have no record (none was
     * free): raised before `taken`, dropped after the result was sent. The
     * others mark their record (task/internal.h, task_run_t.active).
     */
    _Atomic int32_t active;
    /* Task worker processes started, all ids; restarts = starts - worker_num. */
    _Atomic uint64_t starts;
} swoop_srv_task_stats_t;

static_assert(sizeof(swoop_srv_task_stats_t) == 64, "one cache line of task counters");

/* Shared by every server process, in a memfd the CLI can map from outside. */
typedef struct swoop_srv_shared_s {
    uint32_t magic;
    uint32_t version;
    int32_t mode;
    int32_t worker_num;
    int32_t reactor_num;
    _Atomic int32_t master_pid;
    _Atomic int32_t manager_pid;
    _Atomic int32_t shutting_down;
    _Atomic int32_t manager_told; /* the master SIGTERMed the manager (shutdown phase 2) */
    _Atomic uint64_t start_time;
    _Atomic int64_t connection_num;
    _Atomic uint64_t accept_count;
    _Atomic uint64_t close_count;
    _Atomic uint64_t conn_seq;
    _Atomic uint64_t msg_seq;
    /* Metrics (metrics.c): what a reader outside needs to find and label the region. */
    int32_t metric_ports;                       /* ports with latency histograms */
    int32_t metric_tasks;                       /* task workers (task_worker_num at start) */
    int32_t metrics_on;                         /* enable_metrics */
    uint16_t port_num[SWOOP_METRICS_PORTS_MAX]; /* their port numbers (0: a Unix socket) */
    uint16_t port_http;                         /* bit i: port i speaks HTTP */
    /* admin_port (admin.c), in what was padding. */
    uint16_t admin_port;       /* the port it listens on (port 0: the one the kernel chose) */
    _Atomic int32_t admin_pid; /* its process, 0 while none runs */
    char pad_[4];
    swoop_srv_task_stats_t task;
    /* worker_num swoop_srv_wstat_t, then worker_num + reactor_num swoop_srv_counter_t */
    swoop_srv_wstat_t workers[];
} swoop_srv_shared_t;

/* admin_port took padding: the header still fits in three cache lines. */
static_assert(offsetof(swoop_srv_shared_t, task) == 192, "a three-line header");
/* The memfd mapping is page-aligned: each per-writer block owns its cache line. */
static_assert(offsetof(swoop_srv_shared_t, workers) % 64 == 0, "per-writer blocks aligned");

/* The counter block of writer `i` (workers first, then reactor threads). */
static inline swoop_srv_counter_t *swoop__counter(swoop_srv_shared_t *gs, int i)
{
    return (swoop_srv_counter_t *)(gs->workers + gs->worker_num) + i;
}

/*
 * Metrics (metrics.c): histograms with fixed log-scale buckets, one writer
 * each, summed by the reader. The bounds are a 1-2-5 series from 1 us to
 * 50 s (SWOOP_HIST_BOUNDS_NS); the last bucket holds the rest (+Inf).
 * Counts are per bucket (the reader makes them cumulative); the sum is in
 * nanoseconds.
 */
#define SWOOP_HIST_FINITE 24
typedef struct swoop_srv_hist_s {
    _Alignas(64) _Atomic uint64_t bucket[SWOOP_HIST_FINITE + 1];
    _Atomic uint64_t sum_ns;
    char pad_[48];
} swoop_srv_hist_t;

static_assert(sizeof(swoop_srv_hist_t) == 256, "four cache lines per histogram");

/* The bucket upper bounds, ns (metrics.c). */
extern const uint64_t swoop__hist_bounds_ns[SWOOP_HIST_FINITE];

/* The bucket of a duration: a binary search of the 24 bounds (5 comparisons). */
static inline int swoop__hist_bucket(uint64_t ns)
{
    int lo = 0, hi = SWOOP_HIST_FINITE; /* the answer is in [lo, hi] */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (ns <= swoop__hist_bounds_ns[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* One observation by the block's writer: two relaxed adds on its own lines. */
static inline void swoop__hist_observe(swoop_srv_hist_t *h, uint64_t ns)
{
    atomic_fetch_add_explicit(&h->bucket[swoop__hist_bucket(ns)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

/* HTTP status classes with their own latency histogram: 1xx .. 5xx. */
#define SWOOP_METRICS_CLASSES 5
/* Task posting times kept for the wait histogram (a ring by task id). */
#define SWOOP_TASK_STAMPS 4096

/*
 * After the counter blocks: per event worker, metric_ports x 5 latency
 * histograms then its IPC hop histogram; per task worker, its wait and run
 * histograms; the task workers' pids (one int32 each, padded to a line);
 * the task posting stamps.
 */
static inline size_t swoop__metrics_per_worker(int ports)
{
    return (size_t)ports * SWOOP_METRICS_CLASSES + 1;
}

static inline size_t swoop__metrics_size(int workers, int reactors, int ports, int tasks)
{
    size_t pids = ((size_t)tasks * sizeof(int32_t) + 63) / 64 * 64;
    return ((size_t)workers * swoop__metrics_per_worker(ports) + (size_t)tasks * 2 +
            (size_t)reactors * (size_t)ports * SWOOP_METRICS_CLASSES) *
               sizeof(swoop_srv_hist_t) +
           pids + SWOOP_TASK_STAMPS * sizeof(uint64_t);
}

static inline size_t swoop__shared_size_of(int workers, int reactors, int ports, int tasks)
{
    return sizeof(swoop_srv_shared_t) + (size_t)workers * sizeof(swoop_srv_wstat_t) +
           (size_t)(workers + reactors) * sizeof(swoop_srv_counter_t) +
           swoop__metrics_size(workers, reactors, ports, tasks);
}

static inline size_t swoop__shared_size(const swoop_srv_shared_t *gs)
{
    return swoop__shared_size_of(gs->worker_num, gs->reactor_num, gs->metric_ports,
                                 gs->metric_tasks);
}

/* The first histogram of the metrics region. */
static inline swoop_srv_hist_t *swoop__hists(swoop_srv_shared_t *gs)
{
    return (swoop_srv_hist_t *)(swoop__counter(gs, gs->worker_num + gs->reactor_num));
}

/* Worker w's latency histogram of port index p, status class cls (0: 1xx). */
static inline swoop_srv_hist_t *swoop__hist_latency(swoop_srv_shared_t *gs, int w, int p, int cls)
{
    return swoop__hists(gs) + (size_t)w * swoop__metrics_per_worker(gs->metric_ports) +
           (size_t)p * SWOOP_METRICS_CLASSES + (size_t)cls;
}

/* Worker w's IPC hop histogram (owner queued the request -> the worker took it). */
static inline swoop_srv_hist_t *swoop__hist_hop(swoop_srv_shared_t *gs, int w)
{
    return swoop__hists(gs) + (size_t)w * swoop__metrics_per_worker(gs->metric_ports) +
           (size_t)gs->metric_ports * SWOOP_METRICS_CLASSES;
}

/* Task worker t's (0-based) wait (run 0) or run (run 1) histogram. */
static inline swoop_srv_hist_t *swoop__hist_task(swoop_srv_shared_t *gs, int t, int run)
{
    return swoop__hists(gs) + (size_t)gs->worker_num * swoop__metrics_per_worker(gs->metric_ports) +
           (size_t)t * 2 + (size_t)run;
}

/* Task worker t's pid slot. */
static inline _Atomic int32_t *swoop__task_pid(swoop_srv_shared_t *gs, int t)
{
    return (_Atomic int32_t *)(swoop__hist_task(gs, gs->metric_tasks, 0)) + t;
}

/* The task posting stamps: slot id % SWOOP_TASK_STAMPS holds (id tag << 40) | posted us. */
static inline _Atomic uint64_t *swoop__task_stamps(swoop_srv_shared_t *gs)
{
    size_t pids = ((size_t)gs->metric_tasks * sizeof(int32_t) + 63) / 64 * 64;
    return (_Atomic uint64_t *)((char *)swoop__hist_task(gs, gs->metric_tasks, 0) + pids);
}

/*
 * PROCESS reactor thread r's latency histogram of port index p, status class
 * cls, for the responses it gives itself (static files): after the task
 * stamps (version 10). BASE has none: its owner is a worker, whose own
 * latency blocks take those responses.
 */
static inline swoop_srv_hist_t *swoop__hist_owner(swoop_srv_shared_t *gs, int r, int p, int cls)
{
    return (swoop_srv_hist_t *)(swoop__task_stamps(gs) + SWOOP_TASK_STAMPS) +
           ((size_t)r * (size_t)gs->metric_ports + (size_t)p) * SWOOP_METRICS_CLASSES + (size_t)cls;
}

/*
 * BASE: one range of fd_limit session slots. There are 2 x worker_num
 * ranges; the manager hands a free one to each worker process right before
 * its fork and takes it back when it reaps that pid, so an old process that
 * finishes its requests after a reload or max_request (while its
 * replacement already runs under the same worker id, with the same fd
 * numbers) never shares a slot with it.
 */
typedef struct swoop_srv_range_s {
    _Atomic int32_t pid;       /* 0 free, -1 reserved for a fork under way, else the holder */
    _Atomic int32_t worker_id; /* of the holder */
    _Atomic uint32_t hwm;      /* 1 + the highest fd the holder accepted (what to sweep) */
    /* The accept policy on a shared listening socket (worker.c) reads these of every holder. */
    _Atomic int32_t accepting; /* watching the listening sockets (not draining, not paused) */
    _Atomic int32_t conns;     /* connections it holds open */
    _Atomic uint32_t accepts;  /* connections it accepted (progress, wraps) */
} swoop_srv_range_t;

/* One connection's shared record, at slot (fd, or range * fd_limit + fd in BASE). */
typedef struct swoop_session_s {
    _Atomic uint64_t id; /* 0 = free; stored last when a connection opens */
    _Atomic uint32_t closed;
    int32_t fd;
    int16_t reactor_id;
    uint16_t port_index;
    _Atomic uint64_t uid;
    _Atomic uint64_t out_queued; /* bytes accepted by a send, not yet written (conn.c) */
    uint64_t connect_ms;
    _Atomic uint64_t last_recv_ms;
    /*
     * The port's protocol's, written by the owner: HTTP keeps there what any
     * process needs to answer the request being served (http/internal.h).
     */
    _Atomic uint32_t proto_flags;
    _Atomic int32_t proto_taker; /* the worker process that took the request (HTTP) */
    /*
     * The protocol the connection speaks now (SWOOP_PROTO_*; it may change:
     * an HTTP request upgraded to WebSocket), set by the owner.
     */
    _Atomic uint32_t proto_kind;
    /* HTTP: a detached request's owner stamp (queued_us), for its latency when answered. */
    _Atomic uint32_t proto_stamp;
    swoop_addr_t peer;
} swoop_session_t;

typedef struct swoop_reactor_s swoop_reactor_t;
typedef struct swoop_conn_s swoop_conn_t;

/*
 * A protocol above the byte stream (src/http/, later src/ws/), set on a
 * port at start. The connection owner (PROCESS reactor thread, BASE
 * worker) hands it the bytes instead of the port's framing; the worker
 * hands it the port's messages instead of on_receive. The layer above
 * registers it with swoop__server_set_proto (an upward call through this
 * table, never an include).
 */
typedef struct swoop_proto_s {
    const char *name;
    int kind; /* SWOOP_PROTO_*: its index in swoop_server_t.protos */
    /* Owner: a connection of the port opened / is freed (c->proto_state is the protocol's). */
    void (*conn_open)(swoop_conn_t *c);
    void (*conn_free)(swoop_conn_t *c);
    /*
     * Owner: bytes at the front of data[0, len) (c->in or the reactor's read
     * buffer, writable: a decoder may work in place). Returns how many it
     * consumed, with *need set to the bytes it wants buffered before the
     * next call (0 when unknown), or -1 when c must not be touched (closed).
     * It delivers with swoop__conn_deliver and answers with swoop__conn_send.
     */
    ssize_t (*input)(swoop_conn_t *c, char *data, size_t len, size_t *need);
    /* Owner, about once a second for each open connection of the port (its timeouts). */
    void (*tick)(swoop_conn_t *c, uint64_t now_ms);
    /* Owner: a send flagged with reply flags (SWOOP_REPLY_*) was queued on c. */
    void (*reply)(swoop_conn_t *c, uint32_t flags);
    /* Owner: c's output fell below SWOOP_PROTO_OUT_LOW after the protocol asked (proto_drain). */
    void (*drained)(swoop_conn_t *c);
    /* Owner: whether c is in the middle of a request (a retiring BASE worker keeps it open). */
    int (*busy)(swoop_conn_t *c);
    /*
     * Owner: the server closes c on purpose (not a reset): 1 when the client
     * may still be sending, so the close lingers (conn.c, lingering close):
     * a request or message not read whole, bytes read behind the one being
     * answered, a close handshake the client has not answered, a client
     * that did not ask for the close (HTTP keep-alive). 0 when it said it
     * is done (HTTP: Connection: close, its request read whole; WebSocket:
     * its close frame came). NULL, or 0: the engine lingers only for input
     * it holds unread or finds waiting in the kernel when it closes the fd.
     */
    int (*peer_may_send)(swoop_conn_t *c);
    /*
     * Owner: the server shuts down, or a retiring BASE worker (reload,
     * max_request) gives c up; the protocol may tell the client first (a
     * WebSocket close frame 1001). `wait` 1: the owner still reads c, so the
     * protocol may await the client's answer and close c itself (returns 1;
     * called again on each pass, it must be idempotent); 0, or a return of
     * 0: the caller closes c. May close c itself (look it up again).
     */
    int (*going_away)(swoop_conn_t *c, int wait);
    /* Worker: a message delivered for a connection of the port. */
    void (*message)(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, char *data,
                    size_t len);
    /*
     * Event worker: a message another worker or a task worker relayed with
     * swoop__server_relay (a process without a route to the connection
     * owners asks one that has one).
     */
    void (*relay)(swoop_server_t *srv, char *data, size_t len);
    /*
     * Owner: a message a worker sent with swoop__server_proto_out, for
     * connection `conn` of this engine (0: for the engine as a whole).
     */
    void (*out)(swoop_reactor_t *r, swoop_conn_id_t conn, const char *data, size_t len);
    /* Worker: a connection that spoke this protocol closed (before on_close). */
    void (*closed)(swoop_server_t *srv, swoop_conn_id_t conn);
    /* Owner: the engine r is freed: the protocol frees r->proto_owner[kind] (its per-owner state).
     */
    void (*owner_free)(swoop_reactor_t *r);
} swoop_proto_t;

/* Output bytes a protocol lets queue before it stops taking requests, and resumes below. */
#define SWOOP_PROTO_OUT_HIGH (1u << 20)
#define SWOOP_PROTO_OUT_LOW  (256u << 10)

/* Reply flags (SEND aux): what the protocol learns when the bytes are queued. */
#define SWOOP_REPLY_END     0x1u /* the bytes end one response */
#define SWOOP_REPLY_CLOSE   0x2u /* close the connection once they are written */
#define SWOOP_REPLY_UPGRADE 0x4u /* the response switched protocols (HTTP 101) */
/*
 * UPGRADE: the bits from here up are the new protocol's argument (its
 * conn_open finds it in c->proto_arg), e.g. the WebSocket extensions the
 * worker agreed to in the 101; 24 bits.
 */
#define SWOOP_REPLY_ARG_SHIFT 8

/* Protocol kinds a port can speak (swoop_server_t.protos). */
enum { SWOOP_PROTO_HTTP = 0, SWOOP_PROTO_WS = 1, SWOOP_PROTO_MAX = 4 };

/* A listening port. */
struct swoop_port_s {
    swoop_server_t *srv;
    int index;
    swoop_sock_type_t type;
    int fd;
    int port;
    char host[108];
    swoop_port_settings_t settings; /* as the user set them (with inherit values) */
    swoop_port_settings_t eff;      /* resolved at start */
    swoop_framing_t framing;
    const swoop_proto_t *proto;              /* set at start from the port's settings, or NULL */
    char static_root[SWOOP_SERVER_PATH_MAX]; /* HTTP: realpath of document_root, "" none */
    int access_fd; /* HTTP: http_access_log, opened at start (O_APPEND), or -1 */
    int dgram;
    int listen_backlog;
    swoop_io_t io;        /* accept / datagram watcher of the process or thread serving it */
    int ssl;              /* SWOOP_SSL was in its type: connections begin with a TLS handshake */
    swoop_tls_conf_t tls; /* its TLS settings as set (inherit values), resolved at start */
    /*
     * Built at start in the master, before any fork; replaced by a
     * certificate reload. The reactor threads open connections from it
     * while the master's main thread swaps it: both under tls_lock, so the
     * context a thread read keeps its port's reference until the new
     * connection holds its own (the replaced one lives on exactly as long
     * as its connections do).
     */
    swoop_tls_ctx_t *tls_ctx;
    pthread_mutex_t tls_lock;
};


/*
 * OPEN: reading and writing. PEER_EOF: the peer half-closed (read() = 0):
 * no more reading, CLOSE is on its way to the worker behind the last DATA,
 * the session stays open for replies until the worker acknowledged it.
 * DRAINING: closed (by the server, or after PEER_EOF was acknowledged), the
 * pending output is written for at most max_wait_time, then RST. WAIT_ACK:
 * output dropped, waiting for the worker's acknowledgement of CLOSE.
 * LINGER: released (session, protocol, buffers; not found by id), its FIN
 * sent, the fd read and the bytes dropped until the client's EOF or the
 * lingering bounds, then closed (lingering close, see conn.c).
 */
enum { CONN_OPEN = 0, CONN_DRAINING = 1, CONN_WAIT_ACK = 2, CONN_PEER_EOF = 3, CONN_LINGER = 4 };

/* A connection, private to the reactor (thread or BASE worker) that owns it. */
struct swoop_conn_s {
    swoop_io_t io;
    swoop_reactor_t *reactor;
    swoop_session_t *sess;
    swoop_port_t *port;
    swoop_conn_id_t id;
    int fd;
    int state;
    int paused;
    int writing;     /* WRITABLE interest on */
    int worker_id;   /* PROCESS: the worker that got CONNECT and gets CLOSE */
    int data_worker; /* PROCESS: the worker the last DATA went to (dispatch_mode may vary it) */
    int notified;    /* on_close ran (and was acknowledged): freeing needs no more CLOSE */
    uint64_t last_recv_ms;
    uint64_t state_ms; /* when it entered the current state */
    int ipc_blocked;   /* PROCESS: reading paused while worker (ipc_blocked - 1)'s queue drains */
    int user_paused;   /* PROCESS: swoop_server_pause in force (kept across ipc_blocked) */
    size_t scan;
    swoop_buf_t in;
    swoop_buf_t out;
    swoop_queue_t files; /* sendfile ranges waiting, in output order with `out` */
    swoop_queue_t link;
    const swoop_proto_t *proto; /* the protocol it speaks (the port's, until one switches it) */
    uint32_t proto_arg;         /* for its conn_open: swoop__conn_set_proto's argument */
    void *proto_state;          /* the protocol's (swoop_proto_t) */
    int proto_hold;             /* the protocol holds the reading (swoop__conn_hold) */
    int proto_drain;            /* the protocol waits for the output to drain (drained) */
    swoop_tls_t *tls;           /* a SWOOP_SSL port's: the record layer under everything */
    int tls_hs;                 /* the TLS handshake is under way: no I/O of the layers above */
    int tls_want;               /* handshake: what it waits for (SWOOP_TLS_WANT_*) */
};

/* A connection engine: one PROCESS reactor thread, or the engine of a BASE worker. */
struct swoop_reactor_s {
    swoop_server_t *srv;
    int id;
    swoop_loop_t *loop;
    pthread_t thread;
    int thread_started;
    swoop_queue_t conns;
    int nconns; /* entries of conns */
    int64_t tick_timer;
    uint64_t next_heartbeat_ms;
    swoop_srv_counter_t *cnt; /* this engine's traffic counters */
    char *rdbuf;              /* SWOOP_READ_BUF bytes */
    unsigned rr;              /* round-robin cursor */
    /* PROCESS: one channel per worker, [w] = pair (w, this reactor) */
    swoop_ipc_out_t *outs;
    swoop_io_t *pipe_io;
    swoop_ipc_in_t in;
    swoop_ipc_rbuf_t rb;
    swoop_ring_t **in_rings; /* ipc_ring: [w] = ring from worker w */
    swoop_io_t wake_io;      /* ipc_ring: this reactor's eventfd */
    int stop;
    /*
     * Shutdown (conn.c): no_read = intake stopped, connections are not read
     * any more; workers_gone (PROCESS) = every worker exited and its
     * channel was read to the end, so no CLOSE is sent or awaited.
     */
    int no_read;
    int workers_gone;
    int intake_acked;       /* PROCESS: the main thread was told the queues to workers are empty */
    int draining;           /* delivering what is left before the thread stops */
    int blocked;            /* connections paused for a full worker queue */
    uint64_t dgram_dropped; /* datagrams dropped for a full worker queue, since the log */
    uint64_t dgram_drop_log_ms; /* when that was last logged */
    swoop_io_t *port_io;        /* datagram ports this reactor reads, by port index */
    /* swoop__conn_send_many: its io_uring (lazy) and scratch for batch_cap connections */
    swoop_sendmany_t *sendmany;
    int sendmany_refused; /* io_uring could not be opened: send() one by one */
    swoop_conn_t **batch_conns;
    int *batch_fds;
    ssize_t *batch_res;
    size_t batch_cap;
    /* State a protocol keeps per owner rather than per connection (freed by its owner_free). */
    void *proto_owner[SWOOP_PROTO_MAX];
};

struct swoop_server_s {
    swoop_mode_t mode;
    swoop_server_settings_t settings;
    swoop_tls_conf_t tls; /* the server-wide TLS settings (net/tls.h), set by name */
    swoop_server_events_t events;
    void *data;
    swoop_port_t **ports;
    int nports;
    int started; /* swoop_server_start ran in this process */
    int running; /* swoop_server_start is on this process's stack */

    /* Shared memory. */
    swoop_srv_shared_t *gs;
    size_t gs_size;
    /* admin_port (admin.c): the listening socket (-1 off) and, in the manager, its process. */
    int admin_fd;
    pid_t admin_pid;           /* the admin process, 0 while none runs */
    int64_t admin_timer;       /* its pending restart, 0 none */
    uint64_t admin_spawned_ms; /* when it was forked (a quick death waits before the next) */
    int gs_fd;
    swoop_session_t *sessions;
    size_t sessions_size;
    /*
     * TLS: the verified client certificate's subject per session slot
     * (SWOOP_TLS_SUBJECT_MAX bytes each), written by the owner before the
     * worker hears of the connection; mapped only when a port verifies
     * client certificates (ssl_client_cert_file).
     */
    char *tls_subjects;
    size_t tls_subjects_size;
    uint32_t fd_limit; /* slots per owner */
    /* BASE: the session ranges (manager-assigned), and the one this process holds. */
    swoop_srv_range_t *ranges;
    size_t ranges_size;
    int nranges;
    int range;          /* manager: the range of the fork under way; worker: its own; else -1 */
    uint32_t slot_base; /* worker: range * fd_limit */
    swoop_proc_stat_t *proc_stats;
    size_t proc_stats_size;

    /* Channels: pairs[w * reactor_num + r] (PROCESS); msgs[w] (both modes). */
    swoop_channel_t *pairs;
    swoop_channel_t *msgs;
    int reactor_num;
    int worker_num;
    /*
     * ipc_ring (PROCESS): rings [2 * (w * reactor_num + r)] to worker w from
     * reactor r and [... + 1] back, `ring_stride` bytes apart; wakers and
     * eventfds of the readers: workers 0..W-1, then reactors W..W+R-1.
     */
    char *rings;
    size_t ring_stride;
    size_t rings_size;
    swoop_ring_waker_t *wakers;
    int *wake_fds;

    /* Master (PROCESS). */
    swoop_reactor_t *reactors;
    swoop_conn_t **conns; /* by fd; each touched only by its reactor thread */
    pid_t manager_pid;
    int pid_file_written;
    int accept_paused;
    int accept_balance; /* BASE, shared listening socket, worker_num > 1: the accept policy */
    int accept_yielded; /* BASE: accept stopped for ACCEPT_YIELD_MS, others hold fewer */
    int accept_stuck;   /* BASE: the others took nothing for ACCEPT_STUCK_MS: not waited for */
    uint32_t accept_yield_progress; /* BASE: the others' accepts when we yielded */
    uint64_t accept_stall_ms;       /* BASE: since when their accepts stayed at that */
    int64_t accept_timer;
    uint64_t shutdown_ms; /* when the shutdown began (master) */
    int intake_wait;      /* reactor threads yet to acknowledge the intake stop */
    int manager_signalled;
    int64_t intake_timer;
    int64_t escalate_timer; /* shutdown: SIGKILL of a manager that does not finish */
    int manager_killed;     /* escalate_cb fired */
    swoop_manager_t mgr;

    /* Worker side. */
    int worker_id; /* -1 outside workers */
    int worker_stopping;
    int worker_draining;     /* BASE: flushing its connections' output before the exit */
    const char *drain_why;   /* BASE, draining: "shutdown", "reload" or "max_request" (logs) */
    int worker_retiring;     /* BASE: max_request reached; drained from the main loop */
    int64_t task_poll_timer; /* BASE shutdown: connections wait for the tasks still running */
    int64_t requests;
    int64_t request_limit;
    swoop_reactor_t *base;    /* BASE: this worker's engine */
    swoop_ipc_out_t *wouts;   /* PROCESS: to reactor r; */
    swoop_ring_t **win_rings; /* ipc_ring: [r] = ring from reactor r */
    swoop_io_t wwake_io;      /* ipc_ring: this worker's eventfd */
    swoop_io_t *wpipe_io;
    swoop_ipc_in_t win; /* reassembly of the reactor channels' messages */
    swoop_ipc_in_t
        win_msg; /* and of the message channel's (kept apart: see worker_finish_partial) */
    swoop_ipc_rbuf_t wrb;
    swoop_ipc_out_t *mouts; /* to worker w's message channel */
    swoop_io_t msg_io;
    int cur_port; /* port of the on_packet being handled, -1 */
    /* PROCESS: the connection whose on_close runs; it reads as closed meanwhile. */
    swoop_conn_id_t closing_conn;

    /* Protocols the layers above registered (swoop__server_set_proto), by kind. */
    const swoop_proto_t *protos[SWOOP_PROTO_MAX];
    void (*proto_fn[SWOOP_PROTO_MAX])(void);   /* theirs: the HTTP handler, ... (cast back) */
    void (*proto_hook[SWOOP_PROTO_MAX])(void); /* a second one: HTTP's Expect hook (cast back) */
    void *proto_data[SWOOP_PROTO_MAX];         /* theirs, swoop_malloc'ed (freed with the server) */

    /* Task workers (src/task/); NULL without them. */
    struct swoop_task_s *task;
};

/* Ring to worker w from reactor r (to_worker = 1), or back. */
static inline swoop_ring_t *swoop__ring_of(swoop_server_t *srv, int w, int r, int to_worker)
{
    size_t i = 2 * ((size_t)w * (size_t)srv->reactor_num + (size_t)r) + (to_worker ? 0 : 1);
    return (swoop_ring_t *)(srv->rings + i * srv->ring_stride);
}

/* ---- settings.c ---- */
int swoop__server_parse_int(const char *v, int64_t min, int64_t max, int64_t *out);
/*
 * Start: checks every field of the settings structs (server, protocol
 * defaults, ports) with the string setter's rules; SWOOP_EINVAL naming each
 * bad field (logged).
 */
int swoop__server_settings_check(swoop_server_t *srv);

/* ---- server.c, session.c ---- */
uint64_t swoop__now_ms(void);
/* Session lookup: NULL unless `id` is open. */
swoop_session_t *swoop__session_get(swoop_server_t *srv, swoop_conn_id_t id);
/*
 * Admits a just-accepted fd (PROCESS accept thread and BASE workers alike):
 * refuses it above max_conn (logged at most once a second) or beyond the
 * session table, closing it and returning 0; otherwise applies the port's
 * TCP_NODELAY, publishes its session at slot_base + fd with a new connection
 * id, counts it, and returns the id.
 */
swoop_conn_id_t swoop__session_admit(swoop_server_t *srv, swoop_port_t *p, int fd,
                                     const swoop_addr_t *addr, uint32_t slot_base, int reactor_id);
swoop_session_t *swoop__session_at(swoop_server_t *srv, uint32_t slot);
/* swoop_ipc_gone_cb of the server's readers: the message's writing worker process is gone. */
int swoop__server_writer_gone(void *arg, const swoop_ipc_head_t *head);

/*
 * SIGRTMIN in any server process: reopens the log file and the HTTP access
 * logs under their names (after a rotation), keeping their descriptors.
 */
void swoop__server_reopen_logs(swoop_server_t *srv);

/*
 * Sends the protocol `kind`'s message to event worker `dst` (its relay hook
 * runs there), from an event or a task worker. 0, or a negative error.
 */
int swoop__server_relay(swoop_server_t *srv, int dst, int kind, const void *data, size_t len);

/*
 * Registers protocol `kind` with the layer's user callback `fn` (before
 * start); ports whose settings ask for the protocol speak it.
 */
int swoop__server_set_proto(swoop_server_t *srv, int kind, const swoop_proto_t *proto,
                            void (*fn)(void));
/*
 * A send carrying reply flags (SWOOP_REPLY_*) for the port's protocol:
 * swoop_server_send's checks and routes, from any worker process.
 */
int swoop__server_send_reply(swoop_server_t *srv, swoop_conn_id_t conn, const void *data,
                             size_t len, uint32_t flags);
/*
 * Blocks the calling worker until `len` more bytes fit in the output budget
 * (socket_buffer_size) of `conn`, at most timeout_ms: it flushes what this
 * worker queued for the owners, or writes a connection it owns (BASE)
 * itself. Returns 0, SWOOP_ECLOSED, SWOOP_ETIMEDOUT, or SWOOP_EMSGSIZE when
 * len alone exceeds the budget.
 */
int swoop__server_wait_room(swoop_server_t *srv, swoop_conn_id_t conn, size_t len, int timeout_ms);
/*
 * Sends the protocol `kind`'s message to the owner of `conn` (its out
 * hook runs there), from an event worker; `conn` 0 with `owner` >= 0 sends
 * it to that owner (PROCESS: reactor thread; BASE: worker) as a whole.
 * Not charged to the output budget: the protocol bounds its output itself.
 * Returns 0, SWOOP_ECLOSED, SWOOP_ESTATE (not an event worker) or an IPC error.
 */
int swoop__server_proto_out(swoop_server_t *srv, swoop_conn_id_t conn, int owner, int kind,
                            const void *data, size_t len);
/* The number of connection owners: reactor threads (PROCESS) or workers (BASE). */
int swoop__server_owner_count(const swoop_server_t *srv);
/* The port a connection came in on, or NULL. */
swoop_port_t *swoop__conn_port(swoop_server_t *srv, swoop_conn_id_t conn);

/* ---- conn.c: the connection engine ---- */
/* Hands one packet (or a protocol's message) of c to the worker (PROCESS) or on_receive (BASE). */
void swoop__conn_deliver(swoop_conn_t *c, const char *data, size_t len);
/* The protocol holds (1) or releases (0) the reading of c. */
void swoop__conn_hold(swoop_conn_t *c, int hold);
/*
 * Runs the port's framing or protocol again over what c->in holds (after
 * the protocol released a hold). Must not be called from inside c's own
 * input processing. Returns 0, or -1 when c must not be touched.
 */
int swoop__conn_reframe(swoop_conn_t *c);
/*
 * Switches c to protocol `kind` (registered with swoop__server_set_proto):
 * the old protocol's conn_free, then the new one's conn_open with
 * c->proto_arg = arg. From the owner, inside the old protocol's hooks too
 * (its state is gone afterwards: touch nothing of it).
 */
int swoop__conn_set_proto(swoop_conn_t *c, int kind, uint32_t arg);
/*
 * Scratch room for n connection pointers for swoop__conn_send_many (the
 * engine's own, valid until the next call), or NULL without memory.
 */
swoop_conn_t **swoop__reactor_batch(swoop_reactor_t *r, size_t n);
/*
 * Sends the same bytes to each of cs[0, n) (connections of r), like
 * swoop__conn_send (charged here) for each but with one io_uring
 * submission for all whose output is empty (send() per connection when
 * enable_io_uring is 0, the batch small, or io_uring refused). cs may be
 * the scratch of swoop__reactor_batch; its order is not kept. A connection
 * that fails closes; the others are not touched.
 */
void swoop__conn_send_many(swoop_reactor_t *r, swoop_conn_t **cs, size_t n, const void *data,
                           size_t len);
/* Calls fn on every open connection of the engine r (fn must not free others). */
void swoop__reactor_foreach(swoop_reactor_t *r, void (*fn)(swoop_conn_t *c, void *arg), void *arg);
/* The owner's reply hook: a send with flags was queued on c (calls the protocol). */
void swoop__conn_reply(swoop_conn_t *c, uint32_t flags);
/* BASE: waits up to ms for c's socket to take bytes and writes what it can. */
void swoop__conn_flush_wait(swoop_conn_t *c, int ms);
/* Bytes waiting in c's output (files not counted). */
size_t swoop__conn_out_len(swoop_conn_t *c);
int swoop__reactor_init(swoop_reactor_t *r, swoop_server_t *srv, int id, swoop_loop_t *loop);
void swoop__reactor_free(swoop_reactor_t *r);
/* Adopts an accepted fd whose session is filled; returns the conn or NULL (fd closed). */
swoop_conn_t *swoop__conn_open(swoop_reactor_t *r, int fd, swoop_conn_id_t id, swoop_port_t *port);
/*
 * Queues/writes bytes. `reserved`: the sender already charged `len` to the
 * session (swoop__session_reserve); else this call does. Returns 0,
 * SWOOP_EBUFFERFULL, SWOOP_ECLOSED or SWOOP_ENOMEM (the connection closes).
 */
int swoop__conn_send(swoop_conn_t *c, const void *data, size_t len, int reserved);
/* swoop__conn_send (charged here) with MSG_MORE: a file (swoop__conn_sendfile) follows at once. */
int swoop__conn_send_more(swoop_conn_t *c, const void *data, size_t len);
/*
 * Charges `len` bytes to the output budget of session `s` (which must hold
 * `id`): SWOOP_EBUFFERFULL past socket_buffer_size (logged), SWOOP_ECLOSED
 * if the slot changed hands. The owner releases them as they are written or
 * dropped (swoop__session_release, which never goes below zero).
 */
int swoop__session_reserve(swoop_server_t *srv, swoop_session_t *s, swoop_conn_id_t id, size_t len);
void swoop__session_release(swoop_session_t *s, size_t len);
/* Server-side close: after pending output unless `reset`. */
void swoop__conn_close(swoop_conn_t *c, int reset);
/* The worker acknowledged CLOSE (PROCESS): release. */
void swoop__conn_release(swoop_conn_t *c);
void swoop__conn_pause(swoop_conn_t *c, int pause);
/*
 * sendfile: opens `path` read-only and checks it is a regular file holding
 * [offset, offset + *len) (*len 0 = to the end, set to the real length).
 * Returns the fd or a negative error (logged): -ENOENT..., -EISDIR,
 * SWOOP_EINVAL for another non-regular file or a range past the end.
 */
int swoop__sendfile_open(const char *path, off_t offset, size_t *len);
/* Queues a file range behind the connection's pending output; takes `fd`. */
int swoop__conn_sendfile(swoop_conn_t *c, int fd, off_t offset, size_t len);
/* The payload of a SENDFILE message: offset, length, then the path. */
typedef struct swoop_sendfile_req_s {
    int64_t offset;
    uint64_t length;
} swoop_sendfile_req_t;
/* The owner's side of a SENDFILE message (opens the path again). */
void swoop__conn_sendfile_msg(swoop_conn_t *c, const char *data, size_t len);
/* Closes every connection without callbacks (shutdown). */
void swoop__reactor_close_all(swoop_reactor_t *r, int notify);
/*
 * Shutdown, intake stop: reads each open connection once more (what the
 * kernel already holds is framed and delivered; BASE: its callbacks run),
 * then reads none of them any more.
 */
void swoop__reactor_stop_reading(swoop_reactor_t *r);
/*
 * Shutdown, the end: a connection with nothing to write is closed now (FIN;
 * BASE: on_close runs), one with output closes once it is flushed. PROCESS
 * calls it with workers_gone set: CLOSE acknowledgements still awaited are
 * given up (the channels were read to the end).
 */
void swoop__reactor_finish(swoop_reactor_t *r);
/*
 * A drain out of time: resets what is left (logged once with the count,
 * under `why`: "shutdown", or a BASE worker's "reload" or "max_request").
 */
void swoop__reactor_expire(swoop_reactor_t *r, const char *why);
/* Periodic work: heartbeat and overdue CLOSE acknowledgements. */
void swoop__reactor_tick(swoop_reactor_t *r);
/* Finds this reactor's connection by id, or NULL. */
swoop_conn_t *swoop__reactor_conn(swoop_reactor_t *r, swoop_conn_id_t id);
/* Reads datagrams of a datagram port and delivers them. */
void swoop__port_dgram_readable(swoop_reactor_t *r, swoop_port_t *p);

/* ---- dispatch.c ---- */
int swoop__dispatch_worker(swoop_reactor_t *r, swoop_conn_t *c);
int swoop__dispatch_dgram_worker(swoop_reactor_t *r, const swoop_addr_t *from);
int swoop__dispatch_close_worker(swoop_reactor_t *r, swoop_conn_t *c);

/* ---- master.c ---- */
int swoop__master_run(swoop_server_t *srv);
/* Reactor-side delivery (PROCESS): CONNECT / DATA / CLOSE / DGRAM to workers. */
void swoop__master_deliver_connect(swoop_reactor_t *r, swoop_conn_t *c);
void swoop__master_deliver_data(swoop_reactor_t *r, swoop_conn_t *c, const char *data, size_t len);
/*
 * CLOSE to the worker, acknowledged when it ran on_close; 0, or -1 when
 * nothing was sent (no on_close, unless `always`: the acknowledgement then
 * also tells that the worker handled every DATA before it).
 */
int swoop__master_deliver_close(swoop_reactor_t *r, swoop_conn_t *c, int always);
void swoop__master_deliver_dgram(swoop_reactor_t *r, swoop_port_t *p, const swoop_addr_t *from,
                                 const char *data, size_t len);

int swoop__server_manager_run(swoop_server_t *srv);
int swoop__server_write_pid_file(swoop_server_t *srv);
void swoop__server_remove_pid_file(swoop_server_t *srv);

/* ---- worker.c ---- */
int swoop__worker_main(void *data, int worker_id);
/* Manager, PROCESS: process `pid` of worker `id` was reaped; frees the id's token if it held it. */
void swoop__worker_token_reaped(swoop_server_t *srv, int id, pid_t pid);
int swoop__base_run(swoop_server_t *srv);
/* BASE-side delivery: callbacks in the worker itself. */
void swoop__base_deliver_data(swoop_reactor_t *r, swoop_conn_t *c, const char *data, size_t len);
void swoop__base_deliver_dgram(swoop_reactor_t *r, swoop_port_t *p, const swoop_addr_t *from,
                               const char *data, size_t len);

/* ---- src/task/ (the interface the server uses) ---- */
#include "task/task.h"

/* CLOCK_MONOTONIC microseconds (the task stamps; one clock for every process). */
static inline uint64_t swoop__mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#define SWOOP_TASK_STAMP_US_BITS 40 /* 12.7 days of microseconds */
#define SWOOP_TASK_STAMP_US_MASK ((1ull << SWOOP_TASK_STAMP_US_BITS) - 1)

/* The poster of task `id`: its posting time, tagged with the id's bits above the slot. */
static inline void swoop__task_stamp_post(swoop_srv_shared_t *gs, uint64_t id)
{
    uint64_t tag = (id / SWOOP_TASK_STAMPS) & ((1ull << (64 - SWOOP_TASK_STAMP_US_BITS)) - 1);
    atomic_store_explicit(&swoop__task_stamps(gs)[id % SWOOP_TASK_STAMPS],
                          tag << SWOOP_TASK_STAMP_US_BITS |
                              (swoop__mono_us() & SWOOP_TASK_STAMP_US_MASK),
                          memory_order_relaxed);
}

/*
 * The task worker that took task `id` at now_us: its wait in ns, or -1
 * when the slot was stamped again by a later task (more than
 * SWOOP_TASK_STAMPS posted since) and the wait is unknown.
 */
static inline int64_t swoop__task_stamp_wait(swoop_srv_shared_t *gs, uint64_t id, uint64_t now_us)
{
    uint64_t v =
        atomic_load_explicit(&swoop__task_stamps(gs)[id % SWOOP_TASK_STAMPS], memory_order_relaxed);
    uint64_t tag = (id / SWOOP_TASK_STAMPS) & ((1ull << (64 - SWOOP_TASK_STAMP_US_BITS)) - 1);
    if (v >> SWOOP_TASK_STAMP_US_BITS != tag)
        return -1;
    uint64_t us = (now_us - (v & SWOOP_TASK_STAMP_US_MASK)) & SWOOP_TASK_STAMP_US_MASK;
    return (int64_t)(us * 1000u);
}

/* ---- metrics.c, admin.c ---- */

/*
 * stats.c: maps the stats memfd of process pid read-only (*size bytes) after
 * checking its magic, version and layout; munmap it after use.
 */
int swoop__stats_map_pid(pid_t pid, swoop_srv_shared_t **gs, size_t *size);

/* stats.c: the figures of gs (swoop_server_stats). */
void swoop__stats_fill(swoop_srv_shared_t *gs, swoop_server_stats_t *out);

/* A label value with \\, \" and \n escaped into dst (cap bytes, NUL-terminated); the length it
 * needs. */
size_t swoop__metrics_escape(char *dst, size_t cap, const char *s);

/* Renders the metrics of gs (mapped gs_size bytes) into buf; the length needed (see
 * swoop_server_metrics). */
int swoop__metrics_render(swoop_srv_shared_t *gs, char *buf, size_t cap);

/* Parses an admin_port value into host (cap bytes; "127.0.0.1" when none is given) and port. */
int swoop__admin_parse(const char *v, char *host, size_t cap, int *port);

/*
 * Binds admin_port (before a fork: a busy port fails the start at once),
 * publishes the port bound (gs->admin_port) and logs it; 0 when off.
 */
int swoop__admin_open(swoop_server_t *srv);

/* Manager: forks the admin process if admin_port is open and none runs; 0 or -errno. */
int swoop__admin_spawn(swoop_server_t *srv);

/* Manager: a child was reaped: 1 if it was the admin process (restarted unless shutting down). */
int swoop__admin_reaped(swoop_server_t *srv, pid_t pid, int code, int signo);

/* Manager: SIGRTMIN to the admin process (it reopens the log file). */
void swoop__admin_reopen(swoop_server_t *srv);

/* Stops the admin process (SIGTERM, bounded wait, SIGKILL) if this process runs one; closes
 * the socket. No-op when off. */
void swoop__admin_stop(swoop_server_t *srv);

/* A forked child, or the master once the manager has the socket: closes its copy. */
void swoop__admin_child(swoop_server_t *srv);

#endif /* SWOOP_SERVER_INTERNAL_H */
