/* SPDX-License-Identifier: MIT */
/*
 * A background thread for slow work (disk, ELF parsing, later LLM calls and
 * commands), so the detection path never waits. Jobs run in order; their
 * completions run back on the owner's loop when worker__dispatch() is called
 * after worker__fd() becomes readable.
 */
#ifndef HEAL_WORKER_H
#define HEAL_WORKER_H

struct worker;

/* run: on the worker thread. done: on the owner thread, then the job is over. */
typedef void (*worker_run_fn)(void *arg);
typedef void (*worker_done_fn)(void *arg);

/* max_queued bounds the backlog; a full queue refuses jobs (-EAGAIN), counted. */
struct worker *worker__new(unsigned max_queued);
/* Finishes the jobs already queued, runs their done callbacks here, stops the thread. */
void worker__free(struct worker *w);
/* 0, or -EAGAIN when the queue is full, -ENOMEM. */
int worker__submit(struct worker *w, worker_run_fn run, worker_done_fn done, void *arg);
/* An fd for epoll: readable when completions wait. */
int worker__fd(const struct worker *w);
/* Run waiting completions on the calling thread; returns how many. */
int worker__dispatch(struct worker *w);
/* Jobs refused because the queue was full. */
unsigned long long worker__refused(const struct worker *w);

#endif /* HEAL_WORKER_H */
