/*
 * Names and messages for error codes, generated from SWOOP_ERRNO_MAP so the
 * enum and the strings can never drift apart. Unknown negative errno values
 * fall back to the C library's description.
 */
#include <swoop/error.h>

#include <string.h>

#include "base/internal.h"

const char *swoop_strerror(int code)
{
    switch (code) {
#define SWOOP__ERR_MSG(name, value, msg)                                                           \
    case (value):                                                                                  \
        return msg;
        SWOOP_ERRNO_MAP(SWOOP__ERR_MSG)
#undef SWOOP__ERR_MSG
    default:
        break;
    }
    if (code < 0 && code > -4000) {
        /* strerrordesc_np returns a static string and is thread-safe. */
        const char *desc = strerrordesc_np(-code);
        if (desc)
            return desc;
    }
    if (code == 0)
        return "success";
    return "unknown error";
}

const char *swoop_err_name(int code)
{
    switch (code) {
#define SWOOP__ERR_NAME(name, value, msg)                                                          \
    case (value):                                                                                  \
        return "SWOOP_" #name;
        SWOOP_ERRNO_MAP(SWOOP__ERR_NAME)
#undef SWOOP__ERR_NAME
    default:
        return "SWOOP_UNKNOWN";
    }
}

const char *swoop_version(void)
{
    return SWOOP_VERSION_STRING;
}
