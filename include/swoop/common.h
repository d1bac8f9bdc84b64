/*
 * Definitions every public swoop header needs: the export marker, the
 * version and the C++ linkage guards. Include <swoop/swoop.h> instead of
 * this file unless you want one module alone.
 */
#ifndef SWOOP_COMMON_H
#define SWOOP_COMMON_H

/** Marks a function as part of the exported API; the rest is hidden. */
#if defined(__GNUC__) || defined(__clang__)
#define SWOOP_EXTERN __attribute__((visibility("default")))
#else
#define SWOOP_EXTERN
#endif

/** printf-style format checking for logging functions. */
#if defined(__GNUC__) || defined(__clang__)
#define SWOOP_PRINTF(fmt_idx, args_idx) __attribute__((format(printf, fmt_idx, args_idx)))
#else
#define SWOOP_PRINTF(fmt_idx, args_idx)
#endif

/** The library version this header belongs to. */
#define SWOOP_VERSION_MAJOR 0
#define SWOOP_VERSION_MINOR 1
#define SWOOP_VERSION_PATCH 0
/** The version as one string, "major.minor.patch". */
#define SWOOP_VERSION_STRING "0.1.0"

#ifdef __cplusplus
#define SWOOP_BEGIN_DECLS extern "C" {
#define SWOOP_END_DECLS   }
#else
#define SWOOP_BEGIN_DECLS
#define SWOOP_END_DECLS
#endif

SWOOP_BEGIN_DECLS

/** Returns the version of the library actually linked, as "major.minor.patch". */
SWOOP_EXTERN const char *swoop_version(void);

SWOOP_END_DECLS

#endif /* SWOOP_COMMON_H */
