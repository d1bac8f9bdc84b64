/* Subcommands of the swoop tool, one file each. */
#ifndef SWOOP_CLI_H
#define SWOOP_CLI_H

int swoop_cli_demo(int argc, char **argv);
int swoop_cli_stats(int argc, char **argv);

/* `swoop metrics --pid-file F`: the Prometheus text of a running server (metrics.c). */
int swoop_cli_metrics(int argc, char **argv);
int swoop_cli_serve(int argc, char **argv);

/*
 * The server a stats or metrics command reads: `--pid-file F` or `--pid P`
 * in argv[1..]. 0 with *pid set; 1 (an unreadable pid file) or 2 (usage)
 * after a message naming `cmd`.
 */
int swoop_cli_target_pid(const char *cmd, int argc, char **argv, long *pid);

struct swoop_server_s;
/* Applies `--set key=value` options; 0, or 2 after a message naming `cmd` and the bad one. */
int swoop_cli_apply_sets(struct swoop_server_s *srv, const char *cmd, const char *const *sets,
                         int n);

#endif /* SWOOP_CLI_H */
