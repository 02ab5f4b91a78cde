/* mmap of an mmapable array: both ways shared, the kernel's refusals, a mapping keeping the map. */
#include "common.h"
#include <sys/mman.h>

static __u32 map_id(int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	memset(&info, 0, sizeof(info));
	bpf_obj_get_info_by_fd(fd, &info, &len);
	return info.id;
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	LIBBPF_OPTS(bpf_map_create_opts, mm, .map_flags = BPF_F_MMAPABLE);
	__u32 k;
	__u64 v;
	long pg = sysconf(_SC_PAGESIZE);

	SECTION("create");
	int a = bpf_map_create(BPF_MAP_TYPE_ARRAY, "mm", 4, 8, 512, &mm);
	SHOW("mmapable array", a);
	print_fdinfo(a);
	int h = bpf_map_create(BPF_MAP_TYPE_HASH, "h", 4, 8, 4, NULL);
	int plain = bpf_map_create(BPF_MAP_TYPE_ARRAY, "plain", 4, 8, 4, NULL);

	SECTION("shared both ways");
	__u64 *p = mmap(NULL, 512 * 8, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	printf("mmap rw %s\n", p == MAP_FAILED ? strerrorname(errno) : "ok");
	if (p == MAP_FAILED) return 1;
	p[7] = 0x1122334455667788ULL;
	k = 7; v = 0;
	SHOW("lookup 7", bpf_map_lookup_elem(a, &k, &v));
	printf("value %#llx\n", (unsigned long long)v);
	k = 300; v = 99;
	SHOW("update 300", bpf_map_update_elem(a, &k, &v, BPF_ANY));
	printf("p[300] = %llu\n", (unsigned long long)p[300]);

	SECTION("refusals");
	void *q;
	q = mmap(NULL, pg, PROT_READ, MAP_PRIVATE, a, 0);
	printf("private %s\n", q == MAP_FAILED ? strerrorname(errno) : "ok");
	q = mmap(NULL, 2 * pg, PROT_READ, MAP_SHARED, a, 0);
	printf("past the end %s\n", q == MAP_FAILED ? strerrorname(errno) : "ok");
	q = mmap(NULL, pg, PROT_READ, MAP_SHARED, a, 3 * pg);
	printf("offset past the end %s\n", q == MAP_FAILED ? strerrorname(errno) : "ok");
	q = mmap(NULL, pg, PROT_READ | PROT_EXEC, MAP_SHARED, a, 0);
	printf("exec %s\n", q == MAP_FAILED ? strerrorname(errno) : "ok");
	q = mmap(NULL, pg, PROT_READ, MAP_SHARED, h, 0);
	printf("hash %s\n", q == MAP_FAILED ? strerrorname(errno) : "ok");
	q = mmap(NULL, pg, PROT_READ, MAP_SHARED, plain, 0);
	printf("array without BPF_F_MMAPABLE %s\n", q == MAP_FAILED ? strerrorname(errno) : "ok");

	SECTION("read-only mapping and freeze");
	__u64 *r = mmap(NULL, pg, PROT_READ, MAP_SHARED, a, 0);
	printf("mmap ro %s, r[7] = %#llx\n", r == MAP_FAILED ? strerrorname(errno) : "ok", (unsigned long long)r[7]);
	SHOW("mprotect ro -> rw", mprotect(r, pg, PROT_READ | PROT_WRITE));
	SHOW("mprotect rw -> rwx", mprotect(p, pg, PROT_READ | PROT_WRITE | PROT_EXEC));
	SHOW("freeze with a writable mapping", bpf_map_freeze(a));
	SHOW("munmap rw", munmap(p, 512 * 8));
	SHOW("freeze", bpf_map_freeze(a));
	q = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, a, 0);
	printf("mmap rw after freeze %s\n", q == MAP_FAILED ? strerrorname(errno) : "ok");
	q = mmap(NULL, pg, PROT_READ, MAP_SHARED, a, 0);
	printf("mmap ro after freeze %s\n", q == MAP_FAILED ? strerrorname(errno) : "ok");
	k = 1; v = 5;
	SHOW("update after freeze", bpf_map_update_elem(a, &k, &v, BPF_ANY));
	printf("r[300] = %llu\n", (unsigned long long)r[300]);

	SECTION("a mapping keeps the map alive");
	int b = bpf_map_create(BPF_MAP_TYPE_ARRAY, "keep", 4, 4, 16, &mm);
	__u32 id = map_id(b);
	__u32 *m = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED, b, 0);
	m[3] = 33;
	close(b);
	int b2 = bpf_map_get_fd_by_id(id);
	SHOW("fd by id while mapped", b2 >= 0 ? 0 : b2);
	k = 3; __u32 v32 = 0;
	SHOW("lookup 3", bpf_map_lookup_elem(b2, &k, &v32));
	printf("value %u\n", v32);
	close(b2);
	SHOW("munmap", munmap(m, pg));
	SHOW("fd by id after munmap", bpf_map_get_fd_by_id(id));
	return 0;
}
