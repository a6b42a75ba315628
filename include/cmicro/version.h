#ifndef CMICRO_VERSION_H
#define CMICRO_VERSION_H

#define MICRO_VERSION_MAJOR 0
#define MICRO_VERSION_MINOR 1
#define MICRO_VERSION_PATCH 0
#define MICRO_VERSION_HEX                                                      \
    ((MICRO_VERSION_MAJOR << 16) | (MICRO_VERSION_MINOR << 8) |                \
        MICRO_VERSION_PATCH)
#define MICRO_VERSION_STRING "0.1.0"

#if defined(__GNUC__) || defined(__clang__)
#define MICRO_API __attribute__((visibility("default")))
#else
#define MICRO_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** The library's version string. Thread: any. Never NULL. */
MICRO_API const char *micro_version(void);

#ifdef __cplusplus
}
#endif
#endif
