"""Run a verifier selftest case the way ``test_verifier.c`` does, on any task with the ``bpf()`` surface.

``run_case(case, sys)`` takes a :class:`conformance.corpus.verifier.Case` and a task (``bpfemu.Host()``,
or an emulated ``Kernel().spawn()``; anything with ``bpf(cmd, attr)`` and ``close(fd)``) and:

1. creates the maps the case's fixups name, with test_verifier's types, sizes and flags (hash maps without
   preallocation, the 48-byte array with element 0 filled in, prog arrays holding three small programs of
   the case's type, an array-of-maps, cgroup storages, and the spin-lock/timer/kptr arrays with their BTF),
   and patches each map's fd into the ``imm`` of the slots the fixup lists (a map that cannot be created
   leaves fd -1 there, as test_verifier does, and is noted in ``Outcome.setup``);
2. patches kfunc BTF ids, finds the attach BTF id of ``.kfunc`` for tracing/LSM programs, loads the
   case's own BTF and func_info when it has them;
3. loads with BPF_PROG_LOAD: license "GPL", the case's prog_flags and expected_attach_type, a 16 MiB log at
   test_verifier's level (4, statistics: the verifier then logs its error messages and the
   ``processed N insns`` summary; 2 for VERBOSE_ACCEPT cases);
4. when the program is accepted and the case runs (``runs >= 0``), runs it with BPF_PROG_TEST_RUN once per
   run: the run's 64 bytes of data in, 256 bytes of room out, repeat 1;
5. closes everything it made.

``unprivileged=True`` does all of that without privileges: on the host in a thread whose capabilities are
dropped (``capset`` is per thread), on the emulator in ``kernel.spawn(uid=1000, caps=())``. Unprivileged
loading needs ``kernel.unprivileged_bpf_disabled`` = 0 on that machine.

The result is an :class:`Outcome`; :func:`cause` picks the line of a verifier log that names the reason of
a rejection.
"""
import ctypes
import errno as _errno
import os
import queue
import re
import threading
from typing import NamedTuple, Optional, Tuple

from bpfemu import uapi as U
from bpfemu.prog import insn as I

from . import btfenc, kbtf

__all__ = ["Outcome", "run_case", "cause", "error_block", "LOG_SIZE", "unprivileged_task", "CapDroppedHost",
           "host_unprivileged_bpf_disabled", "lowered_unprivileged_sysctl"]

LOG_SIZE = 0xffffffff >> 8  # test_verifier's bpf_vlog: UINT_MAX >> 8 bytes
BPF_LOG_LEVEL1, BPF_LOG_LEVEL2, BPF_LOG_STATS = 1, 2, 4
TEST_DATA_LEN = 64
DATA_OUT_LEN = TEST_DATA_LEN << 2
BPF_F_NO_PREALLOC = 1 << 0
BPF_F_RDONLY_PROG = 1 << 7
BPF_F_WRONLY_PROG = 1 << 8
FUNC_tail_call = 12
MAX_LOAD_ATTEMPTS = 5  # libbpf retries BPF_PROG_LOAD on EAGAIN


class Outcome(NamedTuple):
    """What one case gave on one backend.

    verdict: 'accept' or 'reject' (BPF_PROG_LOAD succeeded or not); errno: 0 or the load's errno; log: the
    verifier log text; retval: None when not run, else one entry per test run: the program's return value,
    or None when that run failed (its errno in run_errno); setup: notes on fixtures that could not be made.
    """
    verdict: str
    errno: int
    log: str
    retval: Optional[Tuple] = None
    run_errno: Optional[Tuple] = None
    setup: Tuple = ()

    @property
    def cause(self):
        return cause(self.log) if self.verdict == "reject" else None


# -- the cause of a rejection -------------------------------------------------------------------------------
_PROCESSED = re.compile(r"^processed \d+ insns \(limit \d+\)")
_TRAILER = re.compile(r"^(verification time \d+ usec|stack depth [\d+]+)$")
# what only the instruction trace of log levels 1 and 2 prints: instruction dumps ("12: (85) call ..."),
# register states ("12: R0=... R10=fp0", "frame1: R1=..."), path changes ("from 4 to 6: ..."), source lines
_TRACE = re.compile(r"^(\d+: \(|(\d+: )?(frame\d+: )?R\d+(_[rwD]+)?=|from \d+ to \d+:|\d+: \(|; |"
                    r"(\d+: )?frame\d+:|mark_precise:|last_idx |regs=|parent didn't have|func#\d+ @\d+|"
                    r"Live regs before insn:|\s)")


def error_block(log):
    """The lines the verifier printed when it gave up: the last run of lines before its closing summary
    (``verification time``, ``stack depth``, ``processed N insns ...``) that are not part of the
    instruction trace of log levels 1 and 2. [] for an empty log."""
    if not log:
        return []
    lines = [ln.rstrip() for ln in log.splitlines() if ln.strip()]
    for i, ln in enumerate(lines):
        if _PROCESSED.match(ln):
            lines = lines[:i]
            break
    while lines and _TRAILER.match(lines[-1]):
        lines.pop()
    block = []
    for ln in reversed(lines):
        if _TRACE.match(ln):
            break
        block.append(ln)
    return block[::-1]


# lines the verifier prints after its error to explain it (they name a consequence, not the cause)
_EXPLANATION = re.compile(r"^(R\d+ (min|max) value is outside of the allowed memory range$"
                          r"|R\d+ offset is outside of the packet$|.* would lead to reference leak$"
                          r"|(cur|old) state: )")


def cause(log):
    """The line of a verifier log that names why the program was refused, or None when there is none.

    When the verifier gives up it prints its error, sometimes followed by lines that explain it ("R0 min
    value is outside of the allowed memory range" after "invalid access to map value, value_size=48 off=48
    size=8"; "BPF_EXIT instruction in main prog would lead to reference leak" after "Unreleased reference
    id=2 alloc_insn=12"; the two states after "infinite loop detected at insn 1"), and then its summary. The
    cause is the last line of that error block (:func:`error_block`) that is not such an explanation: the
    primary message, which is what test_verifier's errstr matches in most tests, and not a note printed
    earlier in the same block (as "Global function f() doesn't return scalar ..." before "BPF program is
    too large"). Whatever the log level (4, statistics only, as test_verifier loads; or 1 and 2 with the
    instruction trace), the same line comes out. A log that stops before any summary (errors found before
    the main pass: bad BTF, unknown opcode, jumps out of range, ...) is read the same way."""
    block = error_block(log)
    for ln in reversed(block):
        if not _EXPLANATION.match(ln):
            return ln
    return block[0] if block else None


# -- privileges ---------------------------------------------------------------------------------------------------
class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _drop_this_threads_caps():
    """Empty the calling thread's capability sets (capset(2) changes only the calling thread)."""
    from bpfemu.host.libc import libc
    hdr = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    lib = libc()
    if lib.capset(ctypes.byref(hdr), ctypes.byref(data)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


class CapDroppedHost:
    """The host's bpf() called from a thread with no capabilities: an unprivileged task that shares this
    process's memory and fds (so attr pointers work as they are). ``exit()`` ends the thread."""

    def __init__(self):
        self._q = queue.Queue()
        ready = queue.Queue()
        self._t = threading.Thread(target=self._loop, args=(ready,), daemon=True, name="bpf-unpriv")
        self._t.start()
        err = ready.get()
        if err is not None:
            raise err
        self._opened = set()

    def _loop(self, ready):
        try:
            _drop_this_threads_caps()
        except OSError as e:
            ready.put(e)
            return
        ready.put(None)
        while True:
            fn, box = self._q.get()
            if fn is None:
                return
            try:
                box.put((True, fn()))
            except BaseException as e:  # noqa: BLE001 - handed back to the caller
                box.put((False, e))

    def _call(self, fn):
        box = queue.Queue()
        self._q.put((fn, box))
        ok, v = box.get()
        if not ok:
            raise v
        return v

    def bpf(self, cmd, attr, size=None):
        from bpfemu.host import raw_bpf
        from bpfemu.surface import address_of
        addr, n = address_of(attr)
        fd = self._call(lambda: raw_bpf(cmd, addr, size if size is not None else n))
        if cmd in (U.BPF_MAP_CREATE, U.BPF_PROG_LOAD, U.BPF_BTF_LOAD):
            self._opened.add(fd)
        return fd

    def close(self, fd):
        os.close(fd)
        self._opened.discard(fd)

    def exit(self):
        for fd in list(self._opened):
            try:
                os.close(fd)
            except OSError:
                pass
        self._opened.clear()
        self._q.put((None, None))
        self._t.join()


def _is_host(sys):
    import bpfemu
    return isinstance(sys, bpfemu.Host)


def unprivileged_task(sys):
    """An unprivileged task on the machine of ``sys``: a :class:`CapDroppedHost` for ``bpfemu.Host()``,
    a guest process for a VM's Host (``bpfemu.host.vm.VMHost``), ``sys.kernel.spawn(uid=1000, caps=())`` for
    an emulated task. Call ``.exit()`` when done."""
    if _is_host(sys):
        return CapDroppedHost()
    if getattr(sys, "vm", None) is not None:
        return sys.spawn(uid=1000, caps=())
    kernel = getattr(sys, "kernel", None)
    if kernel is not None and hasattr(kernel, "spawn"):
        return kernel.spawn(uid=1000, caps=())
    raise TypeError("cannot make an unprivileged task from %r (a bpfemu.Host() or an emulated task is needed; "
                    "a host child process cannot marshal BPF_PROG_LOAD's pointers)" % (sys,))


UNPRIV_SYSCTL = "/proc/sys/kernel/unprivileged_bpf_disabled"


def host_unprivileged_bpf_disabled():
    """The host's kernel.unprivileged_bpf_disabled (None when unreadable)."""
    try:
        with open(UNPRIV_SYSCTL) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class lowered_unprivileged_sysctl:
    """Context manager: kernel.unprivileged_bpf_disabled = 0 on the host for the duration, then the old
    value back. Changes the whole machine: meant for recording, kept as short as possible. 1 cannot be
    lowered (the kernel refuses): then PermissionError."""

    def __enter__(self):
        self.old = host_unprivileged_bpf_disabled()
        if self.old == 1:
            raise PermissionError("kernel.unprivileged_bpf_disabled is 1: only a reboot lowers it")
        if self.old:
            with open(UNPRIV_SYSCTL, "w") as f:
                f.write("0")
        return self

    def __exit__(self, *exc):
        if self.old:
            with open(UNPRIV_SYSCTL, "w") as f:
                f.write(str(self.old))
        return False


# -- fixtures ------------------------------------------------------------------------------------------------------
def _err(e):
    return "%s (%d)" % (_errno.errorcode.get(e, "E?"), e)


class _Session:
    """The objects one case made on one task, closed together."""

    def __init__(self, sys):
        self.sys = sys
        self.fds = []
        self.notes = []
        self.keep = []  # ctypes buffers that must outlive the calls

    def bpf(self, cmd, **fields):
        attr = U.make_attr(**fields)
        fd = self.sys.bpf(cmd, attr)
        return fd

    def new_fd(self, cmd, **fields):
        fd = self.bpf(cmd, **fields)
        self.fds.append(fd)
        return fd

    def buf(self, data):
        b = ctypes.create_string_buffer(bytes(data), max(len(data), 1))
        self.keep.append(b)
        return ctypes.addressof(b)

    def close_all(self):
        for fd in reversed(self.fds):
            try:
                self.sys.close(fd)
            except OSError:
                pass
        self.fds.clear()

    # maps
    def map(self, map_type, key, value, max_entries, flags=0, name=b"", btf=None):
        fields = {"map_type": map_type, "key_size": key, "value_size": value, "max_entries": max_entries,
                  "map_flags": flags}
        if name:
            fields["map_name"] = name
        if btf:
            btf_fd, key_id, value_id = btf
            fields.update(btf_fd=btf_fd, btf_key_type_id=key_id, btf_value_type_id=value_id)
        return self.new_fd(U.BPF_MAP_CREATE, **fields)

    def load_btf(self, raw):
        return self.new_fd(U.BPF_BTF_LOAD, btf=self.buf(raw), btf_size=len(raw))

    def update(self, fd, key, value):
        self.bpf(U.BPF_MAP_UPDATE_ELEM, map_fd=fd, key=self.buf(key), value=self.buf(value), flags=0)

    def prog(self, prog_type, slots, **extra):
        raw = I.encode(slots)
        return self.new_fd(U.BPF_PROG_LOAD, prog_type=prog_type, insns=self.buf(raw), insn_cnt=len(raw) // 8,
                           license=self.buf(b"GPL\0"), **extra)


def _test_val():
    # struct test_val { .index = (6 + 1) * sizeof(int), .foo[6] = 0xabcdef12 }: 48 bytes
    v = bytearray(48)
    v[0:4] = (7 * 4).to_bytes(4, "little")
    v[4 + 6 * 4:4 + 7 * 4] = (0xabcdef12).to_bytes(4, "little")
    return bytes(v)


def _array_48b(s, flags=0):
    fd = s.map(U.BPF_MAP_TYPE_ARRAY, 4, 48, 1, flags)
    s.update(fd, (0).to_bytes(4, "little"), _test_val())
    return fd


def _array_small(s):
    fd = s.map(U.BPF_MAP_TYPE_ARRAY, 4, 1, 1)
    s.update(fd, (0).to_bytes(4, "little"), _test_val())
    return fd


def _prog_array(s, prog_type, max_entries, keys):
    mfd = s.map(U.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, max_entries)
    k2 = keys[1]  # the second program tail-calls into its own slot
    progs = [
        [I.BPF_MOV64_IMM(I.BPF_REG_0, 42), I.BPF_EXIT_INSN()],
        [I.BPF_MOV64_IMM(I.BPF_REG_3, k2), I.BPF_LD_MAP_FD(I.BPF_REG_2, mfd), I.BPF_EMIT_CALL(FUNC_tail_call),
         I.BPF_MOV64_IMM(I.BPF_REG_0, 41), I.BPF_EXIT_INSN()],
        [I.BPF_MOV64_IMM(I.BPF_REG_0, 24), I.BPF_EXIT_INSN()],
    ]
    pfds = []
    try:
        for p in progs:
            pfds.append(s.prog(prog_type, p))
        for k, pfd in zip(keys, pfds):
            s.update(mfd, k.to_bytes(4, "little"), pfd.to_bytes(4, "little"))
    finally:
        for pfd in pfds:  # the array holds them now
            s.fds.remove(pfd)
            s.sys.close(pfd)
    return mfd


def _map_in_map(s):
    inner = s.map(U.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    try:
        return s.new_fd(U.BPF_MAP_CREATE, map_type=U.BPF_MAP_TYPE_ARRAY_OF_MAPS, key_size=4, value_size=4,
                        max_entries=1, inner_map_fd=inner)
    finally:  # the outer map keeps its template; test_verifier closes the inner map
        s.fds.remove(inner)
        s.sys.close(inner)


def _btf_map(s, map_type, key, value, max_entries, value_type, flags=0):
    btf_fd = s.load_btf(btfenc.MAP_BTF)
    return s.map(map_type, key, value, max_entries, flags, name=b"test_map",
                 btf=(btf_fd, btfenc.INT_TYPE, value_type))


def _make(kind, s, prog_type):
    M = U
    if kind == "map_hash_8b":
        return s.map(M.BPF_MAP_TYPE_HASH, 8, 8, 1, BPF_F_NO_PREALLOC)
    if kind == "map_hash_48b":
        return s.map(M.BPF_MAP_TYPE_HASH, 8, 48, 1, BPF_F_NO_PREALLOC)
    if kind == "map_hash_16b":
        return s.map(M.BPF_MAP_TYPE_HASH, 8, 16, 1, BPF_F_NO_PREALLOC)
    if kind == "map_array_48b":
        return _array_48b(s)
    if kind == "prog1":
        return _prog_array(s, prog_type, 4, (0, 1, 2))
    if kind == "prog2":
        return _prog_array(s, prog_type, 8, (7, 1, 2))
    if kind == "map_in_map":
        return _map_in_map(s)
    if kind == "cgroup_storage":
        return s.map(M.BPF_MAP_TYPE_CGROUP_STORAGE, 16, TEST_DATA_LEN, 0)
    if kind == "percpu_cgroup_storage":
        return s.map(M.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE, 16, TEST_DATA_LEN, 0)
    if kind == "map_sockmap":
        return s.map(M.BPF_MAP_TYPE_SOCKMAP, 4, 4, 1)
    if kind == "map_sockhash":
        return s.map(M.BPF_MAP_TYPE_SOCKHASH, 4, 4, 1)
    if kind == "map_xskmap":
        return s.map(M.BPF_MAP_TYPE_XSKMAP, 4, 4, 1)
    if kind == "map_stacktrace":
        return s.map(M.BPF_MAP_TYPE_STACK_TRACE, 4, 8, 1)
    if kind == "map_spin_lock":
        return _btf_map(s, M.BPF_MAP_TYPE_ARRAY, 4, 8, 1, btfenc.SPIN_LOCK_VALUE)
    if kind == "map_array_ro":
        return _array_48b(s, BPF_F_RDONLY_PROG)
    if kind == "map_array_wo":
        return _array_48b(s, BPF_F_WRONLY_PROG)
    if kind == "map_array_small":
        return _array_small(s)
    if kind == "sk_storage_map":
        return _btf_map(s, M.BPF_MAP_TYPE_SK_STORAGE, 4, 8, 0, btfenc.SPIN_LOCK_VALUE, BPF_F_NO_PREALLOC)
    if kind == "map_event_output":
        return s.map(M.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 1)
    if kind == "map_reuseport_array":
        return s.map(M.BPF_MAP_TYPE_REUSEPORT_SOCKARRAY, 4, 8, 1)
    if kind == "map_ringbuf":
        return s.map(M.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096)
    if kind == "map_timer":
        return _btf_map(s, M.BPF_MAP_TYPE_ARRAY, 4, 16, 1, btfenc.TIMER_VALUE)
    if kind == "map_kptr":
        return _btf_map(s, M.BPF_MAP_TYPE_ARRAY, 4, 24, 1, btfenc.KPTR_VALUE)
    raise ValueError("unknown fixup kind %s" % kind)


# libbpf's libbpf_find_vmlinux_btf_id: the name prefix and BTF kind an attach type looks for
def _attach_prefix(attach_type):
    if attach_type == U.BPF_TRACE_RAW_TP:
        return "btf_trace_", "typedef"
    if attach_type in (U.BPF_LSM_MAC, getattr(U, "BPF_LSM_CGROUP", -1)):
        return "bpf_lsm_", "func"
    if attach_type == U.BPF_TRACE_ITER:
        return "bpf_iter_", "func"
    return "", "func"


def _btf_id(s, name, kind):
    """The id of the kernel type ``name`` of ``kind`` ('func', 'typedef', ...) in the BTF of the machine ``s``
    runs on, or 0, as libbpf finds it there: an emulated kernel's own BTF (btf id 1: the host's on Linux,
    bpfemu's built-in one off Linux), the host's /sys/kernel/btf/vmlinux for the host."""
    kernel = getattr(s.sys, "kernel", None)
    if kernel is not None and hasattr(kernel, "btf_vmlinux"):
        kinds = {v: k for k, v in kbtf.KINDS.items()}
        return max(kernel.btf_vmlinux.btf.find_by_name_kind(name, kinds[kind]), 0)
    try:
        return kbtf.find_id(name, kind)
    except kbtf.BTFError:
        return 0


def _patch(slots, idx, imm):
    slots[idx] = slots[idx]._replace(imm=I._s32(imm))


# -- the run -------------------------------------------------------------------------------------------------------
_log_buffers = threading.local()


def _log_buffer(size):
    """The thread's log buffer of at least ``size`` bytes, zeroed (the kernel writes a NUL-terminated log; a
    clean buffer is also what a task in another process or a VM copies fastest)."""
    b = getattr(_log_buffers, "buf", None)
    if b is None or len(b) < size:
        b = _log_buffers.buf = ctypes.create_string_buffer(size)
    else:
        ctypes.memset(b, 0, len(b))
    return b


def run_case(case, sys, unprivileged=False, log_level=None, log_size=LOG_SIZE):
    """Load (and run) ``case`` on ``sys`` as test_verifier does; see the module docstring.

    ``unprivileged``: do it all on :func:`unprivileged_task` of ``sys`` (for progs/ cases also with
    test_loader's unprivileged rules: maps an unprivileged user cannot create are left out). ``log_level``:
    None for the case's own (test_verifier: 2 for VERBOSE_ACCEPT cases, else 4; test_loader: libbpf's
    first load without a log and, when it fails, a second at level 1). Returns an :class:`Outcome`; errors
    of the setup steps are recorded in it, never raised."""
    if unprivileged:
        task = unprivileged_task(sys)
        try:
            s = _Session(task)
            try:
                return _run(case, s, log_level, log_size, True)
            finally:
                s.close_all()
        finally:
            task.exit()
    s = _Session(sys)
    try:
        return _run(case, s, log_level, log_size, False)
    finally:
        s.close_all()


# the map types test_loader lets an unprivileged run create (is_unpriv_capable_map)
_UNPRIV_MAPS = ("HASH", "PERCPU_HASH", "HASH_OF_MAPS", "PERCPU_CGROUP_STORAGE", "ARRAY", "RINGBUF", "PROG_ARRAY",
                "CGROUP_ARRAY", "PERCPU_ARRAY", "USER_RINGBUF", "ARRAY_OF_MAPS", "CGROUP_STORAGE",
                "PERF_EVENT_ARRAY")
BPF_F_ZERO_SEED = 1 << 6
POISON_LDIMM64_MAP_BASE = 2001000000  # libbpf turns a load of a map it did not create into this call


def _unpriv_capable(spec):
    names = {getattr(U, "BPF_MAP_TYPE_" + n, None) for n in _UNPRIV_MAPS}
    if spec.map_type in (U.BPF_MAP_TYPE_HASH, U.BPF_MAP_TYPE_PERCPU_HASH, U.BPF_MAP_TYPE_HASH_OF_MAPS):
        return not spec.map_flags & BPF_F_ZERO_SEED
    return spec.map_type in names


def _named_map(s, spec, btf_fd=None):
    """BPF_MAP_CREATE of a progs/ map as libbpf does it: its name, flags, and key/value types in the object's
    BTF (without them again when the kernel refuses them); an inner map made for the template and dropped;
    the elements of ``spec.init`` put in."""
    fields = {"map_type": spec.map_type, "key_size": spec.key_size, "value_size": spec.value_size,
              "max_entries": spec.max_entries, "map_flags": spec.map_flags,
              "map_name": spec.name[:15].encode()}
    inner = None
    if spec.inner is not None:
        inner = _named_map(s, spec.inner, None)
        fields["inner_map_fd"] = inner
    try:
        if btf_fd is not None and (spec.btf_key_id or spec.btf_value_id):
            try:
                fd = s.new_fd(U.BPF_MAP_CREATE, btf_fd=btf_fd, btf_key_type_id=spec.btf_key_id,
                              btf_value_type_id=spec.btf_value_id, **fields)
            except OSError as e:
                s.notes.append("map %s: %s with BTF, made again without" % (spec.name, _err(e.errno)))
                fd = s.new_fd(U.BPF_MAP_CREATE, **fields)
        else:
            fd = s.new_fd(U.BPF_MAP_CREATE, **fields)
    finally:
        if inner is not None:
            s.fds.remove(inner)
            s.sys.close(inner)
    for key, value in spec.init:
        s.update(fd, key, value)
    return fd


def _run(case, s, log_level, log_size, unprivileged):
    slots = list(case.insns)
    for kind, where in case.fixups.items():
        try:
            fd = _make(kind, s, case.prog_type)
        except OSError as e:
            s.notes.append("%s: %s" % (kind, _err(e.errno)))
            fd = -1
        for idx in where:
            if idx < len(slots):
                _patch(slots, idx, fd)
    extra = {}
    if case.maps:
        fds = {}
        btf_fd = None
        if case.btf_types:  # the object's BTF: the maps' types and the program's functions
            try:
                btf_fd = extra["prog_btf_fd"] = s.load_btf(btfenc.raw_btf(case.btf_types, case.btf_strings))
            except OSError as e:
                s.notes.append("BTF: %s" % _err(e.errno))
        for idx, (name, spec) in enumerate(case.maps.items()):
            if unprivileged and not _unpriv_capable(spec):
                fds[name] = ("poison", idx)
                continue
            try:
                fds[name] = _named_map(s, spec, btf_fd)
            except OSError as e:
                # libbpf gives up on the object when a map cannot be made
                return Outcome("reject", e.errno, "", setup=("map %s: %s" % (name, _err(e.errno)),))
        for idx, name in case.map_slots:
            fd = fds[name]
            if isinstance(fd, tuple):
                poison = I.BPF_EMIT_CALL(POISON_LDIMM64_MAP_BASE + fd[1])
                slots[idx], slots[idx + 1] = poison, poison
            else:
                _patch(slots, idx, fd)
    for name, idx in case.kfunc_fixups:
        if idx < len(slots):
            bid = _btf_id(s, name, "func")
            if not bid and case.prog_name:
                # libbpf (progs/ cases) refuses an object whose kfunc is not in the kernel BTF; test_verifier
                # (6.1 cases) patches 0
                return Outcome("reject", _errno.ESRCH, "", setup=("kfunc %s: not in the kernel BTF" % name,))
            _patch(slots, idx, bid)
    if case.attach_kfunc and case.prog_type in (U.BPF_PROG_TYPE_TRACING, U.BPF_PROG_TYPE_LSM):
        prefix, kind = _attach_prefix(case.expected_attach_type)
        bid = _btf_id(s, prefix + case.attach_kfunc, kind)
        if not bid:
            s.notes.append("attach_btf_id: no %s %s%s in the kernel BTF" % (kind, prefix, case.attach_kfunc))
        extra["attach_btf_id"] = bid
    if case.attach_btf:
        bid = _btf_id(s, *case.attach_btf)
        if not bid:  # libbpf: "failed to find kernel BTF type ID", before any load
            return Outcome("reject", _errno.ESRCH, "", setup=("attach_btf_id: no %s %s in the kernel BTF"
                                                                % (case.attach_btf[1], case.attach_btf[0]),))
        extra["attach_btf_id"] = bid
    if case.prog_name:
        extra["prog_name"] = case.prog_name.encode()[:15]
    if case.btf_types and "prog_btf_fd" not in extra:
        try:
            extra["prog_btf_fd"] = s.load_btf(btfenc.raw_btf(case.btf_types, case.btf_strings or b"\0"))
        except OSError as e:
            s.notes.append("prog BTF: %s" % _err(e.errno))
    if case.func_info and (not case.prog_name or "prog_btf_fd" in extra):
        # (libbpf drops func_info when the object's BTF could not be loaded, e.g. without CAP_BPF)
        recs = b"".join(off.to_bytes(4, "little") + tid.to_bytes(4, "little") for off, tid in case.func_info)
        extra.update(func_info=s.buf(recs), func_info_cnt=len(case.func_info), func_info_rec_size=8)
    libbpf_retry = False
    if log_level is None:
        if case.log_level is not None:
            log_level = case.log_level
            libbpf_retry = log_level == 0
        else:
            log_level = BPF_LOG_LEVEL2 if case.result == "VERBOSE_ACCEPT" else BPF_LOG_STATS
    logbuf = _log_buffer(log_size)
    raw = I.encode(slots)
    insns = s.buf(raw)
    license_ = s.buf(b"GPL\0")
    fields = dict(prog_type=case.prog_type, insns=insns, insn_cnt=len(raw) // 8, license=license_,
                  prog_flags=case.prog_flags, expected_attach_type=case.expected_attach_type, **extra)
    while True:
        if log_level:
            fields.update(log_level=log_level, log_size=log_size, log_buf=ctypes.addressof(logbuf))
        else:
            fields.update(log_level=0, log_size=0, log_buf=0)
        for _attempt in range(MAX_LOAD_ATTEMPTS):
            logbuf[0] = b"\0"
            try:
                fd = s.new_fd(U.BPF_PROG_LOAD, **fields)
                err = 0
            except OSError as e:
                fd, err = -1, e.errno
            if err != _errno.EAGAIN:
                break
        if fd < 0 and libbpf_retry and log_level == 0:
            log_level = BPF_LOG_LEVEL1  # libbpf loads again with a log to say why
            continue
        break
    log = logbuf.value.decode("utf-8", "replace") if log_level else ""
    if fd < 0:
        return Outcome("reject", err, log, setup=tuple(s.notes))
    retvals, run_errnos = None, None
    if case.n_runs:
        retvals, run_errnos = [], []
        out = ctypes.create_string_buffer(DATA_OUT_LEN)
        for run in case.retvals[:case.n_runs] + [None] * (case.n_runs - len(case.retvals)):
            data = run.data if run is not None else bytes(TEST_DATA_LEN)
            if case.syscall_run:  # test_loader passes empty options to a syscall program
                attr = U.make_attr(**{"test.prog_fd": fd})
            else:
                attr = U.make_attr(**{"test.prog_fd": fd, "test.data_in": s.buf(data),
                                      "test.data_size_in": len(data), "test.data_out": ctypes.addressof(out),
                                      "test.data_size_out": DATA_OUT_LEN, "test.repeat": 1})
            try:
                s.sys.bpf(U.BPF_PROG_TEST_RUN, attr)
                retvals.append(attr.test.retval)
                run_errnos.append(0)
            except OSError as e:
                retvals.append(None)
                run_errnos.append(e.errno)
        retvals, run_errnos = tuple(retvals), tuple(run_errnos)
    return Outcome("accept", 0, log, retvals, run_errnos, tuple(s.notes))
