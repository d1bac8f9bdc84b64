/*
 * Error codes. Every swoop call returns 0 (or a non-negative value) on
 * success and a negative code on failure: either a negated errno value
 * (SWOOP_EINVAL == -EINVAL) or a code of swoop's own at -4000 and below.
 * There is no global "last error": the code is the return value.
 */
#ifndef SWOOP_ERROR_H
#define SWOOP_ERROR_H

#include <errno.h>

#include <swoop/common.h>

SWOOP_BEGIN_DECLS

/*
 * XX(name, value, message). The errno-based codes keep the kernel's numbers,
 * so a failed syscall's -errno can be returned as it is.
 */
#define SWOOP_ERRNO_MAP(XX)                                                                        \
    XX(E2BIG, -E2BIG, "argument list too long or value too large")                                 \
    XX(EACCES, -EACCES, "permission denied")                                                       \
    XX(EADDRINUSE, -EADDRINUSE, "address already in use")                                          \
    XX(EAGAIN, -EAGAIN, "resource temporarily unavailable")                                        \
    XX(EALREADY, -EALREADY, "operation already in progress")                                       \
    XX(EBADF, -EBADF, "bad file descriptor")                                                       \
    XX(EBUSY, -EBUSY, "resource busy or locked")                                                   \
    XX(ECANCELED, -ECANCELED, "operation canceled")                                                \
    XX(ECHILD, -ECHILD, "no child processes")                                                      \
    XX(ECONNREFUSED, -ECONNREFUSED, "connection refused")                                          \
    XX(ECONNRESET, -ECONNRESET, "connection reset by peer")                                        \
    XX(EDEADLK, -EDEADLK, "deadlock: waiting for what nothing can bring")                          \
    XX(EEXIST, -EEXIST, "already exists")                                                          \
    XX(EINTR, -EINTR, "interrupted system call")                                                   \
    XX(EINVAL, -EINVAL, "invalid argument")                                                        \
    XX(EIO, -EIO, "i/o error")                                                                     \
    XX(EMFILE, -EMFILE, "too many open files")                                                     \
    XX(EMSGSIZE, -EMSGSIZE, "message too long")                                                    \
    XX(ENAMETOOLONG, -ENAMETOOLONG, "name too long")                                               \
    XX(ENFILE, -ENFILE, "file table overflow")                                                     \
    XX(ENOBUFS, -ENOBUFS, "no buffer space available")                                             \
    XX(ENOENT, -ENOENT, "no such file, key or object")                                             \
    XX(ENOMEM, -ENOMEM, "not enough memory")                                                       \
    XX(ENOSPC, -ENOSPC, "no space left")                                                           \
    XX(ENOSYS, -ENOSYS, "function not implemented")                                                \
    XX(ENOTCONN, -ENOTCONN, "not connected")                                                       \
    XX(ENOTSUP, -ENOTSUP, "operation not supported")                                               \
    XX(EOVERFLOW, -EOVERFLOW, "value too large for defined data type")                             \
    XX(EPERM, -EPERM, "operation not permitted")                                                   \
    XX(EPIPE, -EPIPE, "broken pipe")                                                               \
    XX(ERANGE, -ERANGE, "result out of range")                                                     \
    XX(ESRCH, -ESRCH, "no such process")                                                           \
    XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                                         \
    XX(EOF, -4001, "end of file")                                                                  \
    XX(ESTATE, -4002, "not allowed in this state or process role")                                 \
    XX(EPROTO, -4003, "malformed data from a peer")                                                \
    XX(EBUFFERFULL, -4004, "output buffer full")                                                   \
    XX(ECLOSED, -4005, "connection already closed")                                                \
    XX(ETOOBIG, -4006, "packet larger than package_max_length")                                    \
    XX(EOWNERDEAD, -4007, "lock owner died; state recovered")                                      \
    XX(ETLS, -4008, "TLS failure (handshake, certificate or record layer)")

/** The error codes, as negative ints. */
typedef enum {
#define SWOOP__ERR_ENUM(name, value, msg) SWOOP_##name = (value),
    SWOOP_ERRNO_MAP(SWOOP__ERR_ENUM)
#undef SWOOP__ERR_ENUM
} swoop_errno_t;

/**
 * Returns a human-readable message for a code (negative errno or swoop code).
 * Never NULL; the string is static and must not be freed.
 */
SWOOP_EXTERN const char *swoop_strerror(int code);

/**
 * Returns the symbolic name of a code, e.g. "SWOOP_EINVAL", or
 * "SWOOP_UNKNOWN" for a code swoop does not know. Static string.
 */
SWOOP_EXTERN const char *swoop_err_name(int code);

SWOOP_END_DECLS

#endif /* SWOOP_ERROR_H */
