/* Per-call cost of syscalls a BPF tool makes: printed as "name ns_per_call", one line each. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* With a section name as the second argument, only the calls whose name starts with it run (the
 * supervisor's CPU time per call is measured that way, one section per run). */
static const char *only;

#define TIME(name, n, body) do { if (only && strncmp(name, only, strlen(only))) break; \
	double t0 = now(); for (int i = 0; i < (n); i++) { body; } \
	printf("%s %.0f\n", name, (now() - t0) / (n) * 1e9); } while (0)

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 2000;
	only = argc > 2 ? argv[2] : NULL;
	int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, NULL, 4, 8, 16, NULL);
	int h = bpf_map_create(BPF_MAP_TYPE_HASH, NULL, 4, 8, 1024, NULL);
	__u32 k = 3;
	__u64 v = 7;
	struct stat st;
	if (fd < 0 || h < 0) { perror("bpf_map_create"); return 1; }
	TIME("getpid (not intercepted)", n * 10, syscall(SYS_getpid));
	TIME("fstat of a regular fd (intercepted, continued)", n, fstat(1, &st));
	TIME("openat+close /dev/null (intercepted, continued)", n, close(open("/dev/null", O_RDONLY)));
	TIME("bpf MAP_LOOKUP_ELEM array", n, bpf_map_lookup_elem(fd, &k, &v));
	TIME("bpf MAP_UPDATE_ELEM array", n, bpf_map_update_elem(fd, &k, &v, 0));
	TIME("bpf MAP_UPDATE_ELEM hash", n, (k = i % 1024, bpf_map_update_elem(h, &k, &v, 0)));
	TIME("bpf MAP_LOOKUP_ELEM hash", n, (k = i % 1024, bpf_map_lookup_elem(h, &k, &v)));
	TIME("bpf MAP_CREATE + close", n / 10, close(bpf_map_create(BPF_MAP_TYPE_ARRAY, NULL, 4, 8, 16, NULL)));
	return 0;
}
