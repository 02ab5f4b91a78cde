"""OBJ_PIN and OBJ_GET: objects in bpffs (bpf_obj_pin / bpf_obj_get and inode.c's *_user)."""
import errno

from .. import uapi
from ..errors import bpf_error
from ..inode import MAY_READ, MAY_WRITE
from ..limits import PAGE_SIZE, PATH_MAX
from ..objects import FMODE_READ, FMODE_WRITE
from .common import get_file_flag, new_fd
from .table import command


def read_path(ctx, addr):
    """strncpy_from_user of a NUL-terminated path of at most PATH_MAX bytes with its NUL (EFAULT,
    ENAMETOOLONG, ENOENT for '')."""
    out = bytearray()
    while True:
        # read up to the end of the current page so a string near unmapped memory still works, and never
        # past PATH_MAX bytes, the most the kernel reads
        n = min(PAGE_SIZE - (addr + len(out)) % PAGE_SIZE, PATH_MAX - len(out))
        chunk = ctx.read(addr + len(out), n)
        end = chunk.find(b"\0")
        if end >= 0:
            out += chunk[:end]
            break
        out += chunk
        if len(out) >= PATH_MAX:
            raise bpf_error(errno.ENAMETOOLONG)
    if len(out) >= PATH_MAX:
        raise bpf_error(errno.ENAMETOOLONG)
    if not out:
        raise bpf_error(errno.ENOENT, "empty path")
    return out.decode("utf-8", "surrogateescape")


def _base(ctx, path, use_path_fd):
    """Where a relative path starts: the path_fd directory with BPF_F_PATH_FD, else the cwd."""
    if path.startswith("/"):
        return None
    if not use_path_fd:
        return ctx.kernel.fs.walk(ctx.task.cwd)
    return ctx.fdget("path_fd").inode


def _path_flag(ctx):
    """BPF_F_PATH_FD where this kernel version has it (6.5+), else 0."""
    return uapi.BPF_F_PATH_FD if ctx.kernel.profile.path_fd else 0


def _path_args(ctx):
    """The flag checks OBJ_PIN and OBJ_GET share (BPF_F_PATH_FD and path_fd)."""
    a = ctx.attr
    use_fd = bool(a.file_flags & _path_flag(ctx))
    if not use_fd and a.path_fd:
        raise bpf_error(errno.EINVAL, "path_fd without BPF_F_PATH_FD")
    return use_fd


@command(uapi.BPF_OBJ_PIN)
def obj_pin(ctx):
    a = ctx.attr
    if a.file_flags & ~_path_flag(ctx):
        raise bpf_error(errno.EINVAL, "file_flags may only hold BPF_F_PATH_FD for OBJ_PIN" if _path_flag(ctx) else
                        "OBJ_PIN takes no file_flags in %s" % ctx.kernel.profile.version)
    use_fd = _path_args(ctx)
    f = ctx.fdget("bpf_fd")  # bpf_fd_probe_obj: a map, a program or a link
    path = read_path(ctx, a.pathname)
    ctx.kernel.fs.pin(path, f.obj, ctx.task, _base(ctx, path, use_fd))
    return 0


ACC_MODE = {FMODE_READ: MAY_READ, FMODE_WRITE: MAY_WRITE, FMODE_READ | FMODE_WRITE: MAY_READ | MAY_WRITE}


@command(uapi.BPF_OBJ_GET)
def obj_get(ctx):
    a = ctx.attr
    if a.bpf_fd or a.file_flags & ~(uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY | _path_flag(ctx)):
        raise bpf_error(errno.EINVAL, "bad bpf_fd or file_flags for OBJ_GET")
    use_fd = _path_args(ctx)
    mode = get_file_flag(a.file_flags)
    path = read_path(ctx, a.pathname)
    obj = ctx.kernel.fs.get(path, ctx.task, ACC_MODE[mode], _base(ctx, path, use_fd))
    if obj.kind == "prog":
        mode = FMODE_READ | FMODE_WRITE  # bpf_prog_new_fd ignores the flags
    elif obj.kind == "link" and mode != FMODE_READ | FMODE_WRITE:
        raise bpf_error(errno.EINVAL, "links open read-write only")
    return new_fd(ctx.task, obj, mode)

