/*
 * `swoop stats --pid-file F` (or `--pid P`): prints a running server's
 * stats as one JSON object, read from its shared memory without
 * disturbing it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swoop/swoop.h>

#include "cli/cli.h"

int swoop_cli_stats(int argc, char **argv)
{
    long pid = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pid-file") == 0 && i + 1 < argc) {
            FILE *f = fopen(argv[++i], "r");
            if (f == NULL || fscanf(f, "%ld", &pid) != 1) {
                fprintf(stderr, "swoop stats: cannot read a pid from %s\n", argv[i]);
                if (f)
                    fclose(f);
                return 1;
            }
            fclose(f);
        } else if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc) {
            pid = atol(argv[++i]);
        } else {
            fprintf(stderr, "usage: swoop stats --pid-file F | --pid P\n");
            return 2;
        }
    }
    if (pid <= 0) {
        fprintf(stderr, "usage: swoop stats --pid-file F | --pid P\n");
        return 2;
    }
    swoop_server_stats_t st;
    int rc = swoop_server_stats_by_pid((pid_t)pid, &st);
    if (rc < 0) {
        fprintf(stderr, "swoop stats: no swoop server stats in process %ld: %s\n", pid,
                swoop_strerror(rc));
        return 1;
    }
    char json[16384];
    if (swoop_server_stats_json(&st, json, sizeof(json)) < 0)
        return 1;
    printf("%s\n", json);
    return 0;
}
