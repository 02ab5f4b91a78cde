/* Shared by the bpfemu exec conformance programs: print each step's result in one format. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <unistd.h>
#include <bpf/bpf.h>

/* A section header: the test compares the output section by section. */
#define SECTION(name) printf("### %s\n", name)
/* The result of a call that returns 0 / a value or a negative errno (libbpf 1.x). */
#define SHOW(what, expr) do { long _r = (long)(expr); int _e = errno; \
	if (_r < 0) printf("%s = %ld errno=%s\n", what, _r, strerrorname(_e)); \
	else printf("%s = %ld\n", what, _r); } while (0)

static const char *strerrorname(int e)
{
	switch (e) {
	case EPERM: return "EPERM"; case ENOENT: return "ENOENT"; case EBADF: return "EBADF";
	case EACCES: return "EACCES"; case EBUSY: return "EBUSY"; case EEXIST: return "EEXIST";
	case EINVAL: return "EINVAL"; case ENOSPC: return "ENOSPC"; case E2BIG: return "E2BIG";
	case EFAULT: return "EFAULT"; case ENODEV: return "ENODEV"; case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR"; case 524: return "ENOTSUPP"; case EIO: return "EIO";
	case ENOTEMPTY: return "ENOTEMPTY"; case EXDEV: return "EXDEV";
	default: { static char buf[32]; snprintf(buf, sizeof(buf), "%d", e); return buf; }
	}
}

static __attribute__((unused)) void print_fdinfo(int fd)
{
	char path[64], line[256];
	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	FILE *f = fopen(path, "r");
	if (!f) { printf("fdinfo: %s\n", strerrorname(errno)); return; }
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "mnt_id:", 7) && strncmp(line, "ino:", 4))  /* boot-dependent */
			printf("fdinfo %s", line);
	fclose(f);
}

static __attribute__((unused)) void print_info(int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	memset(&info, 0, sizeof(info));
	int r = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (r) { printf("info: %s\n", strerrorname(errno)); return; }
	printf("info type=%u id=%u key=%u value=%u max=%u flags=%#x len=%u\n", info.type, info.id,
	       info.key_size, info.value_size, info.max_entries, info.map_flags, len);
}

static __attribute__((unused)) void print_name(int fd)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) == 0)
		printf("name=\"%s\"\n", info.name);
}
