/*
 * Log capture for tests that check the reasons each side logs: every
 * line of the library's log, "[component] message\n", in one buffer.
 */
#ifndef CMICRO_TEST_LOGCAP_H
#define CMICRO_TEST_LOGCAP_H

#include <stdbool.h>

#include <cmicro/micro.h>

/* Route the library's log here, at lvl and above. */
void t_logcap_install(micro_log_level lvl);
/* Back to the default logger. */
void t_logcap_uninstall(void);
/* Forget what was captured. */
void t_logcap_reset(void);
/* Wait (up to 10 s) for a captured line holding a and b (b may be NULL);
 * prints the capture when there is none. */
bool t_logcap_has(const char *a, const char *b);
/* What was captured (for diagnostics). */
const char *t_logcap_text(void);

#endif
