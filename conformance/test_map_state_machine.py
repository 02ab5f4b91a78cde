"""Random sequences of map commands, run on the emulator and on the host kernel side by side.

A hypothesis state machine creates the same map on both machines and applies the same
commands to both (update with every flag, lookup, delete, GET_NEXT_KEY, lookup-and-delete,
the four batch commands, push/peek/pop for key-less maps). After every command the results
must be identical: return value or errno, and every byte written back (values, keys, the
batch count and out_batch). After every step the whole GET_NEXT_KEY walk (or the peeked
value, for key-less maps) must be identical too, which pins the iteration order.

Maps are described by one row of ``SPECS``: a new map type is one more row. LRU maps small enough to
evict are compared exactly too: both tasks run on CPU 0 (the host task is pinned with
sched_setaffinity), and the emulator's LRU lists are the kernel's (bpfemu/maps/bpf_lru_list.py).
``exact=False`` compares only argument errors and the invariants (no key twice, never more than
max_entries), for a map whose state the emulator does not model.
Maps of maps store the fds of a few inner maps created alike on both machines (same fd
numbers); the ids they answer differ between machines, so ids are compared by map.
"""
import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

import bpfemu
from bpfemu import uapi as u

from bpfemu.testing.support import addr, batch, buf, create_map, make_attr, map_info, possible_cpus
from bpfemu.testing.backends import need_host, real_kernel, twin_kernel

NCPU = possible_cpus()  # the host's, which the emulated kernels take too
EINVAL, EPERM, E2BIG, EFAULT, ENOTSUPP = 22, 1, 7, 14, 524
HASH_TYPES = (u.BPF_MAP_TYPE_HASH, u.BPF_MAP_TYPE_PERCPU_HASH, u.BPF_MAP_TYPE_LRU_HASH,
              u.BPF_MAP_TYPE_LRU_PERCPU_HASH)
PERCPU_TYPES = (u.BPF_MAP_TYPE_PERCPU_HASH, u.BPF_MAP_TYPE_LRU_PERCPU_HASH, u.BPF_MAP_TYPE_PERCPU_ARRAY)


def int_keys(n, key_size):
    """Keys drawn from n distinct values (so updates hit present keys as often as new ones)."""
    def key(i):
        return struct.pack("<I", i * 2654435761 & 0xFFFFFFFF).ljust(key_size, bytes([i]))[:key_size]
    return st.integers(0, n - 1).map(key)


def index_keys(n):
    return st.integers(0, n - 1).map(lambda i: struct.pack("<I", i))


def lpm_keys(data_size):
    """prefixlen (up to one past the maximum) and data from a few overlapping patterns."""
    datas = [bytes([0x0A] + [0] * (data_size - 1)), bytes([0x0A, 0x80] + [0] * (data_size - 2)),
             bytes([0x0B] * data_size), bytes([0xFF] * data_size)]
    return st.tuples(st.integers(0, 8 * data_size + 1), st.sampled_from(datas)).map(
        lambda t: struct.pack("<I", t[0]) + t[1])


@dataclass
class Spec:
    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    keys: object = None  # hypothesis strategy of key bytes; None: a key-less map
    exact: bool = True
    create: dict = field(default_factory=dict)
    of_maps: bool = False  # values are inner-map fds in, map ids out

    @property
    def user_value_size(self):
        if self.map_type in PERCPU_TYPES:
            return (self.value_size + 7) // 8 * 8 * NCPU
        return self.value_size

    @property
    def batch_size(self):
        """in_batch/out_batch: a u32 bucket index for hash maps, else a key."""
        return 4 if self.map_type in HASH_TYPES else max(self.key_size, 4)


ZS = u.BPF_F_ZERO_SEED
SPECS = [
    Spec("hash", u.BPF_MAP_TYPE_HASH, 4, 8, 8, ZS, int_keys(14, 4)),
    Spec("hash_key3_noprealloc", u.BPF_MAP_TYPE_HASH, 3, 5, 6, ZS | u.BPF_F_NO_PREALLOC, int_keys(10, 3)),
    Spec("percpu_hash", u.BPF_MAP_TYPE_PERCPU_HASH, 6, 4, 8, ZS, int_keys(12, 6)),
    # large enough never to evict: then an LRU map must behave exactly like the host's
    Spec("lru_hash_roomy", u.BPF_MAP_TYPE_LRU_HASH, 4, 8, 1024, ZS, int_keys(14, 4)),
    Spec("lru_hash_evicting", u.BPF_MAP_TYPE_LRU_HASH, 4, 8, 6, ZS, int_keys(16, 4)),
    Spec("lru_hash_no_common_lru", u.BPF_MAP_TYPE_LRU_HASH, 4, 8, 6, ZS | u.BPF_F_NO_COMMON_LRU, int_keys(16, 4)),
    Spec("lru_percpu_hash_evicting", u.BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 4, 5, ZS | u.BPF_F_NO_COMMON_LRU,
         int_keys(16, 4)),
    Spec("lru_percpu_hash_common", u.BPF_MAP_TYPE_LRU_PERCPU_HASH, 4, 4, 7, ZS, int_keys(16, 4)),
    Spec("array", u.BPF_MAP_TYPE_ARRAY, 4, 6, 5, 0, index_keys(7)),
    Spec("percpu_array", u.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 12, 4, 0, index_keys(6)),
    Spec("hash_of_maps", u.BPF_MAP_TYPE_HASH_OF_MAPS, 4, 4, 4, ZS, int_keys(7, 4), of_maps=True),
    Spec("array_of_maps", u.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4, 4, 3, 0, index_keys(5), of_maps=True),
    Spec("lpm_trie", u.BPF_MAP_TYPE_LPM_TRIE, 6, 4, 6, u.BPF_F_NO_PREALLOC, lpm_keys(2)),
    Spec("queue", u.BPF_MAP_TYPE_QUEUE, 0, 4, 4, 0),
    Spec("stack", u.BPF_MAP_TYPE_STACK, 0, 4, 4, 0),
    Spec("bloom_filter", u.BPF_MAP_TYPE_BLOOM_FILTER, 0, 4, 8, ZS,
         create={"map_extra": 2}),
]


class Result:
    """What one command left: errno (0 = success) and the output bytes, comparable with ==."""

    def __init__(self, errno_, out=b"", ids_at=None):
        self.errno, self.out = errno_, out
        self.ids_at = ids_at  # where map ids start in out (maps of maps' lookups), else None

    def with_ids_named(self, names):
        """The same result with each map id replaced by the name of its map (ids differ between machines)."""
        if self.ids_at is None:
            return self
        head, tail = self.out[:self.ids_at], self.out[self.ids_at:]
        words = [tail[i:i + 4] for i in range(0, len(tail) - len(tail) % 4, 4)]
        named = b"".join(names.get(struct.unpack("<I", w)[0], w) for w in words)
        return Result(self.errno, head + named + tail[len(words) * 4:])

    def __eq__(self, other):
        return (self.errno, self.out) == (other.errno, other.out)

    def __repr__(self):
        return "Result(errno=%d, out=%s)" % (self.errno, self.out.hex())


def elem_cmd(proc, cmd, fd, key, value=None, value_len=0, flags=0, next_len=0):
    """One element command; value is written to the kernel, else value_len bytes come back."""
    k = buf(key) if key is not None else None
    v = buf(value) if value is not None else (buf(value_len) if value_len else None)
    fields = {"map_fd": fd, "key": addr(k)}
    if cmd == u.BPF_MAP_GET_NEXT_KEY:
        v = buf(next_len)
        fields["next_key"] = addr(v)
    elif cmd != u.BPF_MAP_DELETE_ELEM:
        fields.update(value=addr(v), flags=flags)
    try:
        proc.bpf(cmd, make_attr(**fields))
        e = 0
    except OSError as ex:
        e = ex.errno
    reads = cmd in (u.BPF_MAP_LOOKUP_ELEM, u.BPF_MAP_LOOKUP_AND_DELETE_ELEM)
    return Result(e, v.raw if v is not None else b"", 0 if reads else None)


def batch_cmd(proc, cmd, fd, spec, count, **kw):
    r = batch(proc, cmd, fd, count, spec.key_size, spec.user_value_size, batch_size=spec.batch_size, **kw)
    reads = cmd in (u.BPF_MAP_LOOKUP_BATCH, u.BPF_MAP_LOOKUP_AND_DELETE_BATCH)
    head = struct.pack("<I", r.count) + r.out_batch + r.keys
    return Result(r.errno, head + r.values, len(head) if reads else None)


def value_of(seed, n):
    return bytes((seed * 37 + i * 11) & 0xFF for i in range(n))


def machine_for(spec, emu, host):
    vs = spec.user_value_size
    keyless = spec.keys is None
    keys = spec.keys if not keyless else st.none()
    key_lists = st.lists(keys, max_size=4) if not keyless else st.just([])

    class MapMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.procs = (emu, host)
            self.inner = [[], []]  # maps of maps: candidate inner maps on each machine (same fds)
            self.names = [{}, {}]  # map id -> name, per machine
            create = dict(spec.create)
            if spec.of_maps:
                for i, p in enumerate(self.procs):
                    for j, n in enumerate((2, 2, 2, 3)):  # the last one does not match the template
                        fd = create_map(p, u.BPF_MAP_TYPE_ARRAY, max_entries=n)
                        self.inner[i].append(fd)
                        self.names[i][map_info(p, fd).id] = b"map%d" % j
                assert self.inner[0] == self.inner[1]
                create["inner_map_fd"] = self.inner[0][0]
            self.fds = [create_map(p, spec.map_type, key_size=spec.key_size, value_size=spec.value_size,
                                   max_entries=spec.max_entries, flags=spec.flags, **create)
                        for p in self.procs]
            self.last_out = {}  # batch command -> out_batch of the last call that wrote one

        def teardown(self):
            for p, fd, inner in zip(self.procs, self.fds, self.inner):
                for f in [fd] + inner:
                    p.close(f)

        def value(self, seed):
            if spec.of_maps:  # one of the inner maps, a closed fd, or a non-map fd
                return struct.pack("<i", (self.inner[0] + [99, 0])[seed % (len(self.inner[0]) + 2)])
            return value_of(seed, vs)

        def both(self, fn, *args, **kw):
            """Run fn on both machines; compare, or in the inexact mode compare argument errors."""
            r_emu, r_host = (fn(p, *args[:1], fd, *args[1:], **kw).with_ids_named(names)
                             for p, fd, names in zip(self.procs, self.fds, self.names))
            if spec.exact:
                assert r_emu == r_host, "emulator %r, host %r" % (r_emu, r_host)
            else:
                hard = (EINVAL, EPERM, EFAULT, ENOTSUPP)
                assert (r_emu.errno in hard and r_emu.errno) == (r_host.errno in hard and r_host.errno), (
                    "emulator %r, host %r" % (r_emu, r_host))
                assert E2BIG not in (r_emu.errno, r_host.errno), "an LRU map never reports a full map"
            return r_emu, r_host

        # -- element commands ------------------------------------------------------
        @rule(key=keys, seed=st.integers(0, 255), flags=st.sampled_from([0, 0, 0, 1, 2, 3, 4, 8]))
        def update(self, key, seed, flags):
            value = self.value(seed)
            results = self.both(elem_cmd, u.BPF_MAP_UPDATE_ELEM, key, value, flags=flags)
            if spec.exact or keyless:
                return
            for p, fd, r in zip(self.procs, self.fds, results):
                if r.errno == 0:  # what was just written is there
                    got = elem_cmd(p, u.BPF_MAP_LOOKUP_ELEM, fd, key, value_len=vs)
                    assert got == Result(0, value), (p, got)

        @rule(key=keys, seed=st.integers(0, 2))
        def put(self, key, seed):
            """A plain BPF_ANY update of a good value: the common case, so it gets its own rule."""
            self.update(key, seed, 0)

        @rule(key=keys, flags=st.sampled_from([0, 0, 0, 4, 1]), seed=st.integers(0, 255))
        def lookup(self, key, flags, seed):
            if spec.map_type == u.BPF_MAP_TYPE_BLOOM_FILTER:  # the value is the input
                self.both(elem_cmd, u.BPF_MAP_LOOKUP_ELEM, key, value_of(seed, vs), flags=flags)
            else:
                self.both(elem_cmd, u.BPF_MAP_LOOKUP_ELEM, key, value_len=vs, flags=flags)

        @rule(key=keys)
        def delete(self, key):
            self.both(elem_cmd, u.BPF_MAP_DELETE_ELEM, key)

        @rule(key=st.none() | keys)
        def get_next_key(self, key):
            self.both(elem_cmd, u.BPF_MAP_GET_NEXT_KEY, key, next_len=max(spec.key_size, 1))

        @rule(key=keys, flags=st.sampled_from([0, 0, 0, 4, 1]))
        def lookup_and_delete(self, key, flags):
            self.both(elem_cmd, u.BPF_MAP_LOOKUP_AND_DELETE_ELEM, key, value_len=vs, flags=flags)

        # -- batch commands ------------------------------------------------------------
        @rule(delete=st.booleans(), count=st.integers(0, 6), resume=st.booleans(),
              elem_flags=st.sampled_from([0, 0, 0, 4]), flags=st.sampled_from([0, 0, 0, 1]))
        def lookup_batch(self, delete, count, resume, elem_flags, flags):
            cmd = u.BPF_MAP_LOOKUP_AND_DELETE_BATCH if delete else u.BPF_MAP_LOOKUP_BATCH
            in_batch = self.last_out.get(cmd) if resume else None
            r, _ = self.both(batch_cmd, cmd, spec, count, in_batch=in_batch, elem_flags=elem_flags, flags=flags)
            out = r.out[4:4 + spec.batch_size]
            if spec.exact and out != b"\xee" * spec.batch_size:
                self.last_out[cmd] = out

        @rule(ks=key_lists, seed=st.integers(0, 255), elem_flags=st.sampled_from([0, 0, 0, 4]))
        def update_batch(self, ks, seed, elem_flags):
            if keyless:
                return
            values = b"".join(self.value(seed + i) for i in range(len(ks)))
            self.both(batch_cmd, u.BPF_MAP_UPDATE_BATCH, spec, len(ks), keys=b"".join(ks) or None,
                      values=values or None, elem_flags=elem_flags)

        @rule(ks=key_lists, elem_flags=st.sampled_from([0, 0, 0, 4]))
        def delete_batch(self, ks, elem_flags):
            if keyless:
                return
            self.both(batch_cmd, u.BPF_MAP_DELETE_BATCH, spec, len(ks), keys=b"".join(ks) or None,
                      elem_flags=elem_flags)

        # -- after every step --------------------------------------------------------
        @invariant()
        def same_contents(self):
            if keyless:
                if spec.map_type != u.BPF_MAP_TYPE_BLOOM_FILTER:
                    self.both(elem_cmd, u.BPF_MAP_LOOKUP_ELEM, None, value_len=vs)
                return
            walks = [walk(p, fd, spec.key_size) for p, fd in zip(self.procs, self.fds)]
            if spec.exact:
                assert walks[0] == walks[1], "emulator walk %r, host walk %r" % tuple(walks)
            limit = spec.max_entries
            if spec.flags & u.BPF_F_NO_COMMON_LRU:  # rounded up to a multiple of the CPUs
                limit = (limit + NCPU - 1) // NCPU * NCPU
            for ks, end in walks:
                assert end == 2 and len(ks) == len(set(ks)) <= limit, (ks, end)

    return MapMachine


def walk(proc, fd, key_size, limit=10000):
    """Every key by GET_NEXT_KEY from the start, and the errno that ended the walk."""
    out, k = [], None
    while len(out) < limit:
        r = elem_cmd(proc, u.BPF_MAP_GET_NEXT_KEY, fd, k, next_len=key_size)
        if r.errno:
            return out, r.errno
        k = r.out
        out.append(k)
    raise AssertionError("GET_NEXT_KEY walk does not end")


@pytest.fixture(scope="module")
def machines():
    """One emulator task and one host task for the module (each example makes its own maps)."""
    need_host()  # skip, or fail under BPFEMU_REQUIRE_HOST=1, as the proc fixture does
    emu = twin_kernel().spawn()  # the real kernel's version
    host = real_kernel().spawn()
    if hasattr(host, "sched_setaffinity"):  # (a VM's tasks all run on its CPU 0)
        host.sched_setaffinity({0})  # LRU eviction depends on the CPU: both run on CPU 0
    yield emu, host
    host.exit()


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_emulator_and_host_agree(machines, spec):
    emu, host = machines
    run_state_machine_as_test(
        machine_for(spec, emu, host),
        settings=settings(max_examples=10, stateful_step_count=30, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck)))
