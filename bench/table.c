/*
 * Table throughput: set, get and incr on a shared swoop_table_t from one and
 * from two processes, beside the same operations on a plain in-process hash
 * map (open addressing, same key hash, no sharing, no locks): the ceiling.
 * Each figure runs for about one second; the ratio column is 1-process
 * table ops/s over the ceiling, both measured in this run.
 */
#include <swoop/table.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shm/internal.h"

enum { NKEYS = 10000, MAP_SLOTS = 32768, DURATION_MS = 1000 };

static char keys[NKEYS][16];

typedef enum { OP_SET, OP_GET, OP_INCR } op_t;
static const char *op_names[] = {"set", "get", "incr"};

/* The ceiling: an in-process open-addressing map, int64 values. */
typedef struct {
    char key[16];
    int64_t n;
    int used;
} slot_t;
static slot_t map[MAP_SLOTS];

static slot_t *map_find(const char *key, int create)
{
    size_t len = strlen(key);
    size_t i = swoop__table_hash(0, key, len) & (MAP_SLOTS - 1);
    for (;; i = (i + 1) & (MAP_SLOTS - 1)) {
        slot_t *s = &map[i];
        if (!s->used) {
            if (!create)
                return NULL;
            s->used = 1;
            memcpy(s->key, key, len + 1);
            return s;
        }
        if (memcmp(s->key, key, len + 1) == 0)
            return s;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile int64_t sink;

/* Runs `op` for DURATION_MS; returns operations per second. */
static double run(swoop_table_t *t, op_t op, unsigned seed)
{
    uint64_t n = 0;
    double start = now_s(), end = start + DURATION_MS / 1000.0, now;
    unsigned k = seed;
    do {
        for (int i = 0; i < 1024; i++, n++) {
            const char *key = keys[(k = k * 1103515245u + 12345u) % NKEYS];
            int64_t v = 0;
            if (t == NULL) {
                slot_t *s = map_find(key, op != OP_GET);
                if (op == OP_SET)
                    s->n = (int64_t)n;
                else if (op == OP_GET)
                    v = s->n;
                else
                    v = ++s->n;
            } else if (op == OP_SET) {
                swoop_table_set_int(t, key, "n", (int64_t)n);
            } else if (op == OP_GET) {
                swoop_table_get_int(t, key, "n", &v);
            } else {
                swoop_table_incr(t, key, "n", 1, &v);
            }
            sink += v;
        }
        now = now_s();
    } while (now < end);
    return (double)n / (now - start);
}

static double run_procs(swoop_table_t *t, op_t op, int nproc)
{
    double *res = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED)
        exit(1);
    for (int i = 0; i < nproc; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            res[i] = run(t, op, 77u + (unsigned)i);
            _exit(0);
        }
    }
    while (wait(NULL) > 0) {
    }
    double total = 0;
    for (int i = 0; i < nproc; i++)
        total += res[i];
    munmap(res, 4096);
    return total;
}

int main(void)
{
    for (int i = 0; i < NKEYS; i++)
        snprintf(keys[i], sizeof(keys[i]), "key-%d", i);
    swoop_table_t *t;
    if (swoop_table_new(&t, NKEYS, 0.2) < 0 || swoop_table_column(t, "n", SWOOP_TABLE_INT, 0) < 0 ||
        swoop_table_create(t) < 0) {
        fprintf(stderr, "table setup failed\n");
        return 1;
    }
    for (int i = 0; i < NKEYS; i++) {
        swoop_table_set_int(t, keys[i], "n", i);
        map_find(keys[i], 1)->n = i;
    }
    printf("%d keys, %d ms per figure, %ld cores\n", NKEYS, DURATION_MS,
           sysconf(_SC_NPROCESSORS_ONLN));
    printf("%-5s | %14s | %14s | %14s | %6s\n", "op", "1 proc ops/s", "2 procs ops/s",
           "ceiling ops/s", "ratio");
    printf("------+----------------+----------------+----------------+-------\n");
    for (op_t op = OP_SET; op <= OP_INCR; op++) {
        double one = run_procs(t, op, 1);
        double two = run_procs(t, op, 2);
        double ceiling = run(NULL, op, 77u);
        printf("%-5s | %14.0f | %14.0f | %14.0f | %6.2f\n", op_names[op], one, two, ceiling,
               one / ceiling);
    }
    swoop_table_free(t);
    return 0;
}
