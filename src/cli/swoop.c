/*
 * The swoop command line tool: `swoop version`, `swoop demo` (the project's
 * main job, see docs/demo.md), `swoop stats`, `swoop metrics`, `swoop serve` (a static file
 * server).
 */
#include <stdio.h>
#include <string.h>

#include <swoop/swoop.h>

#include "cli/cli.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: swoop <command> [options]\n"
                 "commands:\n"
                 "  demo       run the demo server (see docs/demo.md)\n"
                 "  stats      print a running server's stats as JSON (--pid-file F)\n"
                 "  metrics    print a running server's Prometheus metrics (--pid-file F)\n"
                 "  serve      serve a directory over HTTP (swoop serve [DIR] [--port P] ...)\n"
                 "  version    print the library version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "version") == 0) {
        printf("swoop %s\n", swoop_version());
        return 0;
    }
    if (strcmp(argv[1], "demo") == 0)
        return swoop_cli_demo(argc - 1, argv + 1);
    if (strcmp(argv[1], "stats") == 0)
        return swoop_cli_stats(argc - 1, argv + 1);
    if (strcmp(argv[1], "metrics") == 0)
        return swoop_cli_metrics(argc - 1, argv + 1);
    if (strcmp(argv[1], "serve") == 0)
        return swoop_cli_serve(argc - 1, argv + 1);
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "swoop: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
