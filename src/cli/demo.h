/*
 * `swoop demo` in two files: demo.c (the line protocol, the task worker
 * side, start-up) and demo_http.c (the HTTP and WebSocket port: the
 * dashboard and the demo endpoints). What they share is here.
 */
#ifndef SWOOP_CLI_DEMO_H
#define SWOOP_CLI_DEMO_H

#include <stdint.h>

#include <swoop/swoop.h>

#define DEMO_TASK_MAX 10000000L /* task N / wait N: the sieve's bound */
#define DEMO_WAIT_MS  5000

enum { DEMO_PRIMES = 1, DEMO_BIG = 2 };

/* A task: this header, then (bigtask) the payload. Results are a demo_result_t. */
typedef struct demo_task_s {
    uint64_t conn; /* the line-protocol connection to answer, or 0 */
    uint32_t kind;
    uint32_t sum;  /* bigtask: the payload's checksum */
    uint64_t n;    /* task: the bound; bigtask: the payload size */
    uint64_t http; /* GET /task: the detached response to answer, or 0 */
} demo_task_t;

typedef struct demo_result_s {
    uint64_t conn;
    uint64_t http;
    uint32_t kind;
    int32_t worker_id; /* the task worker that ran it */
    uint64_t n;
    uint64_t value;  /* task: the prime count; bigtask: 1 if the checksum matched */
    char path[1100]; /* bigtask: the temp file that carried it, or "inline" */
} demo_result_t;

/* The HTTP port's number and host, for the load generator (set before the start). */
extern int demo_http_port;
extern char demo_http_host[64];

/* Sets the HTTP and WebSocket handlers on srv (open_http_protocol ports). */
int demo_http_setup(swoop_server_t *srv);

/* An event worker started: its dashboard push timer. */
void demo_http_worker_start(swoop_server_t *srv, int worker_id);

/* A result of a GET /task task (r->http != 0): answers it. */
void demo_http_task_done(swoop_server_t *srv, int64_t task_id, const demo_result_t *r);

/* A task without a result: 1 if it was a GET /task one (answered with 500 here), else 0. */
int demo_http_task_error(swoop_server_t *srv, int64_t task_id, int error);

#endif /* SWOOP_CLI_DEMO_H */
