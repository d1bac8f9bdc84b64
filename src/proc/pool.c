/*
 * The process pool's public API (include/swoop/process.h): creation,
 * settings (typed and string), callbacks, start (daemonize, pid file, log,
 * IPC set-up around the manager loop), message sending and the requests
 * that reach the manager from any pool process. The supervision itself is
 * manager.c; the worker side is worker.c.
 */
#include <swoop/process.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/internal.h"
#include "proc/internal.h"
#include "proc/procfile.h"

#define POOL_WORKER_MAX   1024
#define POOL_PIPE_BUFSIZE (1024 * 1024)

int swoop_pool_new(swoop_pool_t **out, int worker_num)
{
    if (out == NULL || worker_num < 1 || worker_num > POOL_WORKER_MAX) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_pool_new: worker_num %d out of range 1..%d",
                  worker_num, POOL_WORKER_MAX);
        return SWOOP_EINVAL;
    }
    size_t size = sizeof(swoop_pool_shared_t) + (size_t)worker_num * sizeof(swoop_proc_stat_t);
    void *shared = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "mmap() of the pool's %zu-byte stats region failed", size);
        return -err;
    }
    swoop_pool_t *pool = swoop_calloc(1, sizeof(*pool));
    pool->worker_num = worker_num;
    pool->shared = shared;
    pool->shared_size = size;
    pool->worker_id = -1;
    pool->mq.id = -1;
    swoop_pool_settings_t *s = &pool->settings;
    s->max_request = 0;
    s->max_request_grace = -1;
    s->max_wait_time = 3;
    s->reload_async = 1;
    s->daemonize = 0;
    s->log_level = -1;
    s->ipc_mode = SWOOP_POOL_IPC_NONE;
    s->restart_backoff_min_ms = 10;
    s->restart_backoff_max_ms = 3000;
    *out = pool;
    return 0;
}

int swoop_pool_free(swoop_pool_t *pool)
{
    if (pool == NULL)
        return 0;
    if (pool->running)
        return SWOOP_EBUSY;
    munmap(pool->shared, pool->shared_size);
    swoop_free(pool);
    return 0;
}

swoop_pool_settings_t *swoop_pool_settings(swoop_pool_t *pool)
{
    return pool ? &pool->settings : NULL;
}

static int parse_int64(const char *v, int64_t min, int64_t max, int64_t *out)
{
    if (v == NULL || *v == '\0')
        return SWOOP_EINVAL;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || n < min || n > max)
        return SWOOP_EINVAL;
    *out = n;
    return 0;
}

static int parse_bool(const char *v, int64_t *out)
{
    if (v && (strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 || strcmp(v, "1") == 0)) {
        *out = 1;
        return 0;
    }
    if (v && (strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 || strcmp(v, "0") == 0)) {
        *out = 0;
        return 0;
    }
    return SWOOP_EINVAL;
}

static int set_path(char *dst, const char *v)
{
    if (v == NULL || strlen(v) >= SWOOP_POOL_PATH_MAX)
        return SWOOP_EINVAL;
    strcpy(dst, v);
    return 0;
}

int swoop_pool_set(swoop_pool_t *pool, const char *key, const char *value)
{
    if (pool == NULL || key == NULL)
        return SWOOP_EINVAL;
    if (pool->running || pool->worker_id >= 0)
        return SWOOP_ESTATE;
    swoop_pool_settings_t *s = &pool->settings;
    int64_t n = 0;
    int rc;
    if (strcmp(key, "max_request") == 0) {
        if ((rc = parse_int64(value, 0, INT64_MAX, &n)) == 0)
            s->max_request = n;
    } else if (strcmp(key, "max_request_grace") == 0) {
        if ((rc = parse_int64(value, -1, INT64_MAX, &n)) == 0)
            s->max_request_grace = n;
    } else if (strcmp(key, "max_wait_time") == 0) {
        if ((rc = parse_int64(value, 0, 86400, &n)) == 0)
            s->max_wait_time = (int)n;
    } else if (strcmp(key, "reload_async") == 0) {
        if ((rc = parse_bool(value, &n)) == 0)
            s->reload_async = (int)n;
    } else if (strcmp(key, "daemonize") == 0) {
        if ((rc = parse_bool(value, &n)) == 0)
            s->daemonize = (int)n;
    } else if (strcmp(key, "log_level") == 0) {
        rc = swoop_log_level_parse(value);
        if (rc >= 0) {
            s->log_level = rc;
            rc = 0;
        }
    } else if (strcmp(key, "ipc_mode") == 0) {
        rc = 0;
        if (value && strcasecmp(value, "none") == 0)
            s->ipc_mode = SWOOP_POOL_IPC_NONE;
        else if (value && (strcasecmp(value, "pipe") == 0 || strcasecmp(value, "socket") == 0))
            s->ipc_mode = SWOOP_POOL_IPC_PIPE;
        else if (value && (strcasecmp(value, "msgqueue") == 0 || strcasecmp(value, "queue") == 0))
            s->ipc_mode = SWOOP_POOL_IPC_MSGQUEUE;
        else
            rc = SWOOP_EINVAL;
    } else if (strcmp(key, "message_queue_key") == 0) {
        if ((rc = parse_int64(value, 0, INT32_MAX, &n)) == 0)
            s->message_queue_key = (int)n;
    } else if (strcmp(key, "restart_backoff_min_ms") == 0) {
        if ((rc = parse_int64(value, 1, 3600000, &n)) == 0)
            s->restart_backoff_min_ms = (int)n;
    } else if (strcmp(key, "restart_backoff_max_ms") == 0) {
        if ((rc = parse_int64(value, 1, 3600000, &n)) == 0)
            s->restart_backoff_max_ms = (int)n;
    } else if (strcmp(key, "pid_file") == 0) {
        rc = set_path(s->pid_file, value);
    } else if (strcmp(key, "log_file") == 0) {
        rc = set_path(s->log_file, value);
    } else {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_pool_set: unknown key \"%s\"", key);
        return SWOOP_EINVAL;
    }
    if (rc < 0)
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_pool_set: bad value \"%s\" for \"%s\"",
                  value ? value : "(null)", key);
    return rc;
}

int swoop_pool_on(swoop_pool_t *pool, const swoop_pool_events_t *events)
{
    if (pool == NULL || events == NULL)
        return SWOOP_EINVAL;
    if (pool->running)
        return SWOOP_ESTATE;
    pool->events = *events;
    return 0;
}

void swoop_pool_set_data(swoop_pool_t *pool, void *data)
{
    if (pool)
        pool->data = data;
}

void *swoop_pool_data(const swoop_pool_t *pool)
{
    return pool ? pool->data : NULL;
}

int swoop_pool_worker_id(const swoop_pool_t *pool)
{
    return pool ? pool->worker_id : -1;
}

pid_t swoop_pool_manager_pid(const swoop_pool_t *pool)
{
    return pool ? (pid_t)atomic_load(&pool->shared->manager_pid) : 0;
}

int swoop_pool_worker_info(const swoop_pool_t *pool, int worker_id, swoop_pool_worker_info_t *out)
{
    if (pool == NULL || out == NULL || worker_id < 0 || worker_id >= pool->worker_num)
        return SWOOP_EINVAL;
    swoop_proc_stat_t *st = &pool->shared->workers[worker_id];
    out->pid = (pid_t)atomic_load(&st->pid);
    out->requests = atomic_load(&st->requests);
    out->restarts = atomic_load(&st->restarts);
    out->start_ms = atomic_load(&st->start_ms);
    out->last_exit_code = atomic_load(&st->last_exit_code);
    out->last_signal = atomic_load(&st->last_signal);
    out->request_limit = atomic_load(&st->request_limit);
    return 0;
}

/* ---- start ---- */

static void hook_on_start(void *data)
{
    swoop_pool_t *pool = data;
    if (pool->events.on_start)
        pool->events.on_start(pool);
}

static void hook_on_worker_error(void *data, int id, pid_t pid, int code, int signo)
{
    swoop_pool_t *pool = data;
    if (pool->events.on_worker_error)
        pool->events.on_worker_error(pool, id, pid, code, signo);
}

static void hook_on_reopen(void *data)
{
    (void)data;
    int rc = swoop_log_reopen();
    if (rc < 0)
        swoop_log(SWOOP_LOG_ERROR, rc, "reopening the log file failed");
    else
        swoop_log(SWOOP_LOG_INFO, 0, "log file reopened");
}

static void hook_on_shutdown(void *data)
{
    swoop_pool_t *pool = data;
    if (pool->events.on_shutdown)
        pool->events.on_shutdown(pool);
}

/*
 * Double fork: the caller exits, the first child makes a new session and
 * exits, the grandchild (no session leader, so it can never regain a
 * terminal) becomes the manager. stdin goes to /dev/null, stdout and stderr
 * to log_file or /dev/null.
 */
static int pool_daemonize(swoop_pool_t *pool)
{
    pid_t pid = fork();
    if (pid < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "daemonize: fork() failed");
        return -err;
    }
    if (pid > 0)
        _exit(0);
    if (setsid() < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "daemonize: setsid() failed");
        _exit(1);
    }
    pid = fork();
    if (pid < 0) {
        swoop_log(SWOOP_LOG_ERROR, errno, "daemonize: second fork() failed");
        _exit(1);
    }
    if (pid > 0)
        _exit(0);
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const char *outpath = pool->settings.log_file[0] ? pool->settings.log_file : "/dev/null";
    int out = open(outpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (in < 0 || out < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "daemonize: open(%s) failed",
                  in < 0 ? "/dev/null" : outpath);
        if (in >= 0)
            close(in);
        return -err;
    }
    dup2(in, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    close(in);
    close(out);
    return 0;
}

static int write_pid_file(swoop_pool_t *pool)
{
    if (pool->settings.pid_file[0] == '\0')
        return 0;
    int rc = swoop__pid_file_write(pool->settings.pid_file);
    if (rc == 0)
        pool->pid_file_written = 1;
    return rc;
}

static void ipc_close(swoop_pool_t *pool)
{
    if (pool->channels) {
        for (int i = 0; i < pool->worker_num; i++)
            swoop__channel_close(&pool->channels[i]);
        swoop_free(pool->channels);
        pool->channels = NULL;
    }
    swoop__msgqueue_remove(&pool->mq);
}

static int ipc_open(swoop_pool_t *pool)
{
    int rc = 0;
    switch (pool->settings.ipc_mode) {
    case SWOOP_POOL_IPC_NONE:
        return 0;
    case SWOOP_POOL_IPC_PIPE:
        pool->channels = swoop_calloc((size_t)pool->worker_num, sizeof(*pool->channels));
        for (int i = 0; i < pool->worker_num; i++)
            pool->channels[i].fds[0] = pool->channels[i].fds[1] = -1;
        for (int i = 0; i < pool->worker_num && rc == 0; i++)
            rc = swoop__channel_open(&pool->channels[i], POOL_PIPE_BUFSIZE);
        break;
    case SWOOP_POOL_IPC_MSGQUEUE:
        rc = swoop__msgqueue_open(&pool->mq, pool->settings.message_queue_key);
        break;
    default:
        swoop_log(SWOOP_LOG_ERROR, 0, "unknown ipc_mode %d", (int)pool->settings.ipc_mode);
        return SWOOP_EINVAL;
    }
    if (rc < 0)
        ipc_close(pool);
    return rc;
}

int swoop_pool_start(swoop_pool_t *pool)
{
    if (pool == NULL)
        return SWOOP_EINVAL;
    if (pool->running || pool->worker_id >= 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_pool_start: the pool already runs here");
        return SWOOP_ESTATE;
    }
    swoop_pool_settings_t *s = &pool->settings;
    if (s->restart_backoff_min_ms < 1 || s->restart_backoff_max_ms < s->restart_backoff_min_ms ||
        s->max_wait_time < 0 || s->max_request < 0) {
        swoop_log(SWOOP_LOG_ERROR, 0, "swoop_pool_start: inconsistent settings");
        return SWOOP_EINVAL;
    }
    if (s->log_level >= 0)
        swoop_log_set_level(s->log_level);
    int rc;
    if (s->log_file[0] && (rc = swoop_log_open(s->log_file)) < 0) {
        swoop_log(SWOOP_LOG_ERROR, rc, "cannot open log_file \"%s\"", s->log_file);
        return rc;
    }
    if (s->daemonize && (rc = pool_daemonize(pool)) < 0)
        return rc;

    swoop_log_set_role(SWOOP_ROLE_MANAGER, -1);
    memset(pool->shared->workers, 0, (size_t)pool->worker_num * sizeof(swoop_proc_stat_t));
    if ((rc = write_pid_file(pool)) < 0)
        return rc;
    if ((rc = ipc_open(pool)) < 0)
        goto out;

    swoop_manager_hooks_t hooks = {
        .worker_main = swoop__pool_worker_main,
        .role = SWOOP_ROLE_WORKER,
        .data = pool,
        .on_start = hook_on_start,
        .on_worker_error = hook_on_worker_error,
        .on_reopen = hook_on_reopen,
        .on_shutdown = hook_on_shutdown,
    };
    swoop__manager_init(&pool->mgr, pool->worker_num, &hooks);
    pool->mgr.stats = pool->shared->workers;
    pool->mgr.max_wait_ms = s->max_wait_time * 1000;
    pool->mgr.reload_async = s->reload_async;
    pool->mgr.backoff_min_ms = s->restart_backoff_min_ms;
    pool->mgr.backoff_max_ms = s->restart_backoff_max_ms;

    pool->running = 1;
    pool->is_manager = 1;
    atomic_store(&pool->shared->manager_pid, getpid());
    swoop_log(SWOOP_LOG_INFO, 0, "pool manager started: %d workers, ipc_mode %d", pool->worker_num,
              (int)s->ipc_mode);
    rc = swoop__manager_run(&pool->mgr);
    atomic_store(&pool->shared->manager_pid, 0);
    pool->is_manager = 0;
    pool->running = 0;
    swoop__manager_destroy(&pool->mgr);

out:
    ipc_close(pool);
    if (pool->pid_file_written) {
        if (unlink(s->pid_file) < 0)
            swoop_log(SWOOP_LOG_WARNING, errno, "unlink(\"%s\") of the pid file failed",
                      s->pid_file);
        pool->pid_file_written = 0;
    }
    swoop_log_set_role(SWOOP_ROLE_STANDALONE, -1);
    return rc;
}

/* ---- requests from any pool process ---- */

int swoop_pool_send(swoop_pool_t *pool, int worker_id, const void *data, size_t len)
{
    if (pool == NULL || worker_id < 0 || worker_id >= pool->worker_num || (data == NULL && len)) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_pool_send: bad arguments (worker %d, %zu bytes)",
                  worker_id, len);
        return SWOOP_EINVAL;
    }
    if (!pool->running && pool->worker_id < 0) {
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_pool_send: only the manager and workers may send");
        return SWOOP_ESTATE;
    }
    switch (pool->settings.ipc_mode) {
    case SWOOP_POOL_IPC_PIPE:
        if (len > SWOOP_POOL_PIPE_MSG_MAX) {
            swoop_log(SWOOP_LOG_WARNING, 0, "swoop_pool_send: %zu bytes above the %d-byte limit",
                      len, SWOOP_POOL_PIPE_MSG_MAX);
            return SWOOP_EMSGSIZE;
        }
        if (pool->channels == NULL || pool->channels[worker_id].fds[0] < 0) {
            swoop_log(SWOOP_LOG_WARNING, 0, "swoop_pool_send: no channel to worker %d", worker_id);
            return SWOOP_ESTATE;
        }
        return swoop__channel_send(pool->channels[worker_id].fds[0], data, len);
    case SWOOP_POOL_IPC_MSGQUEUE:
        if (pool->mq.id < 0) {
            swoop_log(SWOOP_LOG_WARNING, 0, "swoop_pool_send: the message queue is gone");
            return SWOOP_ESTATE;
        }
        return swoop__msgqueue_send(&pool->mq, (long)worker_id + 1, data, len, 1);
    default:
        swoop_log(SWOOP_LOG_WARNING, 0, "swoop_pool_send: ipc_mode is none");
        return SWOOP_ESTATE;
    }
}

static int signal_manager(swoop_pool_t *pool, int signo)
{
    pid_t mpid = swoop_pool_manager_pid(pool);
    if (mpid <= 0)
        return SWOOP_ESTATE;
    if (kill(mpid, signo) < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_ERROR, err, "kill(%d, %d) of the pool manager failed", (int)mpid,
                  signo);
        return -err;
    }
    return 0;
}

int swoop_pool_reload(swoop_pool_t *pool)
{
    if (pool == NULL)
        return SWOOP_EINVAL;
    if (pool->is_manager) {
        swoop__manager_request_reload(0);
        return 0;
    }
    return signal_manager(pool, SIGUSR1);
}

int swoop_pool_shutdown(swoop_pool_t *pool)
{
    if (pool == NULL)
        return SWOOP_EINVAL;
    if (pool->is_manager) {
        swoop__manager_request_shutdown();
        return 0;
    }
    return signal_manager(pool, SIGTERM);
}
