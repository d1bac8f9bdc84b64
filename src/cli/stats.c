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
    long pid;
    int rc = swoop_cli_target_pid("stats", argc, argv, &pid);
    if (rc != 0)
        return rc;
    swoop_server_stats_t st;
    rc = swoop_server_stats_by_pid((pid_t)pid, &st);
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
