/*
 * The server (DESIGN.md sections 1, 2 and 5): Swoole's architecture as a C
 * library. PROCESS mode: a master process whose main thread accepts and
 * whose `reactor_num` reactor threads do all connection I/O and framing,
 * a manager process that supervises `worker_num` worker processes, and the
 * workers, which run the callbacks. BASE mode: every worker accepts and
 * serves its own connections, with no hop; the manager still supervises.
 * The same API and callbacks serve both modes. docs/api/server.md describes
 * both, every setting and the dispatch modes.
 *
 * Connections are named by swoop_conn_id_t, never by fd: an id is never
 * reused during a server's life, so a late send to a closed connection fails
 * with SWOOP_ECLOSED instead of reaching a stranger.
 */
#ifndef SWOOP_SERVER_H
#define SWOOP_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <swoop/common.h>
#include <swoop/socket.h>

SWOOP_BEGIN_DECLS

/** A server (opaque). */
typedef struct swoop_server_s swoop_server_t;
/** A listening port of a server (opaque). */
typedef struct swoop_port_s swoop_port_t;
/** A connection id: unique for the server's life, 0 is never an id. */
typedef uint64_t swoop_conn_id_t;

/** Server modes (the numbers follow Swoole's SWOOLE_BASE / SWOOLE_PROCESS). */
typedef enum {
    SWOOP_MODE_BASE = 1,   /**< workers accept and serve their own connections */
    SWOOP_MODE_PROCESS = 2 /**< master with reactor threads, connections handed to workers */
} swoop_mode_t;

/** Longest path in the settings, including the NUL. */
#define SWOOP_SERVER_PATH_MAX 1024

/** The access log's line formats (http_access_log_format; docs/api/http.md). */
typedef enum swoop_access_log_format_e {
    SWOOP_ACCESS_LOG_COMBINED = 0, /**< "combined": common plus Referer and User-Agent */
    SWOOP_ACCESS_LOG_COMMON = 1,   /**< "common": host, time, request line, status, bytes */
    SWOOP_ACCESS_LOG_JSON = 2      /**< "json": one JSON object a line, duration and pid too */
} swoop_access_log_format_t;

/**
 * Protocol settings of one listening port. A field left at its "inherit"
 * value (-1, or an empty string / 0 character) takes the server-level
 * value of the same name at start.
 */
typedef struct swoop_port_settings_s {
    /** Deliver data once the buffer ends with package_eof (0/1; -1 inherit). */
    int open_eof_check;
    /** One packet per package_eof (implies the check) (0/1; -1 inherit). */
    int open_eof_split;
    /** 1 to 8 bytes ("" inherit). */
    char package_eof[9];
    /** Frame by a length field (0/1; -1 inherit). */
    int open_length_check;
    /** One of c C s S n v l L N V q Q (0 inherit). */
    char package_length_type;
    /** Offset of the length field (-1 inherit). */
    int package_length_offset;
    /** The length counts from here: packet = body offset + length (-1 inherit). */
    int package_body_offset;
    /** Largest packet; a larger one closes its connection (-1 inherit). */
    int64_t package_max_length;
    /** Seconds without received data after which a connection is closed; 0 off (-1 inherit). */
    int heartbeat_idle_time;
    /** TCP_NODELAY on accepted connections (0/1; -1 inherit). */
    int open_tcp_nodelay;
    /** listen() backlog (-1 inherit). */
    int backlog;
    /** The port speaks HTTP/1.1 (swoop/http.h) (0/1; -1 inherit) [0]. */
    int open_http_protocol;
    /** HTTP: largest request head in bytes, 431 above (-1 inherit) [16384]. */
    int http_max_header_size;
    /** HTTP: seconds an idle keep-alive connection is kept; 0 off (-1 inherit) [60]. */
    int http_keepalive_timeout;
    /** HTTP: seconds to receive a whole request head, else 408 (-1 inherit) [30]. */
    int http_header_timeout;
    /** HTTP: seconds without a byte of a body being received, else 408 (-1 inherit) [60]. */
    int http_body_timeout;
    /** HTTP: requests per connection, the last answered with Connection: close; 0 no limit (-1
     * inherit) [0]. */
    int http_max_requests_per_conn;
    /** HTTP: serve files under document_root before the handler (0/1; -1 inherit) [0]. */
    int enable_static_handler;
    /** HTTP: the static files' directory ("" inherit / none). */
    char document_root[SWOOP_SERVER_PATH_MAX];
    /** HTTP: a directory's index files, comma-separated, the first that exists wins ("" inherit)
     * [index.html]. */
    char http_index_files[SWOOP_SERVER_PATH_MAX];
    /** HTTP: an HTML listing of a directory without an index file (0/1; -1 inherit) [0]. */
    int http_autoindex;
    /** HTTP: comma-separated URL path prefixes ("/static,/assets") that alone go to the static
     * handler, a missing file there a 404 ("" inherit / every path) [""]. */
    char static_handler_locations[SWOOP_SERVER_PATH_MAX];
    /** HTTP: follow symlinks that lead out of document_root (0/1; -1 inherit) [0]. */
    int static_follow_symlinks;
    /** HTTP: access log file, one line per request ("" inherit / none). */
    char http_access_log[SWOOP_SERVER_PATH_MAX];
    /** HTTP: the access log's SWOOP_ACCESS_LOG_* format (-1 inherit) [combined]. */
    int http_access_log_format;
    /** HTTP: bodies above this many bytes go to a file in upload_tmp_dir as they arrive (-1
     * inherit) [1M]. */
    int64_t http_body_memory_max;
    /** HTTP: where large request bodies go ("" inherit) [/tmp: a disk, not RAM]. */
    char upload_tmp_dir[SWOOP_SERVER_PATH_MAX];
    /**
     * HTTP: largest file of a multipart/form-data upload in bytes, 413
     * above; 0 no limit but package_max_length (-1 inherit) [2M].
     */
    int64_t upload_max_filesize;
    /** HTTP: compress responses the client accepts in gzip or deflate (0/1; -1 inherit) [1]. */
    int http_compression;
    /** HTTP: zlib level 1 (fastest) .. 9 (smallest) (-1 inherit) [1]. */
    int http_compression_level;
    /** HTTP: bodies of fewer bytes are sent as they are (-1 inherit) [20]. */
    int64_t http_compression_min_length;
    /**
     * HTTP: the Content-Types compressed, comma-separated; a subtype "*" matches a
     * whole type, a lone "*" every one ("" inherit) [text/html, text/plain, text/css,
     * text/javascript, text/xml, application/javascript, application/json,
     * application/xml, image/svg+xml].
     */
    char http_compression_types[SWOOP_SERVER_PATH_MAX];
    /**
     * The port speaks WebSocket (swoop/websocket.h) on top of HTTP/1.1: an
     * upgrade request becomes a WebSocket connection, other requests stay
     * HTTP (0/1; -1 inherit) [0].
     */
    int open_websocket_protocol;
    /** WebSocket: largest message in bytes, closed with 1009 above (-1 inherit) [2M]. */
    int64_t websocket_max_message_size;
    /** WebSocket: seconds between the server's pings; a ping unanswered that long closes; 0 off
     * (-1 inherit) [0]. */
    int websocket_ping_interval;
    /** WebSocket: deliver close frames to on_message too (0/1; -1 inherit) [0]. */
    int open_websocket_close_frame;
    /** WebSocket: deliver ping frames to on_message too (the owner answers them) (0/1; -1
     * inherit) [0]. */
    int open_websocket_ping_frame;
    /** WebSocket: deliver pong frames to on_message too (0/1; -1 inherit) [0]. */
    int open_websocket_pong_frame;
    /** WebSocket: the subprotocol accepted when the client offers it ("" inherit / none). */
    char websocket_subprotocol[SWOOP_SERVER_PATH_MAX];
    /** WebSocket: output bytes a connection may have waiting before the policy applies (-1
     * inherit) [4M]. */
    int64_t websocket_output_high_water;
    /** WebSocket: above the high-water mark: 0 close the connection, 1 drop the newest message
     * (setting values "close", "drop"; -1 inherit) [close]. */
    int websocket_output_policy;
    /**
     * WebSocket: permessage-deflate (RFC 7692) with clients that offer it;
     * the negotiated connection compresses what the server sends and
     * inflates what it receives (0/1; -1 inherit) [0].
     */
    int websocket_compression;
    /** WebSocket: with compression, messages of fewer bytes go uncompressed (-1 inherit) [64]. */
    int64_t websocket_compression_min_length;
    /**
     * WebSocket: with compression, the server keeps a compression context
     * per connection when the client allows it (a better ratio, up to
     * 256 KiB per connection); 0 answers every offer with
     * server_no_context_takeover, so connections share their owner's
     * compressor (0/1; -1 inherit) [1].
     */
    int websocket_compression_context_takeover;
    /**
     * HTTP: the Server field of every response the library makes (owner
     * errors, static files, handler responses unless they set their own);
     * printable ASCII, under 128 bytes ("" inherit; "" at the server level:
     * no Server field) [swoop].
     */
    char http_server_name[128];
} swoop_port_settings_t;

/**
 * Server settings; change them between swoop_server_new and
 * swoop_server_start through this struct or swoop_server_set (same names,
 * Swoole's). Defaults in brackets.
 */
typedef struct swoop_server_settings_s {
    /** PROCESS: reactor threads; 0 = CPU count, capped at worker_num [min(CPUs, 8)]. */
    int reactor_num;
    /** Event workers [CPU count]. */
    int worker_num;
    /**
     * Task workers: blocking processes that run on_task, with worker ids
     * worker_num .. worker_num + task_worker_num - 1 [0].
     */
    int task_worker_num;
    /**
     * How tasks reach task workers [1]: 1 = a datagram socketpair per task
     * worker (an idle one is chosen); 2 = a SysV message queue, each task
     * addressed to one task worker; 3 = a SysV message queue the task
     * workers compete for (the destination of swoop_server_task is ignored).
     */
    int task_ipc_mode;
    /**
     * task_ipc_mode 2, 3: the SysV key of the queue; 0 = a private queue
     * removed at shutdown; a key = a queue that outlives the server, and the
     * tasks in it (`ipcs -q`, `ipcrm -q`) [0].
     */
    int message_queue_key;
    /**
     * When a task worker dies in on_task (crash, SIGKILL), deliver its task
     * again, to another task worker, up to this many times
     * (swoop_server_task_attempt counts); 0 = never: the posting worker gets
     * on_task_error (or taskwait returns SWOOP_ECANCELED) [0].
     */
    int task_redeliver;
    /**
     * Bytes of the spill file: one temporary file in task_tmpdir, made at
     * start and unlinked at once, through which payloads between
     * SWOOP_TASK_INLINE_MAX and 64 KiB travel without a file of their own;
     * 0 = every larger payload gets its own file. Rounded down to 64 KiB
     * blocks; reserved at start [16 MiB].
     */
    int64_t task_spill_size;
    /**
     * Bytes of task payloads in flight in the whole server: posted by
     * swoop_server_task / taskwait / taskwait_multi and not yet taken by a
     * task worker (they sit in task_tmpdir, a queue or a worker's memory).
     * A post that would pass it fails with SWOOP_EAGAIN (one larger than
     * the cap with SWOOP_EMSGSIZE); 0 = no cap [min(1 GiB, RAM / 4)].
     */
    int64_t task_max_pending_bytes;
    /**
     * Directory (absolute, existing) of the temporary files that carry a task or
     * result above SWOOP_TASK_INLINE_MAX bytes: swoop-task.<master pid>.XXXXXX
     * [/dev/shm (RAM-backed) when writable, else /tmp].
     */
    char task_tmpdir[SWOOP_SERVER_PATH_MAX];
    /**
     * Tasks after which a task worker is replaced (the tasks queued for it
     * wait for its successor); 0 never [0].
     */
    int64_t task_max_request;
    /** Requests after which a worker is replaced; 0 never [0]. */
    int64_t max_request;
    /** Random extra requests 0..grace; -1 = max_request/2 when max_request > 10 [-1]. */
    int64_t max_request_grace;
    /** PROCESS: 1 round robin, 2 fd modulo, 3 idle worker, 4 IP hash, 5 uid [2]. */
    int dispatch_mode;
    /** Most simultaneous connections; more are closed at accept [min(100000, RLIMIT_NOFILE)]. */
    int max_conn;
    /** Bytes one send may carry at most [8 MiB]. */
    int64_t buffer_output_size;
    /** Bytes a connection's output buffer may hold; above it send fails [8 MiB]. */
    int64_t socket_buffer_size;
    /** Seconds between idle scans; 0 off (idle_time alone sets it to idle/2) [0]. */
    int heartbeat_check_interval;
    /** Use SO_REUSEPORT: in BASE mode every worker has its own listening socket [0]. */
    int enable_reuse_port;
    /** Reload all workers at once (1) or one by one (0) [1]. */
    int reload_async;
    /** Seconds a stopping worker may take before it is killed [3]. */
    int max_wait_time;
    /** Write the master's pid here at start, remove it at exit ("" none) [""]. */
    char pid_file[SWOOP_SERVER_PATH_MAX];
    /** Log file of every server process ("" stderr) [""]. */
    char log_file[SWOOP_SERVER_PATH_MAX];
    /** Log level, SWOOP_LOG_*; -1 leaves it alone [-1]. */
    int log_level;
    /** Detach from the terminal (double fork, setsid) [0]. */
    int daemonize;
    /**
     * IPC between reactor threads and workers: 1 = collect the messages of
     * one wake-up and send them with one sendmmsg per channel; 0 = one
     * sendmsg per message [1].
     */
    int ipc_batch;
    /**
     * PROCESS mode transport between reactor threads and workers: 1 = a
     * shared-memory ring per direction and pair, with an eventfd wake-up
     * only when the reader sleeps; 0 = the SOCK_DGRAM socketpairs [1].
     */
    int ipc_ring;
    /**
     * A broadcast (swoop_ws_broadcast) writes to the connections of a
     * reactor thread or BASE worker with one io_uring submission instead of
     * one send() each: 1 = when the kernel allows io_uring (else send(),
     * noted once in the log), 0 = always send() [1].
     */
    int enable_io_uring;
    /**
     * 1 = every on_receive, HTTP handler (via the protocol's message hook),
     * WebSocket on_message, on_packet and callback of a timer armed with
     * swoop_timer_after/tick in an event worker runs in a coroutine of its own
     * (<swoop/co.h>), so it may call swoop_co_* functions and
     * swoop_server_taskwait waits without blocking the worker; the payload
     * the callback gets stays valid until it returns, even across waits [0].
     */
    int enable_coroutine;
    /** Usable stack bytes of each such coroutine (16 KiB .. 1 GiB) [256 KiB]. */
    int64_t coroutine_stack_size;
    /**
     * PROCESS: bytes a reactor thread may queue in memory for one worker
     * that does not keep up (beyond what the channel's socket holds); past
     * it, the reactor stops reading the connections feeding that worker
     * until the queue drains. At least 64 KiB [32 MiB].
     */
    int64_t pipe_buffer_size;
    /**
     * Lingering close: milliseconds a connection the server closed may
     * still be read (and the bytes dropped) after its FIN, so a client that
     * is still sending gets the last answer rather than a reset; 0 closes
     * at once [2000].
     */
    int lingering_time;
    /** Lingering close: milliseconds without a byte from the client that end it [500]. */
    int lingering_timeout;
    /**
     * Latency histograms (HTTP requests, IPC hop, task wait and run; see
     * docs/api/metrics.md): 1 = kept, 0 = not measured (their samples stay
     * 0; counters and gauges are kept either way) [1].
     */
    int enable_metrics;
    /**
     * Serve GET /metrics (Prometheus text) and /stats.json over HTTP on
     * this port, from a process of its own (forked and restarted by the
     * manager) that runs no user code, so it answers while every worker is
     * stuck: "PORT" (127.0.0.1) or "HOST:PORT" ("[v6]:PORT"); port 0 lets
     * the kernel pick one (swoop_server_admin_port); "" off [""].
     */
    char admin_port[64];
    /** Default protocol settings of every port (no field is "inherit" here). */
    swoop_port_settings_t protocol;
} swoop_server_settings_t;

/** Connection details (swoop_server_conn_info). */
typedef struct swoop_conn_info_s {
    swoop_conn_id_t conn_id;  /**< the connection */
    int fd;                   /**< its descriptor in the process that owns it */
    int reactor_id;           /**< PROCESS: reactor thread; BASE: worker id */
    int server_port;          /**< the local port it came in on (0 for Unix sockets) */
    int port_index;           /**< index of its swoop_port_t in listen order */
    swoop_addr_t peer;        /**< remote address */
    uint64_t connect_time_ms; /**< CLOCK_MONOTONIC ms of the accept */
    uint64_t last_recv_ms;    /**< CLOCK_MONOTONIC ms of the last data received */
    uint64_t uid;             /**< bound with swoop_server_bind_uid, else 0 */
} swoop_conn_info_t;

/**
 * Renders the server's metrics in the Prometheus text format 0.0.4 (the
 * list: docs/api/metrics.md) into buf (cap bytes, NUL-terminated when it
 * fits). Any process of a started server may call it. Returns the length
 * the whole text needs without the NUL (like snprintf: >= cap means cut),
 * or SWOOP_EINVAL / SWOOP_ESTATE (not started).
 */
int swoop_server_metrics(swoop_server_t *srv, char *buf, size_t cap);

/**
 * swoop_server_metrics of the server whose process `pid` is (any of its
 * processes), read from outside through /proc (`swoop metrics`). Returns
 * the length needed as above, SWOOP_ENOENT (no swoop stats in it),
 * SWOOP_EPROTO (another layout version), SWOOP_EACCES, or -errno.
 */
int swoop_server_metrics_by_pid(pid_t pid, char *buf, size_t cap);

/**
 * The TCP port admin_port listens on (the one the kernel picked for port
 * 0), from any process of a started server; 0 when admin_port is off, or
 * SWOOP_EINVAL / SWOOP_ESTATE (not started). From outside:
 * swoop_server_stats_t.admin_port.
 */
SWOOP_EXTERN int swoop_server_admin_port(swoop_server_t *srv);

/**
 * The dashboard's snapshot (docs/api/metrics.md#dashboard): one JSON object
 * with the server's counters, the request latency histogram (per-bucket
 * counts) and its process tree (master and reactor threads, manager,
 * workers, task workers with pid, state, CPU, RSS, requests (a reactor
 * thread: the bytes it read and wrote), starts),
 * written into buf (cap bytes, NUL-terminated when it fits) from any
 * process of a started server. Returns the length needed (>= cap: cut),
 * SWOOP_EINVAL or SWOOP_ESTATE. The page sends it nothing; a server that
 * serves the page itself pushes this once a second over the WebSocket at
 * /live (what admin_port does).
 */
SWOOP_EXTERN int swoop_server_dashboard_json(swoop_server_t *srv, char *buf, size_t cap);

/**
 * The dashboard's files, compiled into the library: `path` "/" (or
 * "/index.html") is the page, "/chart.js" Chart.js. Sets *data (static,
 * never freed), *len and *content_type; returns 0, SWOOP_ENOENT for any
 * other path, or SWOOP_EINVAL.
 */
SWOOP_EXTERN int swoop_server_dashboard_asset(const char *path, const void **data, size_t *len,
                                              const char **content_type);

/** Per-worker figures in swoop_server_stats_t. */
typedef struct swoop_worker_stats_s {
    pid_t pid;         /**< current process, 0 while none runs */
    int busy;          /**< 1 while it runs a callback */
    uint64_t requests; /**< packets its current process handled */
    uint64_t starts;   /**< processes started for this worker id */
} swoop_worker_stats_t;

/** The most workers swoop_server_stats_t reports one by one. */
#define SWOOP_STATS_WORKERS_MAX 64

/** Server-wide figures, read from shared memory. */
typedef struct swoop_server_stats_s {
    uint64_t start_time;        /**< unix time of the start */
    int64_t connection_num;     /**< open connections */
    uint64_t accept_count;      /**< connections accepted */
    uint64_t close_count;       /**< connections closed */
    uint64_t request_count;     /**< packets delivered to on_receive / on_packet */
    uint64_t bytes_in;          /**< bytes read from clients */
    uint64_t bytes_out;         /**< bytes written to clients */
    int worker_num;             /**< event workers */
    int reactor_num;            /**< reactor threads (PROCESS), 0 in BASE */
    int mode;                   /**< swoop_mode_t */
    pid_t master_pid;           /**< the master (BASE: the manager) */
    pid_t manager_pid;          /**< the manager */
    int task_worker_num;        /**< task workers */
    int task_idle_worker_num;   /**< task workers not in on_task */
    int64_t tasking_num;        /**< tasks posted and not yet taken by a task worker */
    uint64_t task_count;        /**< on_task calls that returned */
    uint64_t task_redelivered;  /**< tasks delivered again after their task worker died */
    uint64_t task_failed;       /**< tasks reported without a result (on_task_error, taskwait) */
    int64_t task_queue_num;     /**< task_ipc_mode 2, 3: messages in the queue, else -1 */
    int64_t task_queue_bytes;   /**< task_ipc_mode 2, 3: their bytes, else -1 */
    uint64_t http_2xx;          /**< HTTP responses with a 2xx status */
    uint64_t http_3xx;          /**< ... 3xx */
    uint64_t http_4xx;          /**< ... 4xx (those for refused requests too) */
    uint64_t http_5xx;          /**< ... 5xx */
    uint64_t http_bad_requests; /**< HTTP requests the parser refused (400, 413, 431, 501, ...) */
    uint64_t ws_messages_in;    /**< WebSocket messages received (delivered to workers) */
    uint64_t ws_dropped;        /**< WebSocket pushes dropped for a slow reader (policy "drop") */
    uint64_t ws_slow_closed;    /**< WebSocket connections closed for a slow reader ("close") */
    uint64_t sends_batched;  /**< broadcast writes that went through io_uring (enable_io_uring) */
    uint64_t tls_handshakes; /**< TLS handshakes completed (SWOOP_SSL ports) */
    uint64_t tls_handshake_failures; /**< TLS handshakes failed, abandoned or timed out */
    uint64_t
        lingering_closes; /**< closes that lingered (lingering_time: the client may still send) */
    int admin_port;       /**< the port admin_port listens on, 0 when off */
    pid_t admin_pid;      /**< the process serving it, 0 when none runs */
    swoop_worker_stats_t workers[SWOOP_STATS_WORKERS_MAX]; /**< the first worker_num entries */
} swoop_server_stats_t;

/**
 * Callbacks, set once before start with swoop_server_on; all optional. They
 * run in the process their name says; `data` arguments are borrowed for the
 * call only.
 */
typedef struct swoop_server_events_s {
    /** Master (BASE: the manager), once everything started. */
    void (*on_start)(swoop_server_t *srv);
    /** Master, after every other process exited, before swoop_server_start returns. */
    void (*on_shutdown)(swoop_server_t *srv);
    /** Manager, after it forked the workers the first time. */
    void (*on_manager_start)(swoop_server_t *srv);
    /** Manager, after every worker exited. */
    void (*on_manager_stop)(swoop_server_t *srv);
    /** Worker, at its start, before it takes any event. */
    void (*on_worker_start)(swoop_server_t *srv, int worker_id);
    /** Worker, when it stops (shutdown, reload, max_request). */
    void (*on_worker_stop)(swoop_server_t *srv, int worker_id);
    /** Reserved (Swoole's onWorkerExit); not called yet. */
    void (*on_worker_exit)(swoop_server_t *srv, int worker_id);
    /** Manager: a worker exited abnormally (exit code != 0 or signal `signo`). */
    void (*on_worker_error)(swoop_server_t *srv, int worker_id, pid_t pid, int exit_code,
                            int signo);
    /** Worker: a connection opened; runs before any on_receive of it. */
    void (*on_connect)(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id);
    /** Worker: one packet (framed by the port's protocol settings). */
    void (*on_receive)(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id, const void *data,
                       size_t len);
    /** Worker: one datagram of a UDP or Unix datagram port. */
    void (*on_packet)(swoop_server_t *srv, const void *data, size_t len, const swoop_addr_t *from);
    /** Worker: the connection closed; exactly once, after its last on_receive. */
    void (*on_close)(swoop_server_t *srv, swoop_conn_id_t conn, int reactor_id);
    /**
     * Task worker: a task posted by event worker `src_worker_id` with
     * swoop_server_task; answer with swoop_server_task_finish. Required when
     * task_worker_num > 0.
     */
    void (*on_task)(swoop_server_t *srv, int64_t task_id, int src_worker_id, const void *data,
                    size_t len);
    /** Worker: the result of a task this very worker posted (swoop_server_task_finish). */
    void (*on_finish)(swoop_server_t *srv, int64_t task_id, const void *data, size_t len);
    /**
     * Worker: a task it posted with swoop_server_task will have no result:
     * its task worker died in on_task and task_redeliver is 0 or spent
     * (`error` SWOOP_ECANCELED), or the task could not be delivered (its
     * payload could not be read: the error that stopped it).
     */
    void (*on_task_error)(swoop_server_t *srv, int64_t task_id, int error);
    /** Worker: a message from swoop_server_send_message of worker `src_worker_id`. */
    void (*on_pipe_message)(swoop_server_t *srv, int src_worker_id, const void *data, size_t len);
} swoop_server_events_t;

/**
 * Creates a server in `mode`. Returns 0 and sets *out, or SWOOP_EINVAL.
 * Free it with swoop_server_free.
 */
SWOOP_EXTERN int swoop_server_new(swoop_server_t **out, swoop_mode_t mode);

/** Frees the server and closes its ports. Not while it runs (SWOOP_EBUSY). NULL is ignored. */
SWOOP_EXTERN int swoop_server_free(swoop_server_t *srv);

/**
 * Binds a listening socket now (so port 0 resolves at once): `host` is a
 * numeric address or, for Unix types, a path. Sets *out (may be NULL) to the
 * port, owned by the server. Returns 0 or a negative error (logged).
 */
SWOOP_EXTERN int swoop_server_listen(swoop_server_t *srv, const char *host, int port,
                                     swoop_sock_type_t type, swoop_port_t **out);

/** Returns the bound port number (0 for Unix sockets). */
SWOOP_EXTERN int swoop_port_number(const swoop_port_t *port);

/** Returns the listening descriptor of a port. */
SWOOP_EXTERN int swoop_port_fd(const swoop_port_t *port);

/** Returns the port's protocol settings, to change before start. */
SWOOP_EXTERN swoop_port_settings_t *swoop_port_settings(swoop_port_t *port);

/**
 * Sets one protocol setting of a port from a string (the keys are the field
 * names of swoop_port_settings_t). Returns 0, SWOOP_EINVAL for an unknown
 * key or a bad value (logged, naming the key), or SWOOP_ESTATE after start.
 */
SWOOP_EXTERN int swoop_port_set(swoop_port_t *port, const char *key, const char *value);

/** Returns the typed settings, to change before start. */
SWOOP_EXTERN swoop_server_settings_t *swoop_server_settings(swoop_server_t *srv);

/**
 * Sets one setting from a string: every field of swoop_server_settings_t
 * and of swoop_port_settings_t (the server-wide protocol default).
 * Booleans take 0/1/true/false; log_level a name or number. log_level and
 * log_file act at once (log_file opened now: a failure leaves the log and
 * the setting as they were and returns the open error). Returns 0,
 * SWOOP_EINVAL for an unknown key or a bad value (logged, naming the key),
 * or SWOOP_ESTATE after start.
 */
SWOOP_EXTERN int swoop_server_set(swoop_server_t *srv, const char *key, const char *value);

/** Copies the callback table. Returns 0, or SWOOP_ESTATE after start. */
SWOOP_EXTERN int swoop_server_on(swoop_server_t *srv, const swoop_server_events_t *events);

/** Stores a user pointer, inherited by every server process. */
SWOOP_EXTERN void swoop_server_set_data(swoop_server_t *srv, void *data);

/** Returns the user pointer. */
SWOOP_EXTERN void *swoop_server_data(const swoop_server_t *srv);

/**
 * Starts the server and blocks in the master (BASE: the manager) until
 * shutdown (SIGTERM, SIGINT or swoop_server_shutdown). Returns 0 after a
 * clean shutdown, or a negative error (logged). Every field of the
 * settings structs (the server's and each port's) is first checked with the
 * rules of swoop_server_set: a bad one returns SWOOP_EINVAL, logged with the
 * field's name. pid_file and log_file are checked before any fork (also with
 * daemonize, whose caller otherwise exits 0). The calling process must be
 * single-threaded. Never returns in a worker.
 */
SWOOP_EXTERN int swoop_server_start(swoop_server_t *srv);

/* ---- worker side ---- */

/**
 * Sends `len` bytes to a connection (copied). Returns 0, SWOOP_ECLOSED for
 * a connection that is closed or unknown, SWOOP_EBUFFERFULL when its
 * output buffer would pass socket_buffer_size, SWOOP_EMSGSIZE above
 * buffer_output_size, or SWOOP_ESTATE outside an event worker.
 */
SWOOP_EXTERN int swoop_server_send(swoop_server_t *srv, swoop_conn_id_t conn, const void *data,
                                   size_t len);

/**
 * Sends one datagram from the server's datagram port of the address's
 * family (the port of the on_packet being handled, if any). Returns 0 or a
 * negative error.
 */
SWOOP_EXTERN int swoop_server_sendto(swoop_server_t *srv, const swoop_addr_t *to, const void *data,
                                     size_t len);

/**
 * Sends `length` bytes of the regular file `path` from `offset` (0 = to the
 * end) to a connection, with sendfile(2) in the process or thread that owns
 * it, after the output queued before and ahead of what is sent after. The
 * file is checked now: returns 0, -ENOENT (or another open error), -EISDIR,
 * SWOOP_EINVAL for another non-regular file or a range past the end,
 * SWOOP_ECLOSED, or SWOOP_ESTATE outside an event worker.
 */
SWOOP_EXTERN int swoop_server_sendfile(swoop_server_t *srv, swoop_conn_id_t conn, const char *path,
                                       off_t offset, size_t length);

/**
 * Closes a connection once its pending output is written (`reset`: at once,
 * dropping it). on_close follows. Returns 0 or SWOOP_ECLOSED.
 */
SWOOP_EXTERN int swoop_server_close(swoop_server_t *srv, swoop_conn_id_t conn, int reset);

/** Stops reading from a connection. Returns 0 or SWOOP_ECLOSED. */
SWOOP_EXTERN int swoop_server_pause(swoop_server_t *srv, swoop_conn_id_t conn);

/** Reads from a paused connection again. Returns 0 or SWOOP_ECLOSED. */
SWOOP_EXTERN int swoop_server_resume(swoop_server_t *srv, swoop_conn_id_t conn);

/** Returns 1 if the connection is open, else 0. */
SWOOP_EXTERN int swoop_server_exists(swoop_server_t *srv, swoop_conn_id_t conn);

/** Fills `out` for an open connection. Returns 0 or SWOOP_ECLOSED. */
SWOOP_EXTERN int swoop_server_conn_info(swoop_server_t *srv, swoop_conn_id_t conn,
                                        swoop_conn_info_t *out);

/**
 * TLS with client certificates (ssl_verify_peer, ssl_client_cert_file;
 * docs/api/tls.md): copies the subject of the certificate the client of
 * `conn` presented and the server verified, RFC 2253 ("CN=alice,O=Example",
 * at most 255 bytes), into buf (cap bytes, NUL-terminated, cut to fit).
 * Any worker process, from on_connect on. Returns its length, 0 when there
 * is none (no certificate, or the port does not ask for one), SWOOP_ECLOSED
 * or SWOOP_EINVAL.
 */
SWOOP_EXTERN int swoop_server_conn_peer_subject(swoop_server_t *srv, swoop_conn_id_t conn,
                                                char *buf, size_t cap);

/**
 * Binds a connection to `uid` (> 0) once, for dispatch_mode 5: its later
 * packets go to worker uid % worker_num. Returns 0, SWOOP_EEXIST if already
 * bound, or SWOOP_ECLOSED.
 */
SWOOP_EXTERN int swoop_server_bind_uid(swoop_server_t *srv, swoop_conn_id_t conn, uint64_t uid);

/**
 * Sends a message to worker `dst_worker_id` (not the caller), delivered to
 * its on_pipe_message. Any size (chunked). Returns 0 or a negative error.
 */
SWOOP_EXTERN int swoop_server_send_message(swoop_server_t *srv, int dst_worker_id, const void *data,
                                           size_t len);

/**
 * Payloads (tasks and results) up to this many bytes travel inside the IPC
 * message (8 KiB minus the 32-byte IPC header; less if kernel.msgmax is
 * below 8 KiB in task_ipc_mode 2, 3). Larger ones go through a temporary
 * file in task_tmpdir: up to 64 KiB a block of the spill file
 * (task_spill_size) while one is free, else a file of their own, which the
 * reader removes.
 */
#define SWOOP_TASK_INLINE_MAX (8192 - 32)

/**
 * In an event worker: posts a task (`len` bytes, copied) to task worker
 * `dst_task_worker` (0..task_worker_num-1), or with -1 to an idle one (none
 * idle: round robin). Never blocks. Returns the task id (> 0, unique in the
 * server), SWOOP_ESTATE in a task worker or outside a worker (or without
 * task workers), SWOOP_EINVAL for a bad argument, SWOOP_EAGAIN when the
 * pending tasks' bytes would pass task_max_pending_bytes (SWOOP_EMSGSIZE
 * for a task larger than it), or another negative error (logged). on_finish follows in this worker
 * if the task worker calls swoop_server_task_finish.
 */
SWOOP_EXTERN int64_t swoop_server_task(swoop_server_t *srv, const void *data, size_t len,
                                       int dst_task_worker);

/**
 * In an event worker: posts a task as swoop_server_task does and blocks
 * (the worker's loop does not run meanwhile) until its result or
 * `timeout_ms` (> 0). Inside a coroutine (enable_coroutine, or any
 * swoop_co_go) it parks only the coroutine instead: the worker serves
 * other requests meanwhile, and swoop_co_cancel makes it return
 * SWOOP_ECANCELED. It blocks until its result or
 * `timeout_ms` (> 0). Returns 0 with *result (free it with swoop_free; a
 * 0-byte result is a 1-byte block) and *result_len set, SWOOP_ETIMEDOUT
 * (a result that arrives later is dropped, never returned to a later
 * taskwait; on_finish does not run for it), SWOOP_ECANCELED at once when
 * the task worker died running it (and task_redeliver did not send it
 * again), or the errors of swoop_server_task.
 */
SWOOP_EXTERN int swoop_server_taskwait(swoop_server_t *srv, const void *data, size_t len,
                                       int timeout_ms, int dst_task_worker, void **result,
                                       size_t *result_len);

/** The most tasks one swoop_server_taskwait_multi call posts. */
#define SWOOP_TASKWAIT_MULTI_MAX 1024

/**
 * In an event worker: posts `n` tasks (1..SWOOP_TASKWAIT_MULTI_MAX; task i
 * is `lens[i]` bytes at `data[i]`, copied, for task worker `dst[i]` or any
 * idle one with -1; `dst` NULL means -1 for all) and blocks (the worker's
 * loop does not run meanwhile) until every result is in or `timeout_ms`
 * (> 0) passes. Inside a coroutine it parks only the coroutine, as
 * swoop_server_taskwait does; swoop_co_cancel then makes it return
 * SWOOP_ECANCELED (the results already in are freed, every entry NULL).
 * Results come back in input order: `results[i]` (free it with swoop_free;
 * a 0-byte result is a 1-byte block) and `result_lens[i]`, or NULL and 0
 * for a task without a result in time (or one that could not be posted,
 * logged). A result that arrives after the call returned is dropped, never
 * handed to a later taskwait or taskwait_multi; on_finish does not run for
 * these tasks. Returns the number of results (n when all came), or
 * SWOOP_EINVAL / SWOOP_ESTATE as swoop_server_task does (nothing
 * posted then).
 */
SWOOP_EXTERN int swoop_server_taskwait_multi(swoop_server_t *srv, int n, const void *const *data,
                                             const size_t *lens, const int *dst, int timeout_ms,
                                             void **results, size_t *result_lens);

/**
 * In a task worker, inside on_task: sends `len` bytes (copied) as the
 * task's result to the worker that posted it (its on_finish), at most once
 * per task. Blocks while that worker's channel is full. Returns 0,
 * SWOOP_ESTATE outside on_task or for a second result, or a negative error
 * (logged).
 */
SWOOP_EXTERN int swoop_server_task_finish(swoop_server_t *srv, const void *data, size_t len);

/**
 * In a task worker, inside on_task: the path of the temporary file that
 * carried the current task (see SWOOP_TASK_INLINE_MAX): a file of its own
 * (already removed; with task_redeliver removed when on_task returns), or
 * the spill file (removed at start, it has no name on disk). NULL when the
 * task came inline, or outside on_task. Valid until on_task returns.
 */
SWOOP_EXTERN const char *swoop_server_task_path(const swoop_server_t *srv);

/**
 * In a task worker, inside on_task: 1 for a task's first delivery, 2 and up
 * when task_redeliver sent it again after a task worker died running it;
 * 0 outside on_task.
 */
SWOOP_EXTERN int swoop_server_task_attempt(const swoop_server_t *srv);

/** Restarts every worker (as SIGUSR1 to the master does). Returns 0 or an error. */
SWOOP_EXTERN int swoop_server_reload(swoop_server_t *srv);

/**
 * Loads every TLS port's certificate, key and other TLS settings again
 * from their files (as SIGUSR1 to the master does before it reloads the
 * workers): new handshakes use them, established connections keep theirs,
 * session tickets issued before still resume. A port whose new files fail
 * keeps its certificate; the reason is logged. In the process running
 * swoop_server_start (PROCESS: the master; BASE: the manager, whose
 * workers forked afterwards inherit the new ones). Returns 0, the first
 * port's error, or SWOOP_ESTATE elsewhere.
 */
SWOOP_EXTERN int swoop_server_reload_certs(swoop_server_t *srv);

/** Stops the server (as SIGTERM to the master does). Returns 0 or an error. */
SWOOP_EXTERN int swoop_server_shutdown(swoop_server_t *srv);

/** Fills `out` from the shared stats (any server process). Returns 0 or SWOOP_ESTATE. */
SWOOP_EXTERN int swoop_server_stats(swoop_server_t *srv, swoop_server_stats_t *out);

/**
 * Reads the stats of a running server from outside, through the master's
 * pid (its shared stats region is found under /proc/PID/fd). Returns 0,
 * SWOOP_ENOENT when that process has no swoop stats, or -errno.
 */
SWOOP_EXTERN int swoop_server_stats_by_pid(pid_t master_pid, swoop_server_stats_t *out);

/** Writes `st` as one JSON object (no newline) into buf. Returns the length or SWOOP_ENOSPC. */
SWOOP_EXTERN int swoop_server_stats_json(const swoop_server_stats_t *st, char *buf, size_t cap);

/**
 * In a worker: its id (0..worker_num-1; task workers worker_num ..
 * worker_num + task_worker_num - 1). Elsewhere -1.
 */
SWOOP_EXTERN int swoop_server_worker_id(const swoop_server_t *srv);

/** Returns 1 in a task worker, else 0. */
SWOOP_EXTERN int swoop_server_is_task_worker(const swoop_server_t *srv);

/** The master's pid (BASE: the manager's) once started, else 0. */
SWOOP_EXTERN pid_t swoop_server_master_pid(const swoop_server_t *srv);

/** The manager's pid once started, else 0. */
SWOOP_EXTERN pid_t swoop_server_manager_pid(const swoop_server_t *srv);

SWOOP_END_DECLS

#endif /* SWOOP_SERVER_H */
