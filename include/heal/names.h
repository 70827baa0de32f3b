/* SPDX-License-Identifier: MIT */
/* Name tables: syscalls (this architecture), errnos, signals. */
#ifndef HEAL_NAMES_H
#define HEAL_NAMES_H

/* "openat" -> number, or -1. */
int names__syscall_nr(const char *name);
/* number -> "openat", or NULL. */
const char *names__syscall_name(int nr);
/* "ENOENT" -> 2, or -1. */
int names__errno_nr(const char *name);
/* 2 -> "ENOENT", or NULL. */
const char *names__errno_name(int err);
/* "SIGSEGV" or "SEGV" (any case) -> 11, or -1. */
int names__signal_nr(const char *name);
/* 11 -> "SIGSEGV", or NULL. */
const char *names__signal_name(int sig);

#endif /* HEAL_NAMES_H */
