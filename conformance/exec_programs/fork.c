/* A forked child inherits a map fd and updates the map; exec keeps only fds without O_CLOEXEC. */
#include "common.h"
#include <sys/wait.h>

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	__u32 k, v;
	if (argc == 3) {  /* after exec: argv[1] = an fd kept without O_CLOEXEC, argv[2] = one with it */
		int keep = atoi(argv[1]), gone = atoi(argv[2]);
		k = 2; v = 222;
		SHOW("exec'd: update via kept fd", bpf_map_update_elem(keep, &k, &v, BPF_ANY));
		SHOW("exec'd: update via O_CLOEXEC fd", bpf_map_update_elem(gone, &k, &v, BPF_ANY));
		print_fdinfo(keep);
		return 0;
	}
	SECTION("fork");
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "shared", 4, 4, 8, NULL);
	SHOW("create", fd);
	pid_t pid = fork();
	if (pid == 0) {
		k = 1; v = 111;
		SHOW("child: update", bpf_map_update_elem(fd, &k, &v, BPF_ANY));
		int own = bpf_map_create(BPF_MAP_TYPE_ARRAY, "childs", 4, 4, 1, NULL);
		SHOW("child: own map", own);
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	printf("child exited %d\n", WEXITSTATUS(status));
	k = 1; v = 0;
	SHOW("parent: lookup", bpf_map_lookup_elem(fd, &k, &v));
	printf("value %u\n", v);

	SECTION("exec");
	SHOW("dup2 to 9 (no O_CLOEXEC)", dup2(fd, 9));
	pid = fork();
	if (pid == 0) {
		char a1[16], a2[16];
		snprintf(a1, sizeof(a1), "%d", 9);
		snprintf(a2, sizeof(a2), "%d", fd);
		execl("/proc/self/exe", argv[0], a1, a2, (char *)NULL);
		_exit(127);
	}
	waitpid(pid, &status, 0);
	printf("exec'd child exited %d\n", WEXITSTATUS(status));
	k = 2; v = 0;
	SHOW("parent: lookup 2", bpf_map_lookup_elem(fd, &k, &v));
	printf("value %u\n", v);
	__u32 id = 0, n = 0;
	while (bpf_map_get_next_id(id, &id) == 0) n++;
	return 0;
}
