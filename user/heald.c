// SPDX-License-Identifier: MIT
/* heald: the heal host agent. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <bpf/libbpf.h>

#include "heal/api.h"
#include "heal/bus.h"
#include "heal/config.h"
#include "heal/detect.h"
#include "heal/healer.h"
#include "heal/journal.h"
#include "heal/log.h"
#include "heal/probe.h"
#include "heal/store_pg.h"
#include "heal/targets.h"
#include "heal/util.h"
#include "heal/worker.h"
#include "revision.h"

#define TICK_MS 250
#define CONSUME_BATCH 256 /* ring records per wakeup before the loop looks around (ms, even under ASan) */
#define WORKER_QUEUE 1024
#define JOURNAL_QUEUE 8192
#define JOURNAL_LOCK_WAIT_MS 3000

static const char usage[] =
	"Usage: heald [OPTIONS]\n"
	"\n"
	"The heal host agent: watches programs from the kernel with BPF, sees them\n"
	"fail (failed syscalls, failed API returns, crashes, failing exits, OOM kills),\n"
	"finds the cause, patches config under guardrails, reloads, verifies, and\n"
	"rolls back a fix that does not hold. Every step goes to the journal in the\n"
	"state directory.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE        run with this config (default /etc/heal/heal.json)\n"
	"      --check-config FILE  validate FILE and exit: 0 when valid, else 2 and one\n"
	"                           'file: field: reason' line per problem\n"
	"  -w, --watch              print every event as one JSON line on stdout\n"
	"  -n, --dry-run            diagnose and plan every heal, change nothing\n"
	"  -l, --listen ADDR:PORT   serve the HTTP API and /metrics there (default\n"
	"                           127.0.0.1:7433; \"\" turns it off)\n"
	"  -v, --verbose            more logging on stderr (-vv: libbpf's own messages too)\n"
	"  -V, --version            print the version and exit\n"
	"  -h, --help               print this help and exit\n"
	"\n"
	"Examples:\n"
	"  heald --check-config /etc/heal/heal.json\n"
	"  heald --config /etc/heal/heal.json --watch\n"
	"  heald --config heal.json --watch -vv | jq 'select(.type == \"CRASH\")'\n"
	"\n"
	"heald needs root, a kernel with BTF (/sys/kernel/btf/vmlinux) and tracefs.\n"
	"SIGINT or SIGTERM detaches every probe and exits 0.\n";

struct heald {
	struct heal_config *cfg;
	struct bus *bus;
	struct worker *worker;
	struct worker *jworker; /* the journal's own thread: its fsyncs never hold up the loop */
	struct journal *journal;
	struct healer *healer;
	struct api *api;
	struct store_pg *store;
	char boot_id[20];        /* this run of heald: event uids are boot_id-seq */
	unsigned long long seq;
	unsigned long long journal_dropped;
	struct detect *detect;
	struct probe *probe;
	struct targets *targets;
	int epfd, sigfd, timerfd;
	int dlfd;              /* a one-shot timer for the healer's next deadline */
	long long dl_armed_ms; /* what dlfd is armed for; 0: disarmed */
	int watch;
	uint64_t ticks;
	int stop;
};

static void print_event(struct heal_event *ev, void *ctx)
{
	const char *s = event__json(ev);

	(void)ctx;
	if (!s)
		return;
	fputs(s, stdout);
	fputc('\n', stdout);
	fflush(stdout);
}

static void log_event(struct heal_event *ev, void *ctx)
{
	(void)ctx;
	/* without --watch (as a service) the journal is where events show until healing lands */
	log_warn("%s %s", ev->type, ev->key);
}

struct journal_job {
	struct journal *j;
	int sync;
	char line[];
};

static void journal_run(void *arg)
{
	struct journal_job *jj = arg;
	int e = journal__append(jj->j, jj->line, jj->sync);

	if (e)
		log_error("journal: cannot append: %s", strerror(-e));
}

static void journal_done(void *arg)
{
	free(arg);
}

/* Every event into the journal; heal steps are fsync'd, failure samples are not. */
static void journal_event(struct heal_event *ev, void *ctx)
{
	struct heald *h = ctx;
	struct journal_job *jj;
	const char *s = event__json(ev);
	size_t len;

	if (!s)
		return;
	len = strlen(s);
	jj = malloc(sizeof(*jj) + len + 1);
	if (jj) {
		jj->j = h->journal;
		jj->sync = ev->trace_id[0] != 0;
		memcpy(jj->line, s, len + 1);
		if (worker__submit(h->jworker, journal_run, journal_done, jj)) {
			free(jj);
			h->journal_dropped++;
		}
	}
}

/*
 * Open the journal, and so lock the state dir. A heald that was just killed
 * (SIGKILL, OOM, a restart by systemd) may hold the lock for a moment after it
 * is gone: the kernel releases a dead process's files asynchronously. Wait for
 * that rather than fail; a heald that really runs keeps it and we give up.
 */
static int open_journal(const char *dir, struct journal **j)
{
	long long deadline = util__now_ms() + JOURNAL_LOCK_WAIT_MS;
	int err;

	while ((err = journal__open(dir, NULL, j)) == -EBUSY && util__now_ms() < deadline)
		usleep(50000);
	return err;
}

/* Every event to the fleet store (its own thread; never blocks here). */
static void store_event(struct heal_event *ev, void *ctx)
{
	struct heald *h = ctx;
	const char *s = event__json(ev);
	char uid[48];

	if (!s)
		return;
	snprintf(uid, sizeof(uid), "%s-%llu", h->boot_id, ++h->seq);
	store_pg__submit(h->store, uid, s);
}

static void on_record(void *ctx, const void *rec, size_t len)
{
	detect__record(ctx, rec, len);
}

static void on_join(void *ctx, const struct proc_info *pi)
{
	detect__joined(ctx, pi);
}

static int check_config(const char *path)
{
	struct heal_config_errors errs = { 0 };
	struct heal_config *cfg = NULL;
	size_t i;
	int err;

	err = config__load(path, true, &cfg, &errs);
	if (err == -EINVAL) {
		for (i = 0; i < errs.n; i++)
			printf("%s: %s%s%s\n", path, errs.v[i].field,
			       errs.v[i].field[0] ? ": " : "", errs.v[i].reason);
	} else if (err) {
		printf("%s: cannot read: %s\n", path, strerror(-err));
	}
	config_errors__free(&errs);
	config__free(cfg);
	return err ? 2 : 0;
}

/* What is missing on this host, in one sentence a person can act on; NULL when all is there. */
static const char *preflight(void)
{
	if (geteuid() != 0)
		return "heald must run as root (it loads BPF programs and traces other processes): "
		       "run it with sudo or as a root service";
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		return "this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing): "
		       "heal needs a kernel built with CONFIG_DEBUG_INFO_BTF=y";
	if (libbpf_probe_bpf_prog_type(BPF_PROG_TYPE_TRACEPOINT, NULL) != 1)
		return "this kernel does not let heald load BPF programs: it needs CONFIG_BPF_SYSCALL=y "
		       "and no lockdown or seccomp policy that forbids bpf()";
	if (access("/sys/kernel/tracing/events", X_OK) && access("/sys/kernel/debug/tracing/events", X_OK))
		return "tracefs is not mounted: run 'mount -t tracefs nodev /sys/kernel/tracing' "
		       "(or add it to /etc/fstab)";
	return NULL;
}

static int epoll_add(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) ? -errno : 0;
}

/* The signals the loop reads from its signalfd. */
static void heald_signal_mask(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGCHLD);
}

static int setup_loop(struct heald *h)
{
	struct itimerspec its = {
		.it_interval = { .tv_sec = 0, .tv_nsec = TICK_MS * 1000000L },
		.it_value = { .tv_sec = 0, .tv_nsec = TICK_MS * 1000000L },
	};
	sigset_t mask;
	int err;

	heald_signal_mask(&mask);
	h->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	h->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	h->dlfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (h->sigfd < 0 || h->timerfd < 0 || h->dlfd < 0 || h->epfd < 0)
		return -errno;
	if (timerfd_settime(h->timerfd, 0, &its, NULL))
		return -errno;
	if ((err = epoll_add(h->epfd, h->sigfd)) || (err = epoll_add(h->epfd, h->timerfd)) ||
	    (err = epoll_add(h->epfd, h->dlfd)) ||
	    (err = epoll_add(h->epfd, worker__fd(h->worker))) ||
	    (err = epoll_add(h->epfd, worker__fd(h->jworker))))
		return err;
	return 0;
}

static void handle_signals(struct heald *h)
{
	struct signalfd_siginfo si;

	while (read(h->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			targets__reap(h->targets);
		else
			h->stop = 1;
	}
}

static void handle_tick(struct heald *h)
{
	uint64_t n;

	if (read(h->timerfd, &n, sizeof(n)) != sizeof(n))
		return;
	h->ticks += n;
	detect__tick(h->detect);
	targets__tick(h->targets);
	healer__tick(h->healer);
	if (h->api && h->ticks % 4 == 0)
		api__tick(h->api);
	if ((h->ticks * TICK_MS) % (h->cfg->rescan_ms ? h->cfg->rescan_ms : 2000) < TICK_MS) {
		targets__rescan(h->targets);
		detect__sweep(h->detect);
	}
}

/* A verify window ends when it ends, not up to a tick later: arm dlfd for the next one. */
static void arm_deadline(struct heald *h)
{
	long long next = healer__next_deadline_ms(h->healer);
	struct itimerspec its = { 0 };

	if (next == h->dl_armed_ms)
		return;
	h->dl_armed_ms = next;
	if (next) {
		its.it_value.tv_sec = next / 1000;
		its.it_value.tv_nsec = (next % 1000) * 1000000L;
	}
	timerfd_settime(h->dlfd, TFD_TIMER_ABSTIME, &its, NULL); /* all zero disarms */
}

static void handle_deadline(struct heald *h)
{
	uint64_t n;

	if (read(h->dlfd, &n, sizeof(n)) != sizeof(n))
		return;
	h->dl_armed_ms = 0;
	healer__windows(h->healer);
}

static int run(struct heald *h)
{
	struct epoll_event evs[8];
	int rbfd = probe__fd(h->probe), i, n, err;

	if ((err = epoll_add(h->epfd, rbfd)))
		return err;
	while (!h->stop) {
		n = epoll_wait(h->epfd, evs, 8, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == rbfd)
				/* bounded: signals, ticks and the worker get their turn in a storm */
				probe__consume(h->probe, CONSUME_BATCH);
			else if (fd == h->sigfd)
				handle_signals(h);
			else if (fd == h->timerfd)
				handle_tick(h);
			else if (fd == h->dlfd)
				handle_deadline(h);
			else if (fd == worker__fd(h->worker))
				worker__dispatch(h->worker);
			else if (fd == worker__fd(h->jworker))
				worker__dispatch(h->jworker);
			else if (h->api && fd == api__fd(h->api))
				api__dispatch(h->api);
		}
		arm_deadline(h);
	}
	/* last records and the worker's completions still go out */
	for (i = 0; i < 64 && probe__consume(h->probe, CONSUME_BATCH) == CONSUME_BATCH; i++)
		;
	return 0;
}

static void heald_cleanup(struct heald *h)
{
	if (h->targets && targets__children(h->targets)) {
		targets__signal_children(h->targets, SIGTERM);
		targets__reap(h->targets);
	}
	/* the worker first: its completions publish through detect, the healer and the bus to
	 * every subscriber (api, store, journal), so they all still exist */
	worker__free(h->worker);
	/* no event is published after this point */
	api__free(h->api);        /* stops the HTTP threads before what they read goes */
	store_pg__free(h->store); /* flushes or spools what is left */
	healer__free(h->healer);
	/* then the journal's thread, which writes what they published */
	worker__free(h->jworker);
	journal__close(h->journal);
	probe__free(h->probe);
	targets__free(h->targets);
	detect__free(h->detect);
	bus__free(h->bus);
	config__free(h->cfg);
	if (h->epfd > 0)
		close(h->epfd);
	if (h->sigfd > 0)
		close(h->sigfd);
	if (h->timerfd > 0)
		close(h->timerfd);
	if (h->dlfd > 0)
		close(h->dlfd);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", required_argument, NULL, 'C' },
		{ "watch", no_argument, NULL, 'w' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "listen", required_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct heal_config_errors errs = { 0 };
	const char *config_path = "/etc/heal/heal.json", *why, *listen_arg = NULL, *listen;
	struct heald h = { .epfd = -1, .sigfd = -1, .timerfd = -1, .dlfd = -1 };
	int verbose = 0, dry_run = 0, c, err, rc = 1;
	sigset_t mask;
	char msg[512];
	size_t i;

	while ((c = getopt_long(argc, argv, "c:wnl:vVh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config_path = optarg;
			break;
		case 'C':
			return check_config(optarg);
		case 'w':
			h.watch = 1;
			break;
		case 'n':
			dry_run = 1;
			break;
		case 'l':
			listen_arg = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'V':
			printf("heald %s (%s)\n", HEAL_VERSION, HEAL_GIT_REV);
			return 0;
		case 'h':
			fputs(usage, stdout);
			return 0;
		default:
			fputs("Try 'heald --help'.\n", stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "heald: unexpected argument '%s'\nTry 'heald --help'.\n", argv[optind]);
		return 2;
	}
	/* Block before any thread exists (libbpf, the worker): each inherits the mask,
	 * so SIGTERM reaches only the signalfd. A closed stdout reader must not kill us. */
	heald_signal_mask(&mask);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) || signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		fprintf(stderr, "heald: cannot set up signals: %s\n", strerror(errno));
		return 1;
	}
	log_set_level(LOG_LVL_WARN + verbose);
	log_hook_libbpf();

	err = config__load(config_path, true, &h.cfg, &errs);
	if (err) {
		if (err == -EINVAL) {
			for (i = 0; i < errs.n; i++)
				log_error("%s: %s%s%s", config_path, errs.v[i].field,
					  errs.v[i].field[0] ? ": " : "", errs.v[i].reason);
		} else {
			log_error("cannot read config %s: %s", config_path, strerror(-err));
		}
		config_errors__free(&errs);
		return 2;
	}
	if (dry_run)
		h.cfg->mode = HEAL_MODE_DRY_RUN;
	why = preflight();
	if (why) {
		log_error("%s", why);
		goto cleanup;
	}
	if ((err = util__mkdir_p(h.cfg->state_dir, 0700))) {
		log_error("cannot create state_dir %s: %s", h.cfg->state_dir, strerror(-err));
		goto cleanup;
	}
	/* it holds backups of config files and the API token: nobody else reads it */
	if (chmod(h.cfg->state_dir, 0700))
		log_warn("cannot make state_dir %s private: %s", h.cfg->state_dir, strerror(errno));

	h.bus = bus__new();
	h.worker = worker__new(WORKER_QUEUE);
	h.jworker = worker__new(JOURNAL_QUEUE);
	if (!h.bus || !h.worker || !h.jworker || !(h.detect = detect__new(h.cfg, h.bus, h.worker))) {
		log_error("out of memory");
		goto cleanup;
	}
	snprintf(msg, sizeof(msg), "%s/journal", h.cfg->state_dir);
	if ((err = open_journal(msg, &h.journal))) {
		log_error("cannot open the journal in %s: %s%s", msg, strerror(-err),
			  err == -EBUSY ? " (another heald uses this state_dir)" : "");
		goto cleanup;
	}
	if ((err = setup_loop(&h))) {
		log_error("cannot set up the event loop: %s", strerror(-err));
		goto cleanup;
	}
	err = probe__new(h.cfg, on_record, h.detect, &h.probe, msg, sizeof(msg));
	if (err) {
		log_error("%s", msg);
		goto cleanup;
	}
	h.targets = targets__new(h.cfg, h.probe, on_join, h.detect);
	if (!h.targets) {
		log_error("out of memory");
		goto cleanup;
	}
	detect__attach(h.detect, h.probe, h.targets);
	h.healer = healer__new(h.cfg, h.bus, h.worker, h.targets, msg, sizeof(msg));
	if (!h.healer) {
		log_error("%s", msg);
		goto cleanup;
	}
	targets__on_restart(h.targets, healer__on_restart, h.healer);
	/* the API: --listen, else the config's "listen", else the default; "" turns it off */
	listen = listen_arg ? listen_arg : h.cfg->listen ? h.cfg->listen : "127.0.0.1:7433";
	if (listen[0]) {
		h.api = api__new(h.cfg, listen, h.healer, h.probe, h.bus, h.worker, msg, sizeof(msg));
		if (!h.api && (listen_arg || h.cfg->listen)) {
			log_error("HTTP API on %s: %s", listen, msg);
			goto cleanup;
		}
		/* the implicit default is a convenience: without it heald still heals */
		if (!h.api)
			log_warn("no HTTP API on %s: %s", listen, msg);
		else if ((err = epoll_add(h.epfd, api__fd(h.api)))) {
			log_error("cannot poll the API's queue: %s", strerror(-err));
			goto cleanup;
		}
		if (h.api)
			log_info("HTTP API and /metrics on %s (port %u)", listen, api__port(h.api));
	}
	/* order matters: the healer stamps trace ids before the journal and the output see events */
	bus__subscribe(h.bus, NULL, healer__on_event, h.healer);
	bus__subscribe(h.bus, NULL, journal_event, &h);
	if (h.api)
		bus__subscribe(h.bus, NULL, api__on_event, h.api);
	if (h.cfg->store_postgres) {
		char host[256] = "";
		uint64_t r;

		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
		snprintf(h.boot_id, sizeof(h.boot_id), "%016llx", (unsigned long long)r);
		if (!h.cfg->store_host)
			gethostname(host, sizeof(host) - 1);
		h.store = store_pg__new(h.cfg->store_postgres, h.cfg->store_host ? h.cfg->store_host : host,
					h.cfg->state_dir, msg, sizeof(msg));
		if (!h.store) {
			log_error("store: %s", msg);
			goto cleanup;
		}
		bus__subscribe(h.bus, NULL, store_event, &h);
	}
	bus__subscribe(h.bus, NULL, h.watch ? print_event : log_event, NULL);
	/* a heal cut off by a crash of the previous heald is rolled back before anything starts */
	healer__recover(h.healer);
	msg[0] = 0;
	if ((err = targets__start(h.targets, msg, sizeof(msg)))) {
		log_error("%s", msg[0] ? msg : strerror(-err));
		goto cleanup;
	}
	log_info("heald %s watching %zu target(s), mode %s", HEAL_VERSION, h.cfg->n_targets,
		 config__mode_name(h.cfg->mode));
	err = run(&h);
	if (err) {
		log_error("event loop failed: %s", strerror(-err));
		goto cleanup;
	}
	log_info("detached, exiting");
	rc = 0;
cleanup:
	heald_cleanup(&h);
	return rc;
}
