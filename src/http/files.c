/*
 * Forms and uploads, the worker's side: a multipart/form-data request
 * arrives with its parts as entries after the head (internal.h,
 * http_part_t; written by upload.c), checked once here before any is
 * used. Handlers list the file parts (swoop_http_file_at), move a file out
 * of upload_tmp_dir (swoop_http_file_move: rename(2), or a copy across file
 * systems), and read text fields through swoop_http_form_get. Nothing is
 * allocated: every string points into the request message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/ratelimit.h"
#include "http/internal.h"

/* One entry decoded: its strings and (a field) value point into the message. */
typedef struct part_view_s {
    http_part_t e;
    const char *name, *filename, *type, *path, *value;
    size_t next; /* offset of the next entry */
} part_view_t;

/* Decodes the entry at p[off, len); 0, or -1 when it does not fit or lacks a terminator. */
static int part_read(const char *p, size_t len, size_t off, part_view_t *v)
{
    if (len - off < sizeof(v->e))
        return -1;
    memcpy(&v->e, p + off, sizeof(v->e));
    const http_part_t *e = &v->e;
    if (e->kind != HTTP_PART_FIELD && e->kind != HTTP_PART_FILE)
        return -1;
    uint64_t strs = (uint64_t)e->name_len + e->filename_len + e->type_len + e->path_len + 4;
    uint64_t value = e->kind == HTTP_PART_FIELD ? e->size + 1 : 0;
    if (strs + value > len - off - sizeof(v->e))
        return -1;
    const char *s = p + off + sizeof(v->e);
    v->name = s;
    v->filename = v->name + e->name_len + 1;
    v->type = v->filename + e->filename_len + 1;
    v->path = v->type + e->type_len + 1;
    v->value = v->path + e->path_len + 1;
    if (v->filename[-1] || v->type[-1] || v->path[-1] || v->value[-1] ||
        (value && v->value[e->size]))
        return -1;
    if (e->kind == HTTP_PART_FILE && e->path_len == 0)
        return -1;
    v->next = off + sizeof(v->e) + (size_t)strs + (size_t)value;
    return 0;
}

int swoop__http_parts_check(const char *p, size_t len)
{
    part_view_t v;
    for (size_t off = 0; off < len; off = v.next) {
        if (part_read(p, len, off, &v) < 0)
            return -1;
    }
    return 0;
}

/* The i-th part of `kind` (0 based); 0, or SWOOP_ENOENT. */
static int part_find(const swoop_http_request_t *req, uint32_t kind, int i, const char *name,
                     part_view_t *v)
{
    size_t len;
    const char *p = swoop__http_parts(req, &len);
    if (p == NULL)
        return SWOOP_ENOENT;
    int n = 0;
    for (size_t off = 0; off < len; off = v->next) {
        if (part_read(p, len, off, v) < 0)
            return SWOOP_ENOENT; /* checked on arrival: not reached */
        if (v->e.kind != kind || (name && strcmp(v->name, name) != 0))
            continue;
        if (n++ == i)
            return 0;
    }
    return SWOOP_ENOENT;
}

int swoop_http_file_count(const swoop_http_request_t *req)
{
    if (req == NULL)
        return 0;
    size_t len;
    const char *p = swoop__http_parts(req, &len);
    int n = 0;
    part_view_t v;
    for (size_t off = 0; p && off < len; off = v.next) {
        if (part_read(p, len, off, &v) < 0)
            break;
        n += v.e.kind == HTTP_PART_FILE;
    }
    return n;
}

int swoop_http_file_at(const swoop_http_request_t *req, int i, swoop_http_file_t *out)
{
    part_view_t v;
    if (req == NULL || out == NULL || i < 0 || part_find(req, HTTP_PART_FILE, i, NULL, &v) < 0)
        return SWOOP_EINVAL;
    out->field = v.name;
    out->filename = v.filename;
    out->content_type = v.type;
    out->path = v.path;
    out->size = v.e.size;
    return 0;
}

int swoop__http_multipart_field(const swoop_http_request_t *req, const char *name, char *out,
                                size_t cap)
{
    part_view_t v;
    if (name == NULL || out == NULL)
        return SWOOP_EINVAL;
    if (part_find(req, HTTP_PART_FIELD, 0, name, &v) < 0)
        return SWOOP_ENOENT;
    if (v.e.size >= cap || v.e.size > INT32_MAX)
        return SWOOP_ENOSPC;
    memcpy(out, v.value, (size_t)v.e.size + 1);
    return (int)v.e.size;
}

/* Copies the file src to dest (another file system), then removes src; 0 or an error. */
static int copy_move(const char *src, const char *dest)
{
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        int err = errno;
        swoop_log(SWOOP_LOG_WARNING, err, "swoop_http_file_move: open(\"%s\") failed", src);
        return -err;
    }
    int out = open(dest, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        int err = errno;
        close(in);
        swoop_log(SWOOP_LOG_WARNING, err, "swoop_http_file_move: open(\"%s\") failed", dest);
        return -err;
    }
    int err = 0;
    for (;;) {
        ssize_t k = copy_file_range(in, NULL, out, NULL, 1 << 30, 0);
        if (k == 0)
            break;
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL)) {
            /* An older kernel or a file system without it: plain reads and writes. */
            char buf[65536];
            ssize_t r;
            while ((r = read(in, buf, sizeof(buf))) > 0 || (r < 0 && errno == EINTR)) {
                for (ssize_t w, o = 0; r > 0 && o < r; o += w) {
                    w = write(out, buf + o, (size_t)(r - o));
                    if (w < 0 && errno == EINTR)
                        w = 0;
                    else if (w < 0) {
                        err = errno;
                        break;
                    }
                }
                if (err)
                    break;
            }
            if (r < 0 && !err)
                err = errno;
            break;
        }
        if (k < 0) {
            err = errno;
            break;
        }
    }
    close(in);
    if (close(out) < 0 && !err)
        err = errno;
    if (err) {
        swoop_log(SWOOP_LOG_WARNING, err, "swoop_http_file_move: copying \"%s\" to \"%s\" failed",
                  src, dest);
        unlink(dest);
        return -err;
    }
    unlink(src);
    return 0;
}

int swoop_http_file_move(const swoop_http_request_t *req, int i, const char *dest)
{
    swoop_http_file_t f;
    if (dest == NULL || dest[0] == '\0' || swoop_http_file_at(req, i, &f) < 0)
        return SWOOP_EINVAL;
    if (rename(f.path, dest) == 0)
        return 0;
    int err = errno;
    if (err == EXDEV)
        return copy_move(f.path, dest);
    swoop_log(SWOOP_LOG_WARNING, err, "swoop_http_file_move: rename(\"%s\", \"%s\") failed", f.path,
              dest);
    return -err;
}
