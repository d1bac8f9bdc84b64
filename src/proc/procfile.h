/*
 * Small process-level helpers shared by the pool and the server: the pid
 * file, and the per-process max_request limit with its grace jitter.
 */
#ifndef SWOOP_PROC_PROCFILE_H
#define SWOOP_PROC_PROCFILE_H

#include <stdint.h>

/*
 * Writes this process's pid to `path` (created 0644, truncated). Returns 0,
 * or a negative errno (logged; a partly written file is removed).
 */
int swoop__pid_file_write(const char *path);

/*
 * The request limit of one worker process: max_request plus a random jitter
 * in [0, grace] so that workers started together do not all restart
 * together. grace < 0 means Swoole's default: max_request / 2 when
 * max_request > 10, else 0. Returns 0 when max_request <= 0 (no limit).
 */
int64_t swoop__request_limit(int64_t max_request, int64_t grace);

#endif /* SWOOP_PROC_PROCFILE_H */
