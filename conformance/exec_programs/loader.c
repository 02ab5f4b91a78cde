/* Loads a clang-compiled BPF object with libbpf's object API (open, load, programs and maps by name) and
 * runs its XDP program with BPF_PROG_TEST_RUN: argv[1] is conformance/objects/xdp_counter.bpf.o. */
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/libbpf.h>
#include "common.h"

static int quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level; (void)fmt; (void)ap;
	return 0;	/* libbpf's log names paths and sizes of the running kernel */
}

struct stats { __u64 packets, bytes; };

/* An Ethernet frame carrying an IPv4 header from 10.0.0.<last> and `pad` bytes of payload. */
static size_t packet(unsigned char *buf, int last, size_t pad)
{
	struct ethhdr *eth = (void *)buf;
	struct iphdr *ip = (void *)(eth + 1);

	memset(buf, 0, sizeof(*eth) + sizeof(*ip) + pad);
	eth->h_proto = htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tot_len = htons(sizeof(*ip) + pad);
	ip->protocol = 17;
	ip->saddr = htonl(0x0a000000 | last);
	ip->daddr = htonl(0x0a0000fe);
	return sizeof(*eth) + sizeof(*ip) + pad;
}

static void run(int fd, const void *data, size_t len)
{
	unsigned char out[256];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data, .data_size_in = len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);
	int r = bpf_prog_test_run_opts(fd, &opts);

	if (r < 0) {
		printf("test_run(%zu bytes) = %d errno=%s\n", len, r, strerrorname(errno));
		return;
	}
	printf("test_run(%zu bytes) = %d retval=%u data_size_out=%u same=%d\n", len, r, opts.retval,
	       opts.data_size_out, opts.data_size_out == len && !memcmp(out, data, len));
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_map *map;
	unsigned char buf[128];
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	libbpf_set_print(quiet);
	if (argc < 2)
		return 2;

	SECTION("open");
	obj = bpf_object__open_file(argv[1], NULL);
	printf("open: %s\n", obj ? "ok" : strerrorname(errno));
	if (!obj)
		return 1;
	printf("name %s\n", bpf_object__name(obj));
	bpf_object__for_each_program(prog, obj)
		printf("program %s section %s type %d autoload %d insns %zu\n", bpf_program__name(prog),
		       bpf_program__section_name(prog), bpf_program__type(prog), bpf_program__autoload(prog),
		       bpf_program__insn_cnt(prog));
	bpf_object__for_each_map(map, obj)
		printf("map %s type %d key %u value %u max_entries %u\n", bpf_map__name(map), bpf_map__type(map),
		       bpf_map__key_size(map), bpf_map__value_size(map), bpf_map__max_entries(map));

	SECTION("load");
	err = bpf_object__load(obj);
	printf("load = %d\n", err);
	if (err)
		return 1;

	SECTION("info");
	prog = bpf_object__find_program_by_name(obj, "xdp_count");
	int pfd = bpf_program__fd(prog);
	struct bpf_prog_info pinfo = {};
	__u32 plen = sizeof(pinfo);
	SHOW("prog info", bpf_obj_get_info_by_fd(pfd, &pinfo, &plen));
	printf("prog name %s type %u nr_map_ids %u gpl %u btf %d func_info %u line_info %u\n", pinfo.name,
	       pinfo.type, pinfo.nr_map_ids, pinfo.gpl_compatible, pinfo.btf_id != 0, pinfo.nr_func_info,
	       pinfo.nr_line_info);
	bpf_object__for_each_map(map, obj) {
		struct bpf_map_info minfo = {};
		__u32 mlen = sizeof(minfo);
		SHOW("map info", bpf_obj_get_info_by_fd(bpf_map__fd(map), &minfo, &mlen));
		printf("map name %s type %u key %u value %u max_entries %u flags %u btf %d\n", minfo.name,
		       minfo.type, minfo.key_size, minfo.value_size, minfo.max_entries, minfo.map_flags,
		       minfo.btf_id != 0);
	}

	SECTION("test_run");
	run(pfd, buf, packet(buf, 1, 20));
	run(pfd, buf, packet(buf, 1, 0));
	run(pfd, buf, packet(buf, 2, 40));
	run(pfd, buf, 10);	/* shorter than an Ethernet header */

	SECTION("maps after test_run");
	int ncpus = libbpf_num_possible_cpus();
	struct stats *per = calloc(ncpus, sizeof(*per)), sum = {};
	__u32 zero = 0;
	SHOW("totals lookup", bpf_map_lookup_elem(bpf_map__fd(bpf_object__find_map_by_name(obj, "totals")),
						  &zero, per));
	for (int i = 0; i < ncpus; i++) {
		sum.packets += per[i].packets;
		sum.bytes += per[i].bytes;
	}
	printf("totals packets %llu bytes %llu\n", (unsigned long long)sum.packets, (unsigned long long)sum.bytes);
	int bfd = bpf_map__fd(bpf_object__find_map_by_name(obj, "by_source"));
	for (int last = 1; last <= 3; last++) {
		__u32 key = htonl(0x0a000000 | last);
		__u64 n = 0;
		int r = bpf_map_lookup_elem(bfd, &key, &n);
		printf("by_source 10.0.0.%d = %d", last, r);
		if (r)
			printf(" errno=%s\n", strerrorname(errno));
		else
			printf(" count %llu\n", (unsigned long long)n);
	}
	free(per);

	SECTION("pin and close");
	SHOW("pin program", bpf_program__pin(prog, "/sys/fs/bpf/xdp_count"));
	SHOW("pin maps", bpf_object__pin_maps(obj, "/sys/fs/bpf/maps"));
	bpf_object__close(obj);
	int again = bpf_obj_get("/sys/fs/bpf/xdp_count");
	printf("pinned program reopened %d\n", again >= 0);
	struct bpf_prog_info info2 = {};
	__u32 len2 = sizeof(info2);
	SHOW("pinned prog info", bpf_obj_get_info_by_fd(again, &info2, &len2));
	printf("prog name %s type %u nr_map_ids %u\n", info2.name, info2.type, info2.nr_map_ids);
	int m = bpf_obj_get("/sys/fs/bpf/maps/by_source");
	printf("pinned map reopened %d\n", m >= 0);

	SECTION("pinned program runs");
	run(again, buf, packet(buf, 3, 0));
	__u32 key = htonl(0x0a000003);
	__u64 n = 0;
	SHOW("pinned by_source 10.0.0.3", bpf_map_lookup_elem(m, &key, &n));
	printf("count %llu\n", (unsigned long long)n);
	return 0;
}
