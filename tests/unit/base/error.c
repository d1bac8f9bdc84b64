/* Error codes: names, messages and the errno mapping. */
#include <swoop/error.h>

#include "test.h"

TEST(error_names_and_messages)
{
    ASSERT_EQ(SWOOP_EINVAL, -EINVAL);
    ASSERT_EQ(SWOOP_ENOENT, -ENOENT);
    ASSERT_LE(SWOOP_EBUFFERFULL, -4000);
    ASSERT_STR_EQ(swoop_err_name(SWOOP_EINVAL), "SWOOP_EINVAL");
    ASSERT_STR_EQ(swoop_err_name(SWOOP_EBUFFERFULL), "SWOOP_EBUFFERFULL");
    ASSERT_STR_EQ(swoop_err_name(-99999), "SWOOP_UNKNOWN");
    ASSERT_STR_EQ(swoop_strerror(SWOOP_EINVAL), "invalid argument");
    ASSERT_STR_EQ(swoop_strerror(SWOOP_ENOSPC), "no space left");
    /* An errno swoop does not list still gets the C library's text. */
    ASSERT_STR_EQ(swoop_strerror(-EDOM), "Numerical argument out of domain");
    ASSERT_STR_EQ(swoop_strerror(0), "success");
    ASSERT_STR_EQ(swoop_strerror(-99999), "unknown error");
}

TEST(error_codes_are_distinct)
{
    static const int codes[] = {
#define CODE(name, value, msg) value,
        SWOOP_ERRNO_MAP(CODE)
#undef CODE
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    for (size_t i = 0; i < n; i++) {
        ASSERT_LT(codes[i], 0);
        for (size_t j = i + 1; j < n; j++)
            ASSERT_NE(codes[i], codes[j]);
    }
}
