/*
 * What /proc says about a process or thread: its scheduler state, CPU time
 * and start time from /proc/PID/stat, its resident memory from statm. One
 * parser for the liveness checks (a zombie counts as gone), the stats
 * tree of the dashboard and the Prometheus process gauges.
 */
#ifndef SWOOP_BASE_PROCSTAT_H
#define SWOOP_BASE_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

typedef struct swoop_procstat_s {
    char state;           /* R, S, D, T, Z, X ... */
    double cpu_s;         /* user + system seconds */
    uint64_t start_ticks; /* clock ticks after boot when it started (field 22) */
} swoop_procstat_t;

/*
 * Reads /proc/PID/stat, or /proc/PID/task/TID/stat for tid > 0 (a thread's
 * own CPU time; /proc/TID/stat reports its whole process's). Returns 0, or
 * -ENOENT / -ESRCH when it is gone, SWOOP_EIO when the file reads empty (it
 * went away meanwhile), SWOOP_EINVAL when the text does not parse, another
 * negative errno when it cannot be opened.
 */
int swoop__procstat_read(pid_t pid, pid_t tid, swoop_procstat_t *out);

/* Resident bytes of PID from /proc/PID/statm: 0, or a negative error as above. */
int swoop__proc_rss(pid_t pid, uint64_t *out);

#endif /* SWOOP_BASE_PROCSTAT_H */
