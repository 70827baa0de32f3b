// SPDX-License-Identifier: MIT
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "heal/worker.h"

struct job {
	worker_run_fn run;
	worker_done_fn done;
	void *arg;
	struct job *next;
};

struct worker {
	pthread_t thread;
	int started;
	int efd;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *todo, *todo_tail; /* FIFO to the thread */
	struct job *done, *done_tail; /* FIFO back to the owner */
	unsigned queued, max_queued;
	int stopping;
	unsigned long long refused;
};

static void push(struct job **head, struct job **tail, struct job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	uint64_t one = 1;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct job *j;

		while (!w->todo && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		if (!w->todo)
			break;
		j = w->todo;
		w->todo = j->next;
		if (!w->todo)
			w->todo_tail = NULL;
		pthread_mutex_unlock(&w->lock);
		if (j->run)
			j->run(j->arg);
		pthread_mutex_lock(&w->lock);
		w->queued--;
		push(&w->done, &w->done_tail, j);
		if (write(w->efd, &one, sizeof(one)) < 0) {
			/* eventfd counter overflow cannot happen at our rates; the job stays queued */
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct worker *worker__new(unsigned max_queued)
{
	struct worker *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->max_queued = max_queued;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (w->efd < 0)
		goto fail;
	if (pthread_create(&w->thread, NULL, worker_main, w))
		goto fail;
	w->started = 1;
	return w;
fail:
	worker__free(w);
	return NULL;
}

static void free_list(struct job *j)
{
	while (j) {
		struct job *next = j->next;

		free(j);
		j = next;
	}
}

void worker__free(struct worker *w)
{
	if (!w)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->lock);
		w->stopping = 1;
		pthread_cond_signal(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
		/* the thread drained todo before leaving: hand back every completion */
		worker__dispatch(w);
	}
	free_list(w->todo);
	free_list(w->done);
	if (w->efd >= 0)
		close(w->efd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

int worker__submit(struct worker *w, worker_run_fn run, worker_done_fn done, void *arg)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->run = run;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&w->lock);
	if (w->queued >= w->max_queued) {
		w->refused++;
		pthread_mutex_unlock(&w->lock);
		free(j);
		return -EAGAIN;
	}
	w->queued++;
	push(&w->todo, &w->todo_tail, j);
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

int worker__fd(const struct worker *w)
{
	return w->efd;
}

int worker__dispatch(struct worker *w)
{
	struct job *list, *j;
	uint64_t n;
	int count = 0;

	if (read(w->efd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&w->lock);
	list = w->done;
	w->done = w->done_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	while (list) {
		j = list;
		list = j->next;
		if (j->done)
			j->done(j->arg);
		free(j);
		count++;
	}
	return count;
}

unsigned long long worker__refused(const struct worker *w)
{
	return w->refused;
}
