/* Subcommands of the swoop tool, one file each. */
#ifndef SWOOP_CLI_H
#define SWOOP_CLI_H

int swoop_cli_demo(int argc, char **argv);
int swoop_cli_stats(int argc, char **argv);
int swoop_cli_serve(int argc, char **argv);

#endif /* SWOOP_CLI_H */
