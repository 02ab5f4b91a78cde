"""The bpf(2) uapi: command numbers, types, flags and byte-exact layouts.

The one source of truth for the ABI. Layouts and enumerators come from
``uapi_layout`` (generated from the kernel's BTF by tools/gen_uapi.py); this
module adds what BTF does not carry (#defines) and field lookups by name. What
each command reads is declared in :mod:`bpfemu.syscall.table`. Other modules
import names from here and never hard-code an offset.
"""
import ctypes
import functools

from . import uapi_layout as _layout
from .uapi_layout import bpf_attr, bpf_btf_info, bpf_link_info, bpf_map_info, bpf_prog_info  # noqa: F401

globals().update(_layout.CONSTANTS)

ENUMS = _layout.ENUMS
ATTR_SIZE = ctypes.sizeof(bpf_attr)

# #defines of the uapi header, which BTF does not record
BPF_OBJ_NAME_LEN = 16
BPF_TAG_SIZE = 8
BPF_FS_MAGIC = 0xCAFE4A11

CMD_NAMES = {}
for _n, _v in ENUMS["bpf_cmd"]:
    if not _n.startswith("__"):
        CMD_NAMES.setdefault(_v, _n)
MAP_TYPE_NAMES = {v: n for n, v in ENUMS["bpf_map_type"] if not n.startswith("__")}
PROG_TYPE_NAMES = {v: n for n, v in ENUMS["bpf_prog_type"] if not n.startswith("__")}
LINK_TYPE_NAMES = {v: n for n, v in ENUMS["bpf_link_type"] if not n.startswith("__")}
MAX_BPF_CMD = dict(ENUMS["bpf_cmd"])["__MAX_BPF_CMD"]


def cmd_name(cmd):
    return CMD_NAMES.get(cmd, "bpf cmd %d" % cmd)


def map_type_name(t):
    n = MAP_TYPE_NAMES.get(t)
    return n[len("BPF_MAP_TYPE_"):].lower() if n else "map type %d" % t


def _member(cls, name):
    """(offset, ctype) of member ``name`` of struct/union ``cls``, looked up through anonymous members."""
    for fname, ftype, *_ in cls._fields_:
        if fname == name:
            return getattr(cls, name).offset, ftype
    for anon in getattr(cls, "_anonymous_", ()):
        sub = dict((f[0], f[1]) for f in cls._fields_)[anon]
        try:
            off, ftype = _member(sub, name)
        except AttributeError:
            continue
        return getattr(cls, anon).offset + off, ftype
    raise AttributeError("%s has no member %s" % (cls.__name__, name))


@functools.lru_cache(maxsize=None)  # layouts never change: the syscall path asks per call
def field_layout(struct_cls, dotted):
    """(offset, size) of a possibly nested field of a ctypes struct or union ('batch.count')."""
    off = 0
    cls = struct_cls
    for part in dotted.split("."):
        o, cls = _member(cls, part)
        off += o
    return off, ctypes.sizeof(cls)


def attr_field(dotted):
    """(offset, size) of a field of union bpf_attr, e.g. 'batch.count' or 'map_flags'."""
    return field_layout(bpf_attr, dotted)


def offsetofend(dotted, struct_cls=bpf_attr):
    off, size = field_layout(struct_cls, dotted)
    return off + size


# Map types whose syscall value is not value_size bytes (bpf_map_value_size): per-CPU maps take
# round_up(value_size, 8) bytes for each possible CPU, fd maps take a 4-byte fd in and give an id out.
PERCPU_MAP_TYPES = frozenset(globals()["BPF_MAP_TYPE_" + n] for n in (
    "PERCPU_HASH", "LRU_PERCPU_HASH", "PERCPU_ARRAY", "PERCPU_CGROUP_STORAGE"))
FD_MAP_TYPES = frozenset(globals()["BPF_MAP_TYPE_" + n] for n in (
    "PROG_ARRAY", "PERF_EVENT_ARRAY", "CGROUP_ARRAY", "ARRAY_OF_MAPS", "HASH_OF_MAPS"))


def make_attr(**fields):
    """A zeroed union bpf_attr with the given (possibly dotted) fields set."""
    a = bpf_attr()
    for name, value in fields.items():
        target = a
        parts = name.split(".")
        for p in parts[:-1]:
            target = getattr(target, p)
        setattr(target, parts[-1], value)
    return a
