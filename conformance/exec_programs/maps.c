/* libbpf's low-level API on maps: create, update, lookup, get_next_key, batches, pin/get,
 * info, get_next_id, fds (dup, fcntl, readlink, fdinfo). Run as root on the host and under
 * bpfemu exec as an unprivileged user; the outputs must be the same. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

static int own_ids[8], n_own;

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	LIBBPF_OPTS(bpf_map_create_opts, zs, .map_flags = BPF_F_ZERO_SEED);
	int h, a, i, r;
	__u32 k, v, next;

	SECTION("create");
	h = bpf_map_create(BPF_MAP_TYPE_HASH, "hash_one", 4, 4, 8, &zs);
	SHOW("hash fd", h);
	a = bpf_map_create(BPF_MAP_TYPE_ARRAY, "array_one", 4, 8, 4, NULL);
	SHOW("array fd", a);
	SHOW("bad key size", bpf_map_create(BPF_MAP_TYPE_ARRAY, "bad", 8, 8, 4, NULL));
	SHOW("zero entries", bpf_map_create(BPF_MAP_TYPE_HASH, "bad", 4, 4, 0, NULL));
	print_info(h);
	print_info(a);

	SECTION("names");
	print_name(h);
	print_name(a);

	SECTION("update and lookup");
	for (k = 1; k <= 8; k++) {
		v = k * 100;
		r = bpf_map_update_elem(h, &k, &v, BPF_NOEXIST);
		if (r) SHOW("update", r);
	}
	k = 9; v = 1;
	SHOW("update past max_entries", bpf_map_update_elem(h, &k, &v, BPF_ANY));
	k = 3;
	SHOW("update noexist on existing", bpf_map_update_elem(h, &k, &v, BPF_NOEXIST));
	k = 42;
	SHOW("update exist on missing", bpf_map_update_elem(h, &k, &v, BPF_EXIST));
	k = 3; v = 0;
	SHOW("lookup 3", bpf_map_lookup_elem(h, &k, &v));
	printf("value %u\n", v);
	k = 42;
	SHOW("lookup 42", bpf_map_lookup_elem(h, &k, &v));
	k = 3;
	SHOW("lookup_and_delete 3", bpf_map_lookup_and_delete_elem(h, &k, &v));
	printf("value %u\n", v);
	SHOW("delete 3 again", bpf_map_delete_elem(h, &k));
	SHOW("bad flags", bpf_map_update_elem(h, &k, &v, 4));

	SECTION("get_next_key");
	r = bpf_map_get_next_key(h, NULL, &next);
	while (r == 0) {
		printf("key %u\n", next);
		k = next;
		r = bpf_map_get_next_key(h, &k, &next);
	}
	printf("end errno=%s\n", strerrorname(errno));
	k = 1000;
	SHOW("next of missing key", bpf_map_get_next_key(h, &k, &next));
	printf("-> %u\n", next);

	SECTION("batches");
	{
		__u32 keys[4] = {0, 1, 2, 3}, count = 4, out_batch = 0, i2;
		__u64 vals[4] = {11, 22, 33, 44}, got[8];
		__u32 gk[8];
		LIBBPF_OPTS(bpf_map_batch_opts, bo);
		SHOW("update_batch", bpf_map_update_batch(a, keys, vals, &count, &bo));
		printf("count %u\n", count);
		count = 8;
		memset(got, 0, sizeof(got));
		SHOW("lookup_batch array", bpf_map_lookup_batch(a, NULL, &out_batch, gk, got, &count, &bo));
		printf("count %u out_batch %u\n", count, out_batch);
		for (i2 = 0; i2 < count; i2++) printf("  %u -> %llu\n", gk[i2], (unsigned long long)got[i2]);
		__u32 hk[8], hv[8], in = 0, outb = 0;
		count = 3;
		SHOW("lookup_batch hash (3)", bpf_map_lookup_batch(h, NULL, &outb, hk, hv, &count, &bo));
		printf("count %u\n", count);
		for (i2 = 0; i2 < count; i2++) printf("  %u -> %u\n", hk[i2], hv[i2]);
		in = outb;
		count = 8;
		SHOW("lookup_batch hash (rest)", bpf_map_lookup_batch(h, &in, &outb, hk, hv, &count, &bo));
		printf("count %u\n", count);
		for (i2 = 0; i2 < count; i2++) printf("  %u -> %u\n", hk[i2], hv[i2]);
		__u32 del[3] = {1, 2, 77};
		count = 3;
		SHOW("delete_batch", bpf_map_delete_batch(h, del, &count, &bo));
		printf("count %u\n", count);
		count = 2;
		SHOW("delete_batch array", bpf_map_delete_batch(a, keys, &count, &bo));
	}

	SECTION("pin and get");
	SHOW("mkdir", mkdir("/sys/fs/bpf/prog_test", 0700));
	SHOW("pin", bpf_obj_pin(h, "/sys/fs/bpf/prog_test/h"));
	SHOW("pin again", bpf_obj_pin(h, "/sys/fs/bpf/prog_test/h"));
	SHOW("pin outside bpffs", bpf_obj_pin(h, "/tmp/not-bpffs"));
	SHOW("pin in missing dir", bpf_obj_pin(h, "/sys/fs/bpf/nodir/h"));
	int g = bpf_obj_get("/sys/fs/bpf/prog_test/h");
	SHOW("get", g);
	print_info(g);
	SHOW("get missing", bpf_obj_get("/sys/fs/bpf/prog_test/nope"));
	SHOW("get a directory", bpf_obj_get("/sys/fs/bpf/prog_test"));
	{
		LIBBPF_OPTS(bpf_obj_get_opts, ro, .file_flags = BPF_F_RDONLY);
		int r2 = bpf_obj_get_opts("/sys/fs/bpf/prog_test/h", &ro);
		SHOW("get read-only", r2);
		k = 5; v = 1;
		SHOW("update through read-only fd", bpf_map_update_elem(r2, &k, &v, BPF_ANY));
		SHOW("lookup through read-only fd", bpf_map_lookup_elem(r2, &k, &v));
		printf("F_GETFL ro %#o\n", fcntl(r2, F_GETFL));
		print_fdinfo(r2);
		close(r2);
	}
	struct statfs sf;
	SHOW("statfs", statfs("/sys/fs/bpf/prog_test", &sf));
	printf("f_type %#lx\n", (unsigned long)sf.f_type);
	SHOW("unlink", unlink("/sys/fs/bpf/prog_test/h"));
	SHOW("rmdir", rmdir("/sys/fs/bpf/prog_test"));

	SECTION("fds");
	{
		char link[64], path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", h);
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		link[n > 0 ? n : 0] = 0;
		printf("readlink %s\n", link);
		printf("F_GETFD %d F_GETFL %#o\n", fcntl(h, F_GETFD), fcntl(h, F_GETFL));
		int d = dup(h);
		printf("dup -> %d F_GETFD %d\n", d - h, fcntl(d, F_GETFD));
		int d2 = fcntl(h, F_DUPFD_CLOEXEC, 20);
		printf("F_DUPFD_CLOEXEC 20 -> %d F_GETFD %d\n", d2, fcntl(d2, F_GETFD));
		SHOW("dup2 to 30", dup2(h, 30));
		print_info(30);
		print_fdinfo(30);
		close(d); close(d2); close(30);
		k = 5;
		SHOW("lookup on closed fd", bpf_map_lookup_elem(30, &k, &v));
		SHOW("lookup on stdin", bpf_map_lookup_elem(0, &k, &v));
		SHOW("info of stdin", bpf_obj_get_info_by_fd(0, &v, &k));
		struct stat st;
		SHOW("fstat", fstat(h, &st));
		printf("mode %o nlink %lu size %ld\n", st.st_mode, (unsigned long)st.st_nlink, (long)st.st_size);
		SHOW("lseek", lseek(h, 0, SEEK_SET));
	}

	SECTION("read");
	SHOW("read", read(h, &v, 4));

	SECTION("get_next_id");
	{
		struct bpf_map_info info;
		__u32 len = sizeof(info), id = 0, found = 0;
		memset(&info, 0, sizeof(info));
		bpf_obj_get_info_by_fd(h, &info, &len);
		own_ids[n_own++] = info.id;
		len = sizeof(info);
		bpf_obj_get_info_by_fd(a, &info, &len);
		own_ids[n_own++] = info.id;
		while (bpf_map_get_next_id(id, &id) == 0) {
			for (i = 0; i < n_own; i++)
				if ((int)id == own_ids[i]) {
					int fd = bpf_map_get_fd_by_id(id);
					printf("found own map %d: ", i);
					print_info(fd);
					close(fd);
					found++;
				}
		}
		printf("found %u, end errno=%s\n", found, strerrorname(errno));
		SHOW("fd by id 0", bpf_map_get_fd_by_id(0));
		close(h);
		SHOW("fd by closed map's id", bpf_map_get_fd_by_id(own_ids[0]));
		close(a);
	}
	return 0;
}
