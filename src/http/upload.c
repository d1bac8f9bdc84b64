/*
 * Forms and uploads, the connection owner's side: a request whose
 * Content-Type is multipart/form-data is parsed (proto/multipart.c) while
 * its body streams in, whatever its size and whether it came with a
 * Content-Length or chunked. Each file part goes straight from the receive
 * buffer into its own file in upload_tmp_dir (mkostemp: mode 0600,
 * O_CLOEXEC); text fields go into the request message, bounded with the
 * rest of it by package_max_length. Memory stays at one parser and one
 * receive buffer per connection however large the files are. The raw body
 * is not kept (it would double the disk use): the worker sees the parts.
 *
 * The message gets, after the head, one http_part_t per part (internal.h),
 * each followed by its strings and, for a field, its value. The owner
 * keeps the files' paths and removes them when the response ended, the
 * connection closed or the request was refused; a file the handler moved
 * (swoop_http_file_move) is simply no longer there. File names carry the
 * owner's pid and a per-process counter, so a name never comes back while
 * a path of it may still be removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/ratelimit.h"
#include "http/internal.h"
#include "proto/multipart.h"

struct http_upload_s {
    swoop_mp_t mp;
    int fd;            /* the current file part's file, else -1 */
    int in_part;       /* a part began and did not end */
    int is_file;       /* ... and it is a file */
    size_t entry;      /* offset in the message of the current part's http_part_t */
    uint64_t size;     /* bytes of the current part so far */
    uint32_t files;    /* file parts so far */
    swoop_buf_t paths; /* every file made for this request, NUL-separated */
    char path[SWOOP_SERVER_PATH_MAX + 64]; /* the current file's */
};

/* Makes file names unique in this process, across threads (PROCESS reactors). */
static _Atomic uint64_t file_seq;

/* Logs why a request was refused; returns its status. */
static int refuse(swoop_conn_t *c, int status, int err, const char *why)
{
    swoop__log_limited(status >= 500 ? SWOOP_LOG_ERROR : SWOOP_LOG_INFO, err,
                       "http: conn %llu (port %d): multipart/form-data: %s: %d, closing",
                       (unsigned long long)c->id, c->port->port, why, status);
    return status;
}

/* The value of the request's first Content-Type field, or NULL. */
static const char *content_type(const swoop_http_head_t *hd, const char *req, size_t *len)
{
    for (uint32_t i = 0; i < hd->num_headers; i++) {
        const swoop_http_header_t *f = &hd->headers[i];
        if (f->name.len == 12 && strncasecmp(req + f->name.off, "content-type", 12) == 0) {
            *len = f->value.len;
            return req + f->value.off;
        }
    }
    return NULL;
}

int swoop__http_upload_begin(swoop_conn_t *c, const swoop_http_head_t *hd, const char *req,
                             http_upload_t **out)
{
    *out = NULL;
    size_t len = 0;
    const char *ct = content_type(hd, req, &len);
    if (ct == NULL)
        return 0;
    char b[SWOOP_MP_BOUNDARY_MAX + 1];
    size_t bl = 0;
    int rc = swoop__mp_boundary(ct, len, b, &bl);
    if (rc == 1)
        return 0;
    if (rc < 0)
        return refuse(c, 400, 0, swoop__mp_error_reason(rc));
    http_upload_t *up = swoop_try_malloc(sizeof(*up));
    if (up == NULL)
        return refuse(c, 500, SWOOP_ENOMEM, "no memory for the parser");
    swoop__mp_init(&up->mp, b, bl);
    up->fd = -1;
    up->in_part = up->is_file = 0;
    up->entry = 0;
    up->size = 0;
    up->files = 0;
    up->path[0] = '\0';
    swoop__buf_init(&up->paths);
    *out = up;
    return 0;
}

void swoop__http_upload_free(http_upload_t *up)
{
    if (up == NULL)
        return;
    if (up->fd >= 0)
        close(up->fd);
    const char *p = swoop__buf_rdata(&up->paths);
    size_t n = swoop__buf_rlen(&up->paths);
    for (size_t off = 0; off < n; off += strlen(p + off) + 1) {
        /* ENOENT: the handler moved it (swoop_http_file_move). */
        if (unlink(p + off) < 0 && errno != ENOENT)
            swoop__log_limited(SWOOP_LOG_WARNING, errno, "http: unlink(\"%s\") failed", p + off);
    }
    swoop__buf_free(&up->paths);
    swoop_free(up);
}

/* Appends to the message, within package_max_length; 0 or a status. */
static int msg_add(swoop_conn_t *c, swoop_buf_t *msg, const void *p, size_t n)
{
    if (swoop__buf_rlen(msg) + n > (uint64_t)c->port->eff.package_max_length)
        return refuse(c, 413, 0, "the fields are larger than package_max_length");
    if (swoop__buf_append(msg, p, n) < 0)
        return refuse(c, 500, SWOOP_ENOMEM, "no memory for the fields");
    return 0;
}

/* A file for the part that begins: made in upload_tmp_dir; 0 or a status. */
static int file_open(swoop_conn_t *c, http_upload_t *up)
{
    if (up->files >= HTTP_UPLOAD_MAX_FILES)
        return refuse(c, 413, 0, "more file parts than a request may carry");
    uint64_t seq = atomic_fetch_add_explicit(&file_seq, 1, memory_order_relaxed);
    snprintf(up->path, sizeof(up->path), "%s/swoop-upload.%d.%llu.XXXXXX",
             c->port->eff.upload_tmp_dir, (int)swoop__getpid(), (unsigned long long)seq);
    up->fd = mkostemp(up->path, O_CLOEXEC);
    if (up->fd < 0) {
        int err = errno;
        swoop__log_limited(SWOOP_LOG_ERROR, err,
                           "http: conn %llu: cannot make an upload file in upload_tmp_dir \"%s\": "
                           "500",
                           (unsigned long long)c->id, c->port->eff.upload_tmp_dir);
        up->path[0] = '\0';
        return 500;
    }
    if (swoop__buf_append(&up->paths, up->path, strlen(up->path) + 1) < 0) {
        unlink(up->path);
        close(up->fd);
        up->fd = -1;
        return refuse(c, 500, SWOOP_ENOMEM, "no memory for a file name");
    }
    up->files++;
    return 0;
}

/* PART: its entry goes into the message (the size is filled in at its end). */
static int part_begin(swoop_conn_t *c, http_upload_t *up, swoop_buf_t *msg)
{
    const swoop_mp_t *mp = &up->mp;
    up->in_part = 1;
    up->is_file = mp->has_filename;
    up->size = 0;
    int st = up->is_file ? file_open(c, up) : 0;
    if (st)
        return st;
    const char *type = mp->has_type ? swoop__mp_str(mp, mp->type) : "text/plain";
    http_part_t e = {.kind = up->is_file ? HTTP_PART_FILE : HTTP_PART_FIELD,
                     .name_len = mp->name.len,
                     .filename_len = mp->filename.len,
                     .type_len = (uint32_t)strlen(type),
                     .path_len = up->is_file ? (uint32_t)strlen(up->path) : 0};
    up->entry = swoop__buf_rlen(msg);
    if ((st = msg_add(c, msg, &e, sizeof(e))) != 0 ||
        (st = msg_add(c, msg, swoop__mp_str(mp, mp->name), e.name_len + 1)) != 0 ||
        (st = msg_add(c, msg, swoop__mp_str(mp, mp->filename), e.filename_len + 1)) != 0 ||
        (st = msg_add(c, msg, type, e.type_len + 1)) != 0 ||
        (st = msg_add(c, msg, up->is_file ? up->path : "", e.path_len + 1)) != 0)
        return st;
    return 0;
}

static int part_data(swoop_conn_t *c, http_upload_t *up, swoop_buf_t *msg, const char *p, size_t n)
{
    up->size += n;
    if (!up->is_file)
        return msg_add(c, msg, p, n);
    int64_t max = c->port->eff.upload_max_filesize;
    if (max > 0 && up->size > (uint64_t)max)
        return refuse(c, 413, 0, "a file is larger than upload_max_filesize");
    while (n > 0) {
        ssize_t k = write(up->fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            int err = k < 0 ? errno : ENOSPC;
            swoop__log_limited(SWOOP_LOG_ERROR, err, "http: conn %llu: writing \"%s\" failed: 500",
                               (unsigned long long)c->id, up->path);
            return 500;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* PART_END: the entry gets its size; a field's value its NUL. */
static int part_end(swoop_conn_t *c, http_upload_t *up, swoop_buf_t *msg)
{
    up->in_part = 0;
    char *e = (char *)swoop__buf_rdata(msg) + up->entry;
    memcpy(e + offsetof(http_part_t, size), &up->size, sizeof(up->size));
    if (!up->is_file)
        return msg_add(c, msg, "", 1);
    close(up->fd);
    up->fd = -1;
    return 0;
}

int swoop__http_upload_feed(swoop_conn_t *c, http_upload_t *up, swoop_buf_t *msg, const char *p,
                            size_t n)
{
    size_t off = 0;
    while (off < n) {
        swoop_mp_event_t ev;
        ssize_t k = swoop__mp_parse(&up->mp, p + off, n - off, &ev);
        if (k < 0)
            return refuse(c, 400, 0, swoop__mp_error_reason((int)k));
        off += (size_t)k;
        int st = 0;
        switch (ev.type) {
        case SWOOP_MP_EV_PART:
            st = part_begin(c, up, msg);
            break;
        case SWOOP_MP_EV_DATA:
            st = part_data(c, up, msg, ev.data, ev.len);
            break;
        case SWOOP_MP_EV_PART_END:
            st = part_end(c, up, msg);
            break;
        default:
            break;
        }
        if (st)
            return st;
    }
    return 0;
}

int swoop__http_upload_end(swoop_conn_t *c, http_upload_t *up)
{
    if (!swoop__mp_done(&up->mp))
        return refuse(c, 400, 0, swoop__mp_error_reason(SWOOP_MP_E_TRUNCATED));
    return 0;
}
