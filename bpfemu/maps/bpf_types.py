"""The map type registry (the kernel's include/linux/bpf_types.h, with map_create's privilege switch).

One line per ``enum bpf_map_type`` value bpfemu implements: the type, the class behind it (a complete
``struct bpf_map_ops``, see :mod:`bpfemu.maps.bpf_map`) and the privilege MAP_CREATE asks for it:

- ``UNPRIV``: none while ``kernel.unprivileged_bpf_disabled`` is 0 (CAP_BPF otherwise, as for every type);
- ``BPF``: CAP_BPF (or CAP_SYS_ADMIN);
- ``NET``: CAP_BPF and CAP_NET_ADMIN.

Adding a map type is its file in this package and its line here.
"""
from .. import uapi as U
from . import (arena, arraymap, bloom_filter, bpf_local_storage, bpf_struct_ops, cpumap, devmap, hashtab,
               local_storage, lpm_trie, queue_stack_maps, reuseport_array, ringbuf, sock_map, stackmap, xskmap)
from .bpf_map import BpfMap

UNPRIV, BPF, NET = "unprivileged", "CAP_BPF", "CAP_NET_ADMIN"


class MapType:
    __slots__ = ("type", "ops", "privilege")

    def __init__(self, type, ops, privilege):
        self.type, self.ops, self.privilege = type, ops, privilege

    def __repr__(self):
        return "<map type %s: %s, %s>" % (U.map_type_name(self.type), self.ops.__name__, self.privilege)


MAP_TYPES = {}  # map type number -> MapType


def BPF_MAP_TYPE(t, ops, privilege):
    if ops.mem_usage is BpfMap.mem_usage:
        raise TypeError("%s defines no mem_usage" % ops.__name__)
    MAP_TYPES[t] = MapType(t, ops, privilege)


BPF_MAP_TYPE(U.BPF_MAP_TYPE_HASH, hashtab.HashMap, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_ARRAY, arraymap.ArrayMap, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_PROG_ARRAY, arraymap.ProgArray, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, arraymap.PerfEventArray, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_PERCPU_HASH, hashtab.HashMap, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_PERCPU_ARRAY, arraymap.PercpuArrayMap, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_STACK_TRACE, stackmap.StackMap, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_CGROUP_ARRAY, arraymap.CgroupArray, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_LRU_HASH, hashtab.HashMap, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_LRU_PERCPU_HASH, hashtab.HashMap, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_LPM_TRIE, lpm_trie.LpmTrieMap, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_ARRAY_OF_MAPS, arraymap.ArrayOfMaps, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_HASH_OF_MAPS, hashtab.HashOfMaps, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_DEVMAP, devmap.DevMap, NET)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_SOCKMAP, sock_map.SockMap, NET)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_CPUMAP, cpumap.CpuMap, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_XSKMAP, xskmap.XskMap, NET)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_SOCKHASH, sock_map.SockHash, NET)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_CGROUP_STORAGE, local_storage.CgroupStorage, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, reuseport_array.ReuseportArray, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, local_storage.CgroupStorage, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_QUEUE, queue_stack_maps.QueueStackMap, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_STACK, queue_stack_maps.QueueStackMap, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_SK_STORAGE, bpf_local_storage.LocalStorage, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_DEVMAP_HASH, devmap.DevMapHash, NET)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_STRUCT_OPS, bpf_struct_ops.StructOpsMap, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_RINGBUF, ringbuf.RingBuf, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_INODE_STORAGE, bpf_local_storage.LocalStorage, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_TASK_STORAGE, bpf_local_storage.LocalStorage, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_BLOOM_FILTER, bloom_filter.BloomFilterMap, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_USER_RINGBUF, ringbuf.UserRingBuf, UNPRIV)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_CGRP_STORAGE, bpf_local_storage.LocalStorage, BPF)
BPF_MAP_TYPE(U.BPF_MAP_TYPE_ARENA, arena.Arena, BPF)
