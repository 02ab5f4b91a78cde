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


def detail_for(cmd, code, exc=None):
    """The explanation: ours for a known (command, errno), else the emulator's, else a generic one."""
    return (_DETAILS.get((cmd, code)) or getattr(exc, "bpf_detail", None) or _GENERIC.get(code)
            or strerror(code))


def reraise(exc, cmd, target, count=None):
    """The BpfError for an OSError out of sys.bpf()."""
    if isinstance(exc, BpfError):
        return exc
    return make_error(exc.errno, uapi.cmd_name(cmd), target, detail_for(cmd, exc.errno, exc), count)
