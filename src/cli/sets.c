/*
 * What the server subcommands (demo, serve) share: their repeatable
 * `--set key=value` options, applied through swoop_server_set.
 */
#include <stdio.h>
#include <string.h>

#include <swoop/server.h>

#include "cli/cli.h"

int swoop_cli_apply_sets(swoop_server_t *srv, const char *cmd, const char *const *sets, int n)
{
    for (int i = 0; i < n; i++) {
        char key[128];
        const char *eq = strchr(sets[i], '=');
        if (eq == NULL || (size_t)(eq - sets[i]) >= sizeof(key)) {
            fprintf(stderr, "swoop %s: --set wants key=value, got \"%s\"\n", cmd, sets[i]);
            return 2;
        }
        memcpy(key, sets[i], (size_t)(eq - sets[i]));
        key[eq - sets[i]] = '\0';
        if (swoop_server_set(srv, key, eq + 1) < 0) {
            fprintf(stderr, "swoop %s: bad setting \"%s\"\n", cmd, sets[i]);
            return 2;
        }
    }
    return 0;
}
