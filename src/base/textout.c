#include <stdarg.h>
#include <stdio.h>

#include "base/textout.h"

void swoop__textout_put(swoop_textout_t *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = o->n < o->cap ? vsnprintf(o->buf + o->n, o->cap - o->n, fmt, ap)
                          : vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k > 0)
        o->n += (size_t)k;
}
