"""BpfError: a failed bpf() call, as the typed API raises it (the kernel's errno plus which command on what).

``BpfError.for_errno(code)`` is a subclass that is also the builtin class for the errno (FileNotFoundError
for ENOENT, PermissionError for EPERM, ...), so code written against the raw call keeps working.
"""
import errno as _errno

from .. import uapi
from ..errors import ENOTSUPP, errno_name, strerror

U = uapi
_LOOKUP = U.BPF_MAP_LOOKUP_ELEM
_UPDATE = U.BPF_MAP_UPDATE_ELEM
_DELETE = U.BPF_MAP_DELETE_ELEM
_NEXT = U.BPF_MAP_GET_NEXT_KEY
_LOOKUP_AND_DELETE = U.BPF_MAP_LOOKUP_AND_DELETE_ELEM
_ENOENT = _errno.ENOENT


class BpfError(OSError):
    """A failed bpf() call: the kernel's errno plus which command on which object.

    Raised as a subclass that is also the builtin class for the errno
    (FileNotFoundError for ENOENT, PermissionError for EPERM, ...), so code
    written against the raw call keeps working. Attributes: ``errno``,
    ``strerror``, ``command`` (e.g. 'BPF_MAP_UPDATE_ELEM'), ``target`` (what it
    acted on), ``detail`` (the explanation), ``count`` (batch commands: how
    many elements were done).
    """

    command = target = detail = None
    count = None

    def __str__(self):
        return "%s: %s on %s: %s" % (errno_name(self.errno), self.command, self.target, self.detail)

    def __reduce__(self):
        return (_rebuild_error, (self.errno, self.command, self.target, self.detail, self.count))

    @staticmethod
    def for_errno(code):
        """The BpfError subclass raised for errno ``code``."""
        cls = _ERROR_CLASSES.get(code)
        if cls is None:
            base = type(OSError(code, ""))
            if base is OSError:
                cls = BpfError
            else:
                cls = type("Bpf" + base.__name__, (BpfError, base), {"__module__": __name__})
                globals()[cls.__name__] = cls
            _ERROR_CLASSES[code] = cls
        return cls


_ERROR_CLASSES = {}


def _rebuild_error(code, command, target, detail, count):
    return make_error(code, command, target, detail, count)


def make_error(code, command, target, detail=None, count=None):
    e = BpfError.for_errno(code)(code, strerror(code))
    e.command = command
    e.target = target
    e.detail = detail or strerror(code)
    e.count = count
    return e


# What an errno means for a command, in the words a user wants to read.
_DETAILS = {
    (_UPDATE, _errno.E2BIG): "map is full",
    (_UPDATE, _errno.EEXIST): "key already exists (BPF_NOEXIST)",
    (_UPDATE, _ENOENT): "no such key (BPF_EXIST)",
    (_UPDATE, _errno.EPERM): "map is frozen or the fd is read-only",
    (_DELETE, _errno.EPERM): "map is frozen or the fd is read-only",
    (_LOOKUP, _errno.EPERM): "the fd is write-only",
    (_LOOKUP, _ENOENT): "no such key",
    (_DELETE, _ENOENT): "no such key",
    (_LOOKUP_AND_DELETE, _ENOENT): "no such key",
    (_NEXT, _ENOENT): "no next key",
    (U.BPF_MAP_FREEZE, _errno.EBUSY): "a writable mapping of the map is alive",
    (U.BPF_MAP_FREEZE, _errno.EPERM): "already frozen, or the fd is read-only",
    (U.BPF_MAP_GET_FD_BY_ID, _ENOENT): "no map with this id",
    (U.BPF_OBJ_GET, _ENOENT): "no such pin",
    (U.BPF_OBJ_PIN, _errno.EEXIST): "the path already exists",
    (U.BPF_MAP_CREATE, _errno.EPERM): "not permitted (privilege or kernel.unprivileged_bpf_disabled)",
}
_GENERIC = {
    _errno.EBADF: "not an open fd",
    _errno.EINVAL: "invalid argument",
    _errno.EPERM: "operation not permitted",
    _errno.EFAULT: "bad address",
    ENOTSUPP: "not supported by this map type",
    _errno.ENOMEM: "out of memory",
    _errno.E2BIG: "argument too big",
}


# Where a map type's own reason differs from the one of _DETAILS: the emulator's explanation when it gave one
# (the host gives none), else this.
_ARRAYS = frozenset((U.BPF_MAP_TYPE_ARRAY, U.BPF_MAP_TYPE_PERCPU_ARRAY, U.BPF_MAP_TYPE_PROG_ARRAY,
                     U.BPF_MAP_TYPE_PERF_EVENT_ARRAY, U.BPF_MAP_TYPE_CGROUP_ARRAY, U.BPF_MAP_TYPE_ARRAY_OF_MAPS,
                     U.BPF_MAP_TYPE_CGROUP_STORAGE, U.BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE))
_TYPE_DETAILS = {
    ("array", _UPDATE, _errno.E2BIG): "index out of range",
    ("array", U.BPF_MAP_UPDATE_BATCH, _errno.E2BIG): "index out of range",
}
# ENOSPC from a lookup batch: the kernel hands out whole hash buckets and the next one has more elements
# than count (hashtab.c's __htab_map_lookup_and_delete_batch); asking again with a larger count continues.
_ENOSPC_BATCH = ("count %s is smaller than the next bucket's elements (batches return whole buckets): ask "
                 "again with a larger count")
_BATCH_LOOKUPS = (U.BPF_MAP_LOOKUP_BATCH, U.BPF_MAP_LOOKUP_AND_DELETE_BATCH)


def detail_for(cmd, code, exc=None, asked=None, map_type=None):
    """The explanation: for a map type with its own reason, the emulator's or that one; else ours for a
    known (command, errno), else the emulator's, else a generic one. ``asked`` is a batch's requested
    count."""
    if code == _errno.ENOSPC and cmd in _BATCH_LOOKUPS:
        return _ENOSPC_BATCH % (asked if asked is not None else "")
    kind = "array" if map_type in _ARRAYS else None
    own = _TYPE_DETAILS.get((kind, cmd, code))
    if own is not None:
        return getattr(exc, "bpf_detail", None) or own
    return (_DETAILS.get((cmd, code)) or getattr(exc, "bpf_detail", None) or _GENERIC.get(code)
            or strerror(code))


def reraise(exc, cmd, target, count=None, asked=None, map_type=None):
    """The BpfError for an OSError out of sys.bpf() (``asked``: a batch's requested count; ``map_type``: the
    map's, for the explanation)."""
    if isinstance(exc, BpfError):
        return exc
    detail = detail_for(cmd, exc.errno, exc, asked=asked, map_type=map_type)
    return make_error(exc.errno, uapi.cmd_name(cmd), target, detail, count)
