"""Helpers of kernel/bpf/helpers.c and bpf_iter.c: maps, time, randomness, the CPU, the current task, spin
locks, timers, bpf_loop, bpf_for_each_map_elem and the string helpers.

Maps are reached through their program-side ops (``value_region``, ``prog_update``, ``prog_delete``,
``push``/``pop``/``peek``, ``for_each_elem``): a lookup returns a pointer into the map's own storage, mapped
into the run's memory. Time comes from the kernel's :class:`~bpfemu.timekeeping.Clock` (the test moves it),
random numbers from a per-CPU generator seeded by the kernel's seed, the CPU from the run (the task's CPU,
or the one BPF_F_TEST_RUN_ON_CPU chose), the current task from the task that made the syscall.
"""
import errno
import random
import struct

from ... import uapi
from ..helpers import helper_impl
from ..memory import M32, M64, Fault
from .common import U32, map_at, neg, s64, value_ptr

BPF_MAX_LOOPS = 8 * 1024 * 1024
TASK_COMM_LEN = 16
OF_MAPS = (uapi.BPF_MAP_TYPE_ARRAY_OF_MAPS, uapi.BPF_MAP_TYPE_HASH_OF_MAPS)


def _call(fn, *args):
    """A map op's result as a helper's return: 0, or -errno for the OSError it raised."""
    try:
        fn(*args)
    except OSError as e:
        return neg(e.errno)
    return 0


# ---- maps ------------------------------------------------------------------------------------------------

@helper_impl("map_lookup_elem")
def bpf_map_lookup_elem(run, r1, r2, r3, r4, r5):
    m = map_at(run, r1)
    key = run.mem.read(r2, m.key_size)
    if m.map_type in OF_MAPS:  # the verifier's rewrite: the inner map pointer
        inner = m.inner_map(key)
        return 0 if inner is None else run.object_addr(inner)
    return value_ptr(run, m, m.value_region(key, run.cpu))


@helper_impl("map_update_elem")
def bpf_map_update_elem(run, r1, r2, r3, r4, r5):
    m = map_at(run, r1)
    key = run.mem.read(r2, m.key_size)
    value = run.mem.read(r3, m.value_size)
    return _call(m.prog_update, key, value, r4, run.cpu)


@helper_impl("map_delete_elem")
def bpf_map_delete_elem(run, r1, r2, r3, r4, r5):
    m = map_at(run, r1)
    return _call(m.prog_delete, run.mem.read(r2, m.key_size))


@helper_impl("map_push_elem")
def bpf_map_push_elem(run, r1, r2, r3, r4, r5):
    m = map_at(run, r1)
    return _call(m.push, run.mem.read(r2, m.value_size), r3)


def _take(run, m, op, dst):
    try:
        value = op()
    except OSError as e:
        return neg(e.errno)
    run.mem.write(dst, bytes(value)[:m.value_size])
    return 0


@helper_impl("map_pop_elem")
def bpf_map_pop_elem(run, r1, r2, r3, r4, r5):
    m = map_at(run, r1)
    return _take(run, m, m.pop, r2)


@helper_impl("map_peek_elem")
def bpf_map_peek_elem(run, r1, r2, r3, r4, r5):
    m = map_at(run, r1)
    if m.map_type == uapi.BPF_MAP_TYPE_BLOOM_FILTER:  # bloom_map_peek_elem: is the value in the set?
        try:
            m.peek_value(run.mem.read(r2, m.value_size))
        except OSError as e:
            return neg(e.errno)
        return 0
    return _take(run, m, m.peek, r2)


@helper_impl("map_lookup_percpu_elem")
def bpf_map_lookup_percpu_elem(run, r1, r2, r3, r4, r5):
    m = map_at(run, r1)
    cpu = r3 & M32
    if cpu >= run.kernel.ncpus:
        return 0
    return value_ptr(run, m, m.value_region(run.mem.read(r2, m.key_size), cpu))


@helper_impl("for_each_map_elem")
def bpf_for_each_map_elem(run, r1, r2, r3, r4, r5):
    """bpf_for_each_map_elem: callback(map, &key, &value, ctx) per element until it returns nonzero;
    returns how many elements it was called for."""
    m = map_at(run, r1)
    if r4:
        return neg(errno.EINVAL)
    key_buf = bytearray(m.key_size)
    _, key_addr = run.mem.add_buffer("map_key", key_buf, obj=m, name="for_each key")
    try:
        n = 0
        for key, where in m.for_each_elem(run.cpu):
            key_buf[:] = key
            n += 1
            if run.call_func(r2, r1, key_addr, run.map_value_addr(m, where), r3, 0):
                break
        return n
    finally:
        run.mem.remove(run.mem.region_of(key_addr))


# ---- bpf_loop ------------------------------------------------------------------------------------------

@helper_impl("loop")
def bpf_loop(run, r1, r2, r3, r4, r5):
    nr_loops = r1 & M32
    if r4:
        return neg(errno.EINVAL)
    if nr_loops > BPF_MAX_LOOPS:
        return neg(errno.E2BIG)
    for i in range(nr_loops):
        if run.call_func(r2, i, r3, 0, 0, 0):
            return i + 1
    return nr_loops


# ---- time, randomness, the CPU ------------------------------------------------------------------------

@helper_impl("ktime_get_ns")
def bpf_ktime_get_ns(run, r1, r2, r3, r4, r5):
    return run.kernel.clock.ktime_get_ns()


@helper_impl("ktime_get_boot_ns")
def bpf_ktime_get_boot_ns(run, r1, r2, r3, r4, r5):
    return run.kernel.clock.ktime_get_boot_ns()


@helper_impl("ktime_get_coarse_ns")
def bpf_ktime_get_coarse_ns(run, r1, r2, r3, r4, r5):
    return run.kernel.clock.ktime_get_coarse_ns()


@helper_impl("ktime_get_tai_ns")
def bpf_ktime_get_tai_ns(run, r1, r2, r3, r4, r5):
    return run.kernel.clock.ktime_get_tai_ns()


@helper_impl("jiffies64")
def bpf_jiffies64(run, r1, r2, r3, r4, r5):
    return run.kernel.clock.jiffies64()


@helper_impl("get_prandom_u32")
def bpf_user_rnd_u32(run, r1, r2, r3, r4, r5):
    """A u32 from the running CPU's generator, seeded from the kernel's seed and the CPU (deterministic for
    a given sequence of calls)."""
    states = run.kernel.prandom
    gen = states.get(run.cpu)
    if gen is None:
        gen = states[run.cpu] = random.Random((run.kernel.seed << 16) ^ 0x5eed0000 ^ run.cpu)
    return gen.getrandbits(32)


@helper_impl("get_smp_processor_id", "get_raw_smp_processor_id")
def bpf_get_smp_processor_id(run, r1, r2, r3, r4, r5):
    return run.cpu


@helper_impl("get_numa_node_id")
def bpf_get_numa_node_id(run, r1, r2, r3, r4, r5):
    return 0


# ---- the current task ----------------------------------------------------------------------------------

@helper_impl("get_current_pid_tgid")
def bpf_get_current_pid_tgid(run, r1, r2, r3, r4, r5):
    """tgid << 32 | pid of the calling task (a process of one thread: both its pid); -EINVAL without one."""
    t = run.task
    if t is None:
        return neg(errno.EINVAL)
    return (t.pid << 32) | t.pid


@helper_impl("get_current_uid_gid")
def bpf_get_current_uid_gid(run, r1, r2, r3, r4, r5):
    t = run.task
    if t is None:
        return neg(errno.EINVAL)
    return ((t.gid & M32) << 32) | (t.uid & M32)


@helper_impl("get_current_comm")
def bpf_get_current_comm(run, r1, r2, r3, r4, r5):
    """strscpy_pad of task->comm into the buffer of r2 bytes."""
    size = r2 & M32
    t = run.task
    if t is None:
        run.mem.write(r1, bytes(size))
        return neg(errno.EINVAL)
    comm = bytes(t.comm)[:TASK_COMM_LEN - 1]
    n = min(len(comm), size - 1)
    run.mem.write(r1, comm[:n] + bytes(size - n))
    return 0


# ---- spin locks ------------------------------------------------------------------------------------------
# One CPU runs at a time in the emulator: a lock is the word set while held (the verifier pairs lock and
# unlock, and copies of the value to userspace never show the field).

@helper_impl("spin_lock")
def bpf_spin_lock(run, r1, r2, r3, r4, r5):
    run.mem.store(r1, 4, 1)
    run.locks.append(r1)
    return 0


@helper_impl("spin_unlock")
def bpf_spin_unlock(run, r1, r2, r3, r4, r5):
    run.mem.store(r1, 4, 0)
    if r1 in run.locks:
        run.locks.remove(r1)
    return 0


# ---- strings ---------------------------------------------------------------------------------------------

def _cstring(run, addr, limit):
    """The bytes at addr up to the first NUL (at most ``limit``) and whether a NUL ended them."""
    r, off = run.mem.resolve(addr, 1)
    n = min(limit, r.size - off)
    data = run.mem.read(addr, n)
    nul = data.find(b"\0")
    return (data, False) if nul < 0 else (data[:nul], True)


@helper_impl("strncmp")
def bpf_strncmp(run, r1, r2, r3, r4, r5):
    """strncmp(s1, s2, s1_sz) with s2 a constant string: -1, 0 or 1, as the kernel's strncmp."""
    n = r2 & M32
    s1 = run.mem.read(r1, n)
    s2, _ = _cstring(run, r3, n + 1)
    for i in range(n):
        c1 = s1[i]
        c2 = s2[i] if i < len(s2) else 0
        if c1 != c2:
            return neg(1) if c1 < c2 else 1
        if not c1:
            break
    return 0


BPF_STRTOX_BASE_MASK = 0x1F
KSTRTOX_OVERFLOW = 1 << 31


def _parse_integer(s, base):
    """lib/kstrtox.c's _parse_integer: (characters consumed | KSTRTOX_OVERFLOW, value)."""
    res = 0
    n = 0
    overflow = False
    for ch in s:
        c = chr(ch)
        if "0" <= c <= "9":
            val = ord(c) - 48
        elif "a" <= c.lower() <= "f":
            val = ord(c.lower()) - 87
        else:
            break
        if val >= base:
            break
        res = res * base + val
        if res >> 64:
            overflow = True
            res &= M64
        n += 1
    return (n | (KSTRTOX_OVERFLOW if overflow else 0)), res


def _strtoull(buf, flags):
    """__bpf_strtoull: (consumed or -errno, value, is_negative)."""
    base = flags & BPF_STRTOX_BASE_MASK
    if not buf:
        return -errno.EINVAL, 0, False
    if base not in (0, 8, 10, 16) or flags & ~BPF_STRTOX_BASE_MASK:
        return -errno.EINVAL, 0, False
    i = 0
    while i < len(buf) and chr(buf[i]) in " \t\n\v\f\r":
        i += 1
    negative = i < len(buf) and buf[i] == ord("-")
    if negative:
        i += 1
    consumed = i
    rest = buf[i:]
    if not rest:
        return -errno.EINVAL, 0, negative
    s = bytes(rest[:63]).split(b"\0", 1)[0] + b"\0\0\0"
    p = 0
    if base == 0:
        if s[0:1] == b"0":
            base = 16 if s[1:2].lower() == b"x" and chr(s[2]) in "0123456789abcdefABCDEF" else 8
        else:
            base = 10
    if base == 16 and s[0:1] == b"0" and s[1:2].lower() == b"x":
        p = 2
    rv, res = _parse_integer(s[p:].split(b"\0", 1)[0], base)
    if rv & KSTRTOX_OVERFLOW:
        return -errno.ERANGE, 0, negative
    if rv == 0:
        return -errno.EINVAL, 0, negative
    return consumed + p + rv, res, negative


@helper_impl("strtol")
def bpf_strtol(run, r1, r2, r3, r4, r5):
    run.mem.write(r4, bytes(8))
    n, res, negative = _strtoull(run.mem.read(r1, r2 & M32), r3)
    if n < 0:
        return n & M64
    if negative:
        if s64(-res) > 0:
            return neg(errno.ERANGE)
        res = -res & M64
    elif s64(res) < 0:
        return neg(errno.ERANGE)
    run.mem.write(r4, struct.pack("<Q", res))
    return n


@helper_impl("strtoul")
def bpf_strtoul(run, r1, r2, r3, r4, r5):
    run.mem.write(r4, bytes(8))
    n, res, negative = _strtoull(run.mem.read(r1, r2 & M32), r3)
    if n < 0:
        return n & M64
    if negative:
        return neg(errno.EINVAL)
    run.mem.write(r4, struct.pack("<Q", res))
    return n


# ---- timers ----------------------------------------------------------------------------------------------
# A struct bpf_timer lives in a map value; the emulator keeps the timer beside it (``kernel.bpf_timers``,
# keyed by the value's storage and offset), so the value's bytes stay what userspace reads (zeros). When
# the timer fires, its callback runs as a program of its own with (map, &key, &value), on a fresh run.

CLOCK_REALTIME, CLOCK_MONOTONIC, CLOCK_BOOTTIME = 0, 1, 7
MAX_CLOCKS = 16
BPF_F_TIMER_ABS, BPF_F_TIMER_CPU_PIN = 1, 2


class BpfTimer:
    """struct bpf_hrtimer: the map and element it lives in, its callback (program, subprogram) and the
    hrtimer."""

    def __init__(self, kernel, m, buf, value_off, flags):
        from ...timekeeping import Timer
        self.kernel = kernel
        self.map = m
        self.buf = buf
        self.value_off = value_off
        self.flags = flags
        self.prog = None
        self.callback = None   # (image, pc)
        self.cpu = 0
        self.hrtimer = Timer(self.fire)
        self.running = False

    def key(self):
        """The key of the element the timer lives in, or None when that element is gone."""
        for key, (buf, off) in self.map.for_each_elem(0):
            if buf is self.buf and off == self.value_off:
                return key
        return None

    def fire(self):
        """bpf_timer_cb: callback(map, &key, &value) on the CPU the timer was started on."""
        if self.callback is None or self.prog is None or self.map.freed:
            return
        key = self.key()
        if key is None:
            return
        from ..core import RunCtx
        from ..memory import Memory
        image, pc = self.callback
        run = RunCtx(Memory(), helpers=self.prog.helpers, cpu=self.cpu, kernel=self.kernel, prog=self.prog)
        key_buf = bytearray(key)
        _, key_addr = run.mem.add_buffer("map_key", key_buf, obj=self.map, name="timer key")
        value_addr = run.map_value_addr(self.map, (self.buf, self.value_off))
        self.running = True
        try:
            run.call_func(run.func_addr(image, pc), run.object_addr(self.map), key_addr, value_addr)
        finally:
            self.running = False


def _timer_of(run, addr, create=None):
    """The timer kept for the bpf_timer at ``addr`` (a map value field), or None."""
    r, off = run.mem.resolve(addr, 16)
    timers = run.kernel.bpf_timers
    k = (id(r.buf), off)
    t = timers.get(k)
    if t is not None and t.buf is not r.buf:
        t = None
    if t is None and create is not None:
        t = timers[k] = create(r, off)
    return t


@helper_impl("timer_init")
def bpf_timer_init(run, r1, r2, r3, r4, r5):
    clockid = r3 & (MAX_CLOCKS - 1)
    if r3 >= MAX_CLOCKS or clockid not in (CLOCK_MONOTONIC, CLOCK_REALTIME, CLOCK_BOOTTIME):
        return neg(errno.EINVAL)
    if _timer_of(run, r1) is not None:
        return neg(errno.EBUSY)
    m = map_at(run, r2)
    timer_off = m.record.timer_off if m.record is not None and m.record.timer_off >= 0 else 0

    def create(region, off):
        return BpfTimer(run.kernel, m, region.buf, off - timer_off, r3)
    _timer_of(run, r1, create)
    return 0


@helper_impl("timer_set_callback")
def bpf_timer_set_callback(run, r1, r2, r3, r4, r5):
    t = _timer_of(run, r1)
    if t is None:
        return neg(errno.EINVAL)
    t.prog = run.prog
    t.callback = run.mem.object_at(r2, "func")
    return 0


@helper_impl("timer_start")
def bpf_timer_start(run, r1, r2, r3, r4, r5):
    if r3 & ~(BPF_F_TIMER_ABS | BPF_F_TIMER_CPU_PIN):
        return neg(errno.EINVAL)
    t = _timer_of(run, r1)
    if t is None or t.prog is None:
        return neg(errno.EINVAL)
    clock = run.kernel.clock
    t.cpu = run.cpu
    expires = r2 if r3 & BPF_F_TIMER_ABS else clock.ktime_get_ns() + r2
    clock.start(t.hrtimer, expires)
    return 0


@helper_impl("timer_cancel")
def bpf_timer_cancel(run, r1, r2, r3, r4, r5):
    t = _timer_of(run, r1)
    if t is None:
        return neg(errno.EINVAL)
    if t.running:
        return neg(errno.EDEADLK)
    t.prog = None
    t.callback = None
    return 1 if run.kernel.clock.cancel(t.hrtimer) else 0


__all__ = ["BpfTimer", "Fault", "U32"]


# ---- cgroup storage -----------------------------------------------------------------------------------

@helper_impl("get_local_storage")
def bpf_get_local_storage(run, r1, r2, r3, r4, r5):
    """The cgroup storage of the map's type for this run: a test run allocates a zeroed one per map
    (bpf_cgroup_storages_alloc), shared by its repeats; a per-CPU storage gives this CPU's copy."""
    m = map_at(run, r1)
    buf = run.cgroup_storage.get(m)
    stride = (m.value_size + 7) & ~7
    if buf is None:
        n = stride * run.kernel.ncpus if m.percpu else m.value_size
        buf = run.cgroup_storage[m] = bytearray(n)
    return run.map_value_addr(m, (buf, stride * run.cpu if m.percpu else 0))
