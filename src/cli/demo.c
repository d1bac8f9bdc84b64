/*
 * `swoop demo`: placeholder until the event loop lands.
 */
#include <stdio.h>

#include <swoop/swoop.h>

#include "cli/cli.h"

int swoop_cli_demo(int argc, char **argv)
{
    printf("swoop %s demo\n", swoop_version());
    return 0;
}
