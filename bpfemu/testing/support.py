"""Helpers for tests on any backend: build attr bytes, run a command, decode what it wrote.

Keys and values are bytes; each call keeps its buffers alive in ctypes objects
for the duration of the syscall. ``err(fn, ...)`` runs a call and returns its
errno (0 on success), the form most conformance assertions take.
"""
import ctypes
import errno
import itertools
import os
import struct
import time

from .. import uapi as u
from ..uapi import make_attr  # noqa: F401


def buf(data_or_len):
    if isinstance(data_or_len, int):
        return ctypes.create_string_buffer(data_or_len)
    return ctypes.create_string_buffer(bytes(data_or_len), len(data_or_len))


def addr(b):
    return ctypes.addressof(b) if b is not None else 0


def possible_cpus(proc=None):
    """Possible CPUs of the machine a test runs on: the emulated kernel's of ``proc`` (a Task), else the host's,
    else what an emulated Kernel takes where the host's cannot be read (2): never a read of /sys by a test."""
    kernel = getattr(proc, "kernel", None)
    if kernel is not None:
        return kernel.ncpus
    from ..host.sysinfo import host_possible_cpus
    from ..kernel import DEFAULT_NCPUS
    return host_possible_cpus() or DEFAULT_NCPUS


def err(fn, *args, **kw):
    """errno of fn(*args) (0 when it succeeds)."""
    try:
        fn(*args, **kw)
        return 0
    except OSError as e:
        return e.errno


def create_map(proc, map_type, key_size=4, value_size=8, max_entries=16, flags=0, name=b"", **extra):
    a = u.make_attr(map_type=map_type, key_size=key_size, value_size=value_size, max_entries=max_entries,
                    map_flags=flags, **extra)
    a.map_name = name
    return proc.bpf(u.BPF_MAP_CREATE, a)


def hash_map(proc, **kw):
    kw.setdefault("flags", u.BPF_F_ZERO_SEED)
    return create_map(proc, u.BPF_MAP_TYPE_HASH, **kw)


def array_map(proc, **kw):
    return create_map(proc, u.BPF_MAP_TYPE_ARRAY, **kw)


def update(proc, fd, key, value, flags=0):
    k, v = (buf(key) if key is not None else None), (buf(value) if value is not None else None)
    return proc.bpf(u.BPF_MAP_UPDATE_ELEM, u.make_attr(map_fd=fd, key=addr(k), value=addr(v), flags=flags))


def lookup(proc, fd, key, value_size, flags=0):
    k = buf(key) if key is not None else None
    v = buf(value_size)
    proc.bpf(u.BPF_MAP_LOOKUP_ELEM, u.make_attr(map_fd=fd, key=addr(k), value=addr(v), flags=flags))
    return v.raw


def delete(proc, fd, key):
    k = buf(key) if key is not None else None
    return proc.bpf(u.BPF_MAP_DELETE_ELEM, u.make_attr(map_fd=fd, key=addr(k)))


def lookup_and_delete(proc, fd, key, value_size, flags=0):
    k = buf(key) if key is not None else None
    v = buf(value_size)
    proc.bpf(u.BPF_MAP_LOOKUP_AND_DELETE_ELEM, u.make_attr(map_fd=fd, key=addr(k), value=addr(v), flags=flags))
    return v.raw


def next_key(proc, fd, key, key_size):
    k = buf(key) if key is not None else None
    n = buf(key_size)
    proc.bpf(u.BPF_MAP_GET_NEXT_KEY, u.make_attr(map_fd=fd, key=addr(k), next_key=addr(n)))
    return n.raw


def keys(proc, fd, key_size):
    """Every key by GET_NEXT_KEY from the start, in the kernel's order."""
    out, k = [], None
    while True:
        try:
            k = next_key(proc, fd, k, key_size)
        except OSError as e:
            assert e.errno == 2, e
            return out
        out.append(k)


def freeze(proc, fd):
    return proc.bpf(u.BPF_MAP_FREEZE, u.make_attr(map_fd=fd))


def map_info(proc, fd, info_len=None):
    info = u.bpf_map_info()
    n = ctypes.sizeof(info) if info_len is None else info_len
    a = u.make_attr(**{"info.bpf_fd": fd, "info.info_len": n, "info.info": ctypes.addressof(info)})
    proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, a)
    return info


def map_id(proc, fd):
    return map_info(proc, fd).id


def get_next_id(proc, start, cmd=u.BPF_MAP_GET_NEXT_ID):
    a = u.make_attr(start_id=start)
    proc.bpf(cmd, a)
    return a.next_id


def map_fd_by_id(proc, map_id, open_flags=0):
    return proc.bpf(u.BPF_MAP_GET_FD_BY_ID, u.make_attr(map_id=map_id, open_flags=open_flags))


def attr_has(profile, cmd, field):
    """Whether ``cmd`` of the kernel version ``profile`` reads attr ``field`` (it ends before the command's
    last field, CHECK_ATTR's bound): a field past it is not read, and not written back either."""
    from ..syscall.table import COMMANDS
    return u.offsetofend(field) <= profile.attr_end(COMMANDS[cmd])


def need_attr(profile, cmd, field):
    """Skip (naming the version and its last field of ``cmd``) where the kernel version of ``profile`` does not
    read attr ``field`` (:func:`attr_has`): a test of that field has nothing to ask it."""
    if not attr_has(profile, cmd, field):
        from ..syscall.table import COMMANDS
        import pytest
        pytest.skip("%s: %s ends at %s (no %s)" % (profile.version, u.cmd_name(cmd),
                                                   profile.last_field(COMMANDS[cmd]), field))


def need_insn(profile, name):
    """Skip where the kernel version's verifier does not know instruction ``name`` (``profile.instructions``;
    the ISA tests check the refusal itself)."""
    if not profile.knows_insn(name):
        import pytest
        pytest.skip("%s: the verifier does not know %s (profile.instructions)" % (profile.version, name))


def unprivileged(profile, want):
    """What MAP_CREATE (or PROG_LOAD) without CAP_BPF answers where the kernel version answers ``want`` once
    it has read the attributes: EPERM, before the attributes, where the version checks at the syscall's entry
    (``profile.unpriv_check_at_entry``: 6.1, with kernel.unprivileged_bpf_disabled set, as on the host, in
    the VMs and in a default Kernel), else ``want``."""
    return errno.EPERM if profile.unpriv_check_at_entry else want


def need_map_type(profile, map_type):
    """Skip the test where the kernel version has no ``map_type`` (its MAP_CREATE says EINVAL)."""
    import pytest
    if not profile.knows_map_type(map_type):
        pytest.skip("%s has no %s maps" % (profile.version, u.map_type_name(map_type)))


def need_prog_type(profile, prog_type):
    """Skip the test where the kernel version has no program type ``prog_type`` (``profile.prog_types``: its
    PROG_LOAD says EINVAL)."""
    import pytest
    if prog_type not in profile.prog_types:
        pytest.skip("%s has no %s programs" % (profile.version, u.PROG_TYPE_NAMES.get(prog_type, prog_type)))


PRELOADED = ["maps.debug", "progs.debug"]  # the iterator links a fresh bpffs shows with CONFIG_BPF_PRELOAD


def preloaded(proc):
    """What a fresh bpffs lists on ``proc``'s machine: maps.debug and progs.debug where the kernel was built with
    CONFIG_BPF_PRELOAD (``proc.bpf_preload``, set by the backends; True for a task made without one), else
    nothing (Debian's kernels)."""
    return list(PRELOADED) if getattr(proc, "bpf_preload", True) else []


def pin(proc, fd, path, file_flags=0, path_fd=0):
    p = buf(path.encode() + b"\0")
    return proc.bpf(u.BPF_OBJ_PIN, u.make_attr(pathname=addr(p), bpf_fd=fd, file_flags=file_flags, path_fd=path_fd))


def obj_get(proc, path, file_flags=0, path_fd=0):
    p = buf(path.encode() + b"\0")
    return proc.bpf(u.BPF_OBJ_GET, u.make_attr(pathname=addr(p), file_flags=file_flags, path_fd=path_fd))


def btf_load(proc, blob, log_level=0, log_size=0, **extra):
    """BPF_BTF_LOAD of ``blob`` (bytes, e.g. ``bpfemu.btf.Builder().....blob()``): the new BTF fd."""
    d = buf(blob)
    lb = buf(log_size) if log_size else None
    return proc.bpf(u.BPF_BTF_LOAD, u.make_attr(btf=addr(d), btf_size=len(blob), btf_log_level=log_level,
                                                 btf_log_size=log_size, btf_log_buf=addr(lb), **extra))


def btf_info(proc, fd, info_len=None, btf_size=0, name_len=0):
    """OBJ_GET_INFO_BY_FD of a BTF fd: (bpf_btf_info, blob bytes or b'', name bytes or b'').

    ``btf_size``/``name_len``: the buffers offered for the blob and the name (0: none)."""
    info = u.bpf_btf_info()
    bb = buf(btf_size) if btf_size else None
    nb = buf(name_len) if name_len else None
    info.btf, info.btf_size, info.name, info.name_len = addr(bb), btf_size, addr(nb), name_len
    n = ctypes.sizeof(info) if info_len is None else info_len
    proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, u.make_attr(**{"info.bpf_fd": fd, "info.info_len": n,
                                                        "info.info": ctypes.addressof(info)}))
    return info, (bb.raw if bb else b""), (nb.raw if nb else b"")


def btf_fd_by_id(proc, btf_id):
    return proc.bpf(u.BPF_BTF_GET_FD_BY_ID, u.make_attr(btf_id=btf_id))


_kernel_btfs = {}


def kernel_btf(proc):
    """The BTF of the kernel ``proc`` runs on, as that kernel gives it (BTF id 1, "vmlinux", read through
    OBJ_GET_INFO_BY_FD): the type ids a program names must be its kernel's, not this machine's. A decoded
    ``bpfemu.btf`` Btf (``find_by_name_kind``...), kept per kernel (the same blob is decoded once)."""
    from ..btf.btf import lazy_btf
    fd = btf_fd_by_id(proc, 1)
    try:
        info, _, name = btf_info(proc, fd, name_len=16)
        assert name.rstrip(b"\0") == b"vmlinux", name
        _, blob, _ = btf_info(proc, fd, btf_size=info.btf_size)
    finally:
        proc.close(fd)
    key = (len(blob), hash(blob))
    b = _kernel_btfs.get(key)
    if b is None:
        b = _kernel_btfs[key] = lazy_btf(blob, name="vmlinux", kernel_btf=True)
    return b


def u32(n):
    return struct.pack("<I", n)


def u64(n):
    return struct.pack("<Q", n)


def id_alive(proc, map_id_):
    try:
        fd = map_fd_by_id(proc, map_id_)
    except OSError as e:
        assert e.errno == 2
        return False
    proc.close(fd)
    return True


def wait_gone(proc, map_id_, timeout=5.0):
    deadline = time.monotonic() + timeout
    while id_alive(proc, map_id_):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


class BatchResult:
    """What a batch command left behind: errno (0 = success), the count written back,
    the out_batch bytes, and the keys/values buffers."""

    def __init__(self, errno_, count, out_batch, keys, values):
        self.errno, self.count, self.out_batch, self.keys, self.values = errno_, count, out_batch, keys, values

    def __repr__(self):
        return "<batch errno %d count %d out %s>" % (self.errno, self.count, self.out_batch.hex())


def batch(proc, cmd, fd, count, key_size, value_size, keys=None, values=None, in_batch=None,
          batch_size=4, elem_flags=0, flags=0, null=(), out_fill=b"\xee"):
    """Run one BPF_MAP_*_BATCH command. keys/values: input bytes (update/delete) or None for
    zeroed output buffers of count entries; in_batch: bytes or None (NULL). Fields named in
    ``null`` ('keys', 'values', 'out_batch') are passed as NULL. out_batch starts as out_fill."""
    kb = buf(keys if keys is not None else max(count * key_size, 1))
    vb = buf(values if values is not None else max(count * value_size, 1))
    ib = buf(in_batch) if in_batch is not None else None
    ob = buf(out_fill * batch_size)
    a = u.make_attr(**{"batch.map_fd": fd, "batch.count": count, "batch.elem_flags": elem_flags,
                       "batch.flags": flags, "batch.in_batch": addr(ib),
                       "batch.out_batch": 0 if "out_batch" in null else addr(ob),
                       "batch.keys": 0 if "keys" in null else addr(kb),
                       "batch.values": 0 if "values" in null else addr(vb)})
    e = err(proc.bpf, cmd, a)
    return BatchResult(e, a.batch.count, ob.raw, kb.raw, vb.raw)


def fdinfo_value(proc, fd, name):
    """The value of line ``name`` of /proc/<pid>/fdinfo/<fd> (a str), e.g. 'memlock'."""
    for line in proc.fdinfo(fd).splitlines():
        key, _sep, value = line.partition(":")
        if key == name:
            return value.strip()
    raise KeyError(name)


def _own_memcg():
    """(cgroup directory of this process's memory controller, 'v1' or 'v2'), or (None, reason)."""
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        _hier, ctrls, path = line.split(":", 2)
        if "memory" in ctrls.split(","):
            d = "/sys/fs/cgroup/memory" + path
            if os.path.exists(os.path.join(d, "memory.limit_in_bytes")):
                return d, "v1"
    for line in lines:
        if line.startswith("0::"):
            d = "/sys/fs/cgroup" + line[3:]
            ctrl = os.path.join(d, "cgroup.controllers")
            if os.path.exists(ctrl):
                with open(ctrl) as f:
                    if "memory" in f.read().split():
                        return d, "v2"
    return None, "no memory cgroup controller is mounted"


class HostMemcg:
    """A fresh child memory cgroup of this process's, with ``limit`` bytes (None: no limit).

    ``add(pid)`` moves a process in; ``kernel_usage()`` is the kernel memory charged to the cgroup (where
    bpf maps are charged: memory.kmem.usage_in_bytes on cgroup v1, the ``kernel`` line of memory.stat on v2);
    ``remove()`` removes it once its processes are gone. OSError where no memory cgroup can be made."""

    def __init__(self, limit=None):
        parent, self.version = _own_memcg()
        if parent is None:
            raise OSError(errno.ENOENT, self.version)
        self.path = os.path.join(parent, "bpfemu_memcg_%d_%d" % (os.getpid(), next(_memcg_seq)))
        os.mkdir(self.path)
        if limit is not None:
            self._write("memory.limit_in_bytes" if self.version == "v1" else "memory.max", limit)

    def _write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(str(value))

    def add(self, pid):
        self._write("tasks" if self.version == "v1" else "cgroup.procs", pid)

    def kernel_usage(self):
        if self.version == "v1":
            with open(os.path.join(self.path, "memory.kmem.usage_in_bytes")) as f:
                return int(f.read())
        with open(os.path.join(self.path, "memory.stat")) as f:
            return int(dict(line.split() for line in f)["kernel"])

    def remove(self):
        deadline = time.monotonic() + 5
        while True:
            try:
                os.rmdir(self.path)
                return
            except OSError as e:
                if e.errno != errno.EBUSY or time.monotonic() > deadline:  # EBUSY: a task is still leaving
                    raise
                time.sleep(0.05)


_memcg_seq = itertools.count()


# -- the platform ---------------------------------------------------------------------------------------

def need_bad_pointer_detection():
    """Skip the running test, with the reason, where bpfemu cannot detect bad pointers (not Linux, or
    process_vm_readv blocked): what the plugin's ``@pytest.mark.bpf_bad_pointers`` does, for a fixture."""
    from ..usermem import LOCAL
    if not LOCAL.checked:
        import pytest
        pytest.skip("bpfemu cannot detect bad pointers here, and this test passes some: %s"
                    % LOCAL.unchecked_reason)


def need_linux(what):
    """Skip the running test where bpfemu runs as off Linux (``hostenv.is_linux()`` False: macOS, Windows,
    or ``BPFEMU_PLATFORM=nonlinux``), saying that ``what`` needs Linux. The one way a test skips for an
    inherent difference of bpfemu off Linux (each is listed in README's "Off Linux"); the plugin's
    ``@pytest.mark.bpf_needs_linux(what)`` does it for a whole test or module."""
    from .. import hostenv
    if not hostenv.is_linux():
        import pytest
        pytest.skip("%s needs Linux: %s" % (what, hostenv.not_linux_reason()))


def block_process_vm(code=errno.EPERM):
    """Make process_vm_readv/process_vm_writev fail with ``code`` in this process from now on, as a seccomp
    profile of some containers does (a real seccomp filter, so it cannot be undone: use it in a child
    process). OSError where seccomp filters cannot be installed, NotImplementedError for an architecture
    whose syscall numbers bpfemu does not know."""
    import platform

    from ..hostenv import PROCESS_VM_SYSCALLS

    nrs = PROCESS_VM_SYSCALLS.get(platform.machine())
    if nrs is None:
        raise NotImplementedError("process_vm_* syscall numbers of %s" % platform.machine())

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06
    SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x00050000, 0x7FFF0000
    insns = [SockFilter(BPF_LD_W_ABS, 0, 0, 0)]  # seccomp_data.nr
    for nr in nrs:
        insns += [SockFilter(BPF_JEQ_K, 0, 1, nr), SockFilter(BPF_RET_K, 0, 0, SECCOMP_RET_ERRNO | code)]
    insns.append(SockFilter(BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW))
    prog = (SockFilter * len(insns))(*insns)
    fprog = SockFprog(len(insns), prog)
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 or \
            libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def real_kernel_btf(version):
    """The BTF of a real kernel of ``version`` ("6.1"): the machine's own /sys/kernel/btf/vmlinux when it runs
    that version, else the .BTF section of the cached Debian kernel (``tools/fetch_kernels.py``), else None.
    What a test compares a version's struct offsets with (the profiles' ``kernel_offsets``)."""
    from .. import profiles
    from ..btf.btf import lazy_btf
    from ..btf.vmlinux import vmlinux_btf
    if profiles.host_version() == version:
        return vmlinux_btf(fallback=False)
    b = _REAL_BTF.get(version)
    if b is None:
        from ..host.vm import kernels
        path = os.path.join(kernels.kernel_dir(version), "vmlinux") if version in kernels.PINS else None
        if not path or not os.path.exists(path):
            return None
        from elftools.elf.elffile import ELFFile
        with open(path, "rb") as f:
            sec = ELFFile(f).get_section_by_name(".BTF")
            if sec is None:
                return None
            b = _REAL_BTF[version] = lazy_btf(sec.data(), name="vmlinux", kernel_btf=True)
    return b


_REAL_BTF = {}
