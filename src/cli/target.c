/*
 * What the inspecting subcommands (stats, metrics) share: the running
 * server they read, named by `--pid-file F` or `--pid P`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

int swoop_cli_target_pid(const char *cmd, int argc, char **argv, long *pid)
{
    *pid = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pid-file") == 0 && i + 1 < argc) {
            FILE *f = fopen(argv[++i], "r");
            if (f == NULL || fscanf(f, "%ld", pid) != 1) {
                fprintf(stderr, "swoop %s: cannot read a pid from %s\n", cmd, argv[i]);
                if (f)
                    fclose(f);
                return 1;
            }
            fclose(f);
        } else if (strcmp(argv[i], "--pid") == 0 && i + 1 < argc) {
            *pid = atol(argv[++i]);
        } else {
            *pid = 0; /* an argument we do not know: the usage */
            break;
        }
    }
    if (*pid > 0)
        return 0;
    fprintf(stderr, "usage: swoop %s --pid-file F | --pid P\n", cmd);
    return 2;
}
