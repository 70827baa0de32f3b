// SPDX-License-Identifier: MIT
/*
 * floor: load an object's BPF programs, attach them by section name, print
 * "attached" and hold them until SIGINT/SIGTERM. With BINARY FUNCTION,
 * uprobe/uretprobe programs attach to FUNCTION in BINARY (any process).
 * usage: floor OBJECT.bpf.o [BINARY FUNCTION]
 */
#include <bpf/libbpf.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;

	if (argc != 2 && argc != 4) {
		fprintf(stderr, "usage: %s OBJECT.bpf.o [BINARY FUNCTION]\n", argv[0]);
		return 2;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj || bpf_object__load(obj)) {
		fprintf(stderr, "floor: cannot open or load %s\n", argv[1]);
		return 1;
	}
	bpf_object__for_each_program(prog, obj) {
		const char *sec = bpf_program__section_name(prog);
		struct bpf_link *link;

		if (argc == 4 && (!strcmp(sec, "uprobe") || !strcmp(sec, "uretprobe"))) {
			struct bpf_uprobe_opts uo = { .sz = sizeof(uo), .func_name = argv[3],
						      .retprobe = !strcmp(sec, "uretprobe") };

			link = bpf_program__attach_uprobe_opts(prog, -1, argv[2], 0, &uo);
		} else {
			link = bpf_program__attach(prog);
		}
		if (!link) {
			fprintf(stderr, "floor: cannot attach %s\n", bpf_program__name(prog));
			return 1;
		}
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	printf("attached\n");
	fflush(stdout);
	while (!stop)
		pause();
	bpf_object__close(obj);
	return 0;
}
