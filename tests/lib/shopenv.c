// SPDX-License-Identifier: MIT
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shopenv.h"


void shop_path(char *out, size_t len, const struct shop *s, const char *name)
{
	snprintf(out, len, "%s/%s", s->etc, name);
}

static bool copy_file(const char *from, const char *to)
{
	char *c = h_read(from, NULL);
	bool ok = c && h_write(to, c);

	free(c);
	return ok;
}

/* s with every "@ETC@" and "@DIR@" replaced by the shop's directories, into out. */
static void expand(char *out, size_t len, const struct shop *s, const char *in)
{
	size_t used = 0;

	out[0] = 0;
	while (in && *in && used + 1 < len) {
		const char *with = NULL;
		size_t skip = 0;

		if (strncmp(in, "@ETC@", 5) == 0)
			with = s->etc, skip = 5;
		else if (strncmp(in, "@DIR@", 5) == 0)
			with = s->dir, skip = 5;
		if (with) {
			used += (size_t)snprintf(out + used, len - used, "%s", with);
			in += skip;
		} else {
			out[used++] = *in++;
			out[used] = 0;
		}
	}
	if (used >= len)
		out[len - 1] = 0;
}

bool shop_start(struct shop *s, const char *top, const char *shop_extra, bool small_disk)
{
	struct shop_opts o = { .top = top, .shop_extra = shop_extra, .small_disk = small_disk };

	return shop_start_opts(s, &o);
}

bool shop_start_opts(struct shop *s, const struct shop_opts *o)
{
	char cfg[16384], p[PATH_MAX + 64], shopjson[2048], extra[4096], top[4096], verify[2048];
	char limits[512];

	memset(s, 0, sizeof(*s));
	snprintf(s->dir, sizeof(s->dir), "%s", h_tmpdir());
	snprintf(s->etc, sizeof(s->etc), "%s/etc", s->dir);
	snprintf(s->data, sizeof(s->data), "%s/data", s->dir);
	mkdir(s->etc, 0755);
	mkdir(s->data, 0755);
	if (o->small_disk) {
		if (mount("tmpfs", s->data, "tmpfs", 0, "size=1m")) {
			h_skip("cannot mount a small tmpfs for the disk-full case");
			return false;
		}
		s->tmpfs = true;
	}
	expand(extra, sizeof(extra), s, o->shop_extra);
	expand(top, sizeof(top), s, o->top);
	s->port = h_free_port();
	s->pay_port = h_free_port();
	while (s->pay_port == s->port)
		s->pay_port = h_free_port();
	if (o->verify)
		expand(verify, sizeof(verify), s, o->verify);
	else
		snprintf(verify, sizeof(verify),
			 "{\"command\": [\"%s/tools/shop-verify.sh\", \"%d\"], \"tries\": 10,"
			 " \"interval_ms\": 200, \"window_ms\": 1000}",
			 getcwd(p, sizeof(p)) ? p : ".", s->port);
	snprintf(limits, sizeof(limits), "%s", o->limits ? o->limits : "{\"backoff_ms\": 200}");
	shop_path(p, sizeof(p), s, "catalog.json");
	copy_file("tools/shop/catalog.json", p);
	shop_path(p, sizeof(p), s, "returns-schema.json");
	copy_file("tools/shop/returns-schema.json", p);
	snprintf(shopjson, sizeof(shopjson),
		 "{\n  \"port\": %d,\n  \"payments\": \"127.0.0.1:%d\",\n  \"data_dir\": \"%s\",\n"
		 "  \"includes\": { \"catalog\": \"catalog.json\", \"returns_schema\": \"returns-schema.json\" },\n"
		 "  \"orders\": { \"discount_plugin\": \"none\", \"audit_log\": false },\n"
		 "  \"limits\": { \"max_open_files\": 64 }\n}\n",
		 s->port, s->pay_port, s->data);
	shop_path(p, sizeof(p), s, "shop.json");
	h_write(p, shopjson);

	snprintf(cfg, sizeof(cfg),
		 "{\"state_dir\": \"@STATE@\", %s"
		 " \"guardrails\": {\"allow\": [\"%s/*.json\"], \"max_lines\": 40},"
		 " \"limits\": %s,"
		 " \"targets\": ["
		 "{\"name\": \"payments\", \"exec\": [\"%s\", \"--port\", \"%d\"],"
		 " \"ready\": {\"tcp\": \"127.0.0.1:%d\"}, \"detect\": {\"exits\": false}},"
		 "{\"name\": \"shop\", \"exec\": [\"%s\", \"--config\", \"%s/shop.json\"], %s"
		 " \"ready\": {\"tcp\": \"127.0.0.1:%d\"}, \"reload\": {\"signal\": \"HUP\"},"
		 " \"detect\": {\"syscalls\": [{\"syscall\": [\"openat\", \"connect\", \"write\"],"
		 "   \"errno\": [\"ENOENT\", \"ECONNREFUSED\", \"EMFILE\", \"ENOSPC\"]}],"
		 "   \"crashes\": true, \"api\": [{\"binary\": \"%s\", \"symbol\": \"shop_handle_return\","
		 "   \"fail_when\": \"ret >= 500\", \"capture_arg\": {\"index\": 1, \"type\": \"string\"}}]},"
		 " \"dependencies\": [{\"target\": \"payments\", \"addr\": \"127.0.0.1:%d\"}],"
		 " \"cleanup\": [\"%s/orders.log.*\"],"
		 " \"verify\": %s}]}",
		 top, s->etc, limits, h_bin("payments"), s->pay_port, s->pay_port, h_bin("shop"),
		 s->etc, extra, s->port, h_bin("shop"), s->pay_port, s->data, verify);
	if (!h_heald_start(&s->h, cfg))
		return false;
	s->started = true;
	return shop_wait_up(s);
}

bool shop_wait_up(struct shop *s)
{
	int i;

	for (i = 0; i < 100; i++) {
		if (h_http(s->port, "GET", "/health", NULL) == 200)
			return true;
		usleep(50000);
	}
	return false;
}

/* The live process running binary bin with arg among its arguments; 0 when none. */
static pid_t find_pid(const char *bin, const char *arg)
{
	char exe_want[PATH_MAX];
	struct dirent *de;
	pid_t found = 0;
	DIR *d;

	snprintf(exe_want, sizeof(exe_want), "%s", h_bin(bin));
	d = opendir("/proc");
	while (d && !found && (de = readdir(d))) {
		char path[64], exe[PATH_MAX], *cmd;
		size_t len = 0, i;
		ssize_t n;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/exe", de->d_name);
		n = readlink(path, exe, sizeof(exe) - 1);
		if (n <= 0)
			continue; /* a kernel thread, a zombie, or gone */
		exe[n] = 0;
		if (strcmp(exe, exe_want))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		cmd = h_read(path, &len);
		if (!cmd)
			continue;
		/* the arguments are NUL separated */
		for (i = 0; i < len; i += strlen(cmd + i) + 1)
			if (strcmp(cmd + i, arg) == 0)
				found = (pid_t)atoi(de->d_name);
		free(cmd);
	}
	if (d)
		closedir(d);
	return found;
}

pid_t shop_pid(const struct shop *s)
{
	char conf[PATH_MAX + 32];

	snprintf(conf, sizeof(conf), "%s/shop.json", s->etc);
	return find_pid("shop", conf);
}

pid_t shop_payments_pid(const struct shop *s)
{
	char port[16];

	snprintf(port, sizeof(port), "%d", s->pay_port);
	return find_pid("payments", port);
}

bool shop_reload(struct shop *s, const char *needle)
{
	pid_t pid = shop_pid(s);
	int i;

	if (pid <= 0 || kill(pid, SIGHUP))
		return false;
	for (i = 0; i < 100; i++) {
		char *log = h_target_log(&s->h, "shop");
		const char *at = log ? strstr(log, needle) : NULL;

		free(log);
		if (at)
			return true;
		usleep(20000);
	}
	return false;
}

void shop_stop(struct shop *s)
{
	if (s->started)
		ASSERT_EQ(h_heald_stop(&s->h), 0, "heald exits 0");
	h_heald_free(&s->h);
	if (s->tmpfs)
		umount2(s->data, MNT_DETACH);
}

/* The types of the trace's events, in order, joined by spaces. */
void shop_trace_steps(struct h_heald *h, const char *trace_id, char *out, size_t len)
{
	size_t i, used = 0;

	out[0] = 0;
	for (i = 0; i < h->n_events; i++) {
		const cJSON *id = cJSON_GetObjectItem(h->events[i], "trace_id");
		const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(h->events[i], "type"));

		if (!cJSON_IsString(id) || strcmp(id->valuestring, trace_id) || !type)
			continue;
		/* the failure and its repeats carry the trace id too; the steps are the rest */
		if (!strcmp(type, "SYSCALL_FAILURE") || !strcmp(type, "API_FAILURE") ||
		    !strcmp(type, "CRASH") || !strcmp(type, "EXIT_FAILURE") || !strcmp(type, "OOM_KILL"))
			continue;
		used += (size_t)snprintf(out + used, used < len ? len - used : 0, "%s%s", used ? " " : "", type);
	}
}

const char *shop_trace_of(const cJSON *ev)
{
	return cJSON_GetStringValue(cJSON_GetObjectItem(ev, "trace_id"));
}

/* Wait for the trace of the first event of type to end; returns its terminal event. */
cJSON *shop_wait_outcome(struct shop *s, const char *failure_type, char *trace, size_t tlen)
{
	cJSON *ev = h_heald_wait(&s->h, failure_type, NULL, SHOP_WAIT_MS);
	long waited = 0;
	size_t i;

	trace[0] = 0;
	if (!ev || !shop_trace_of(ev))
		return NULL;
	snprintf(trace, tlen, "%s", shop_trace_of(ev));
	while (waited < 40000) {
		for (i = 0; i < s->h.n_events; i++) {
			const char *type = cJSON_GetStringValue(cJSON_GetObjectItem(s->h.events[i], "type"));
			const char *id = shop_trace_of(s->h.events[i]);

			if (id && strcmp(id, trace) == 0 && type &&
			    (!strcmp(type, "HEALED") || !strcmp(type, "HEAL_FAILED") ||
			     !strcmp(type, "ESCALATED") || !strcmp(type, "DRY_RUN") ||
			     !strcmp(type, "APPROVAL_REQUIRED")))
				return s->h.events[i];
		}
		h_heald_drain(&s->h, 100);
		waited += 100;
	}
	return NULL;
}

