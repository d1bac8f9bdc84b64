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
    long pid = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pid-file") == 0 && i + 1 < argc) {
            FILE *f = fopen(argv[++i], "r");
            if (f == NULL || fscanf(f, "%ld", &pid) != 1) {
                fprintf(stderr, "swoop metrics: cannot read a pid from %s\n", argv[i]);
                if (f)
                    fclose(f);
                return 1;
            }
            fclose(f);
        } else if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc) {
            pid = atol(argv[++i]);
        } else {
            fprintf(stderr, "usage: swoop metrics --pid-file F | --pid P\n");
            return 2;
        }
    }
    if (pid <= 0) {
        fprintf(stderr, "usage: swoop metrics --pid-file F | --pid P\n");
        return 2;
    }
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
