/* SPDX-License-Identifier: MIT */
/* One logger for heald, healctl and libbpf: stderr, levels set by -v. */
#ifndef HEAL_LOG_H
#define HEAL_LOG_H

enum log_level { LOG_LVL_ERROR = 0, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG, LOG_LVL_TRACE };

void log_set_level(int level);
int log_get_level(void);
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Route libbpf's messages through log_msg (warn -> warn, info -> debug, debug -> trace). */
void log_hook_libbpf(void);

#define log_error(...) log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif /* HEAL_LOG_H */
