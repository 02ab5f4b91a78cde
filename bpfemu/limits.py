"""Kernel limits and configuration the model assumes, in one place (x86_64, 4 KiB pages, Linux 6.18).

Map-type specific limits (an LPM key's maximum, the bloom filter's hash count, ...) stay in the map type's
own file; what more than one module checks against is here.
"""

PAGE_SIZE = 4096
NULL_PAGE = 4096  # user addresses below this are never mapped: EFAULT
PATH_MAX = 4096
KMALLOC_MAX_SIZE = 1 << 22
PCPU_MIN_UNIT_SIZE = 32768
MAX_BPF_STACK = 512
SHA256_DIGEST_SIZE = 32

U16_MAX = 0xFFFF
S32_MAX = INT_MAX = 2**31 - 1
U32_MAX = 0xFFFFFFFF
# BPF_LOCAL_STORAGE_MAX_VALUE_SIZE: U16_MAX less sizeof(struct bpf_local_storage_elem), 128 bytes on 6.18
# (measured: value_size 65407 passes the check of every local storage type, 65408 is E2BIG)
BPF_LOCAL_STORAGE_ELEM = 128
LOCAL_STORAGE_MAX_VALUE_SIZE = U16_MAX - BPF_LOCAL_STORAGE_ELEM

NUMA_NO_NODE = -1
NR_NODE_IDS = 1  # the host has one NUMA node
NR_CPUS = 8192  # CONFIG_NR_CPUS of a Kernel() that cannot read the host's (Kernel.nr_cpus is the one used)
PERF_EVENT_MAX_STACK = 127  # kernel.perf_event_max_stack default
LOOPBACK_IFINDEX = 1  # the only network device the model has


def round_up(n, m):
    return (n + m - 1) // m * m


def roundup_pow_of_two(n):
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def page_align(n):
    return round_up(n, PAGE_SIZE)
