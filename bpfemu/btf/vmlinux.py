"""The kernel's own BTF (btf_vmlinux): the host's /sys/kernel/btf/vmlinux, or one bpfemu builds.

On Linux the emulated kernel describes itself with the host's BTF, so type
ids (attach_btf_id, kfunc ids, btf_vmlinux_value_type_id) are the host's.
Where that file is absent (macOS, Windows, a kernel without BTF), bpfemu
builds a small BTF of what it emulates: C integer types, the special structs
of include/uapi/linux/bpf.h (bpf_spin_lock, bpf_timer, ...), the kernel
structs that referenced kptrs may point to, with their destructor kfuncs.
Other parts of bpfemu add their own types to the fallback with
:func:`register_fallback_types` before first use. A kernel whose BTF is the
fallback notes the names its loads looked up there in vain
(:meth:`bpfemu.btf.object.BtfObject.not_described`): the kernel types a
program needs that bpfemu does not describe.

Loading is lazy and cached per path (the blob is immutable and shared by all
Kernel instances): :func:`vmlinux_btf` reads and indexes the host's file on
first call (about 50 ms and 20 MB for a 5.5 MB BTF with 127k types on the
machine this was written on; see docs/btf.md), never at ``Kernel()`` time.
"""
import os
import threading

from .. import hostenv
from .. import uapi as UAPI
from . import uapi as U
from .btf import lazy_btf
from .builder import Builder

VMLINUX_PATH = "/sys/kernel/btf/vmlinux"

_lock = threading.Lock()
_cache = {}
_fallback_hooks = []


def vmlinux_btf(path=VMLINUX_PATH, fallback=True):
    """The kernel BTF: a lazily decoded Btf of ``path``, else (``fallback``) bpfemu's own, else None."""
    key = (path, fallback)
    b = _cache.get(key)
    if b is not None:
        return b
    with _lock:
        b = _cache.get(key)
        if b is None:
            data = None
            if path and (path != VMLINUX_PATH or hostenv.is_linux()):  # off Linux there is no such file
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    data = None
            built_in = data is None
            if built_in:
                if not fallback:
                    return None
                data = fallback_blob()
            b = lazy_btf(data, name="vmlinux", kernel_btf=True)
            b.built_in = built_in  # bpfemu's own (is_built_in)
            _cache[key] = b
    return b


def is_built_in(btf):
    """Whether ``btf`` (from :func:`vmlinux_btf`) is the BTF bpfemu builds rather than a kernel's file."""
    return getattr(btf, "built_in", False)


def register_fallback_types(fn):
    """Add ``fn(builder)`` to what the fallback kernel BTF describes (call before first use)."""
    _fallback_hooks.append(fn)
    for k in [k for k in _cache if k[0] is None or not os.path.exists(k[0] or "")]:
        _cache.pop(k, None)
    return fn


# (struct name, size, [(member, type name, bit offset)]) of include/uapi/linux/bpf.h
_UAPI_STRUCTS = (
    ("bpf_spin_lock", 4, [("val", "__u32", 0)]),
    ("bpf_res_spin_lock", 4, [("val", "__u32", 0)]),
    ("bpf_timer", 16, [("__opaque", "__u64[2]", 0)]),
    ("bpf_wq", 16, [("__opaque", "__u64[2]", 0)]),
    ("bpf_task_work", 8, [("__opaque", "__u64", 0)]),
    ("bpf_dynptr", 16, [("__opaque", "__u64[2]", 0)]),
    ("bpf_list_head", 16, [("__opaque", "__u64[2]", 0)]),
    ("bpf_list_node", 24, [("__opaque", "__u64[3]", 0)]),
    ("bpf_rb_root", 16, [("__opaque", "__u64[2]", 0)]),
    ("bpf_rb_node", 32, [("__opaque", "__u64[4]", 0)]),
    ("bpf_refcount", 4, [("__opaque", "__u32[1]", 0)]),
)

# kernel objects a referenced kptr may hold, with the kfunc that releases them
_KPTR_TARGETS = (("task_struct", "bpf_task_release_dtor"), ("cgroup", "bpf_cgroup_release_dtor"),
                 ("bpf_cpumask", "bpf_cpumask_release_dtor"))


# bpfemu's own task_struct: the task ids it models (what CO-RE programs most often read), at its own offsets
_TASK_MEMBERS = [("pid", "int", 0), ("tgid", "int", 32)]


def fallback_builder():
    """The Builder of bpfemu's own kernel BTF (see the module docstring)."""
    b = Builder()
    ints = (("char", 1, True), ("unsigned char", 1, False), ("short", 2, True), ("short unsigned int", 2, False),
            ("int", 4, True), ("unsigned int", 4, False), ("long", 8, True), ("long unsigned int", 8, False),
            ("long long", 8, True), ("long long unsigned int", 8, False), ("_Bool", 1, False),
            ("__int128", 16, True), ("__int128 unsigned", 16, False))
    for name, size, signed in ints:
        if name == "_Bool":
            b.int(name, size, bool=True)
        else:
            b.int(name, size, signed=signed)
    for n, base in (("__u8", "unsigned char"), ("__s8", "char"), ("__u16", "short unsigned int"),
                    ("__s16", "short"), ("__u32", "unsigned int"), ("__s32", "int"),
                    ("__u64", "long long unsigned int"), ("__s64", "long long"), ("u8", "__u8"), ("u16", "__u16"),
                    ("u32", "__u32"), ("u64", "__u64"), ("s32", "__s32"), ("s64", "__s64")):
        b.typedef(n, base)
    arrays = {}
    for name, size, members in _UAPI_STRUCTS:
        ms = []
        for mname, tname, off in members:
            if "[" in tname:
                elem, n = tname[:-1].split("[")
                key = (elem, int(n))
                if key not in arrays:
                    b.array(elem, int(n), index="int")
                    arrays[key] = b.last
                ms.append((mname, arrays[key], off))
            else:
                ms.append((mname, tname, off))
        b.struct(name, ms, size=size)
    b.ptr(0)
    void_ptr = b.last
    for sname, dtor in _KPTR_TARGETS:
        b.struct(sname, _TASK_MEMBERS if sname == "task_struct" else [], size=8)
        b.func_proto(0, [("p", void_ptr)])
        b.func(dtor, b.last, linkage=U.BTF_FUNC_GLOBAL)
    for name, values in UAPI.ENUMS.items():     # the uapi enums (bpf_map_type, ...), for CO-RE enum relocations
        b.enum(name, values)
    for fn in _fallback_hooks:
        fn(b)
    return b


def fallback_blob():
    return fallback_builder().blob()
