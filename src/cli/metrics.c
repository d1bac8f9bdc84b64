/*
 * `swoop metrics --pid-file F` (or `--pid P`): prints a running server's
 * metrics in the Prometheus text format, read from its shared memory and
 * /proc without disturbing it (docs/api/metrics.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/swoop.h>

#include "cli/cli.h"

int swoop_cli_metrics(int argc, char **argv)
{
    long pid;
    int rc = swoop_cli_target_pid("metrics", argc, argv, &pid);
    if (rc != 0)
        return rc;
    /* The length needed comes first; the text may grow between two reads (a worker starts). */
    size_t cap = 65536;
    for (int tries = 0; tries < 4; tries++) {
        char *buf = malloc(cap);
        if (buf == NULL)
            return 1;
        int n = swoop_server_metrics_by_pid((pid_t)pid, buf, cap);
        if (n < 0) {
            fprintf(stderr, "swoop metrics: no swoop server stats in process %ld: %s\n", pid,
                    swoop_strerror(n));
            free(buf);
            return 1;
        }
        if ((size_t)n < cap) {
            fwrite(buf, 1, (size_t)n, stdout);
            free(buf);
            return 0;
        }
        free(buf);
        cap = (size_t)n + 4096;
    }
    fprintf(stderr, "swoop metrics: the text kept growing\n");
    return 1;
}
