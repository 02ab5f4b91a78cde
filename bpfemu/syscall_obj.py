"""OBJ_PIN and OBJ_GET: objects in bpffs (bpf_obj_pin / bpf_obj_get and inode.c's *_user)."""
import errno

from . import uapi
from .errors import bpf_error
from .objects import FMODE_READ, FMODE_WRITE, File
from .syscall import command
from .syscall_map import get_file_flag

PATH_MAX = 4096


def read_path(ctx, addr):
    """strncpy_from_user of a NUL-terminated path (EFAULT, ENAMETOOLONG, ENOENT for '')."""
    out = bytearray()
    while True:
        # read up to the end of the current page so a string near unmapped memory still works
        n = 4096 - (addr + len(out)) % 4096
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


def _resolve(ctx, path, path_fd, use_path_fd):
    if path.startswith("/"):
        return path
    if not use_path_fd:
        cwd = getattr(ctx.task, "cwd", "/")
        return cwd.rstrip("/") + "/" + path
    f = ctx.task.fdget(path_fd)
    if f.inode is None:
        raise bpf_error(errno.ENOTDIR, "path_fd is not a directory")
    return ctx.kernel.fs.path_of(f.inode).rstrip("/") + "/" + path


@command(uapi.BPF_OBJ_PIN)
def obj_pin(ctx):
    a = ctx.attr
    ctx.check_attr(uapi.offsetofend("path_fd"))
    if a.file_flags & ~uapi.BPF_F_PATH_FD:
        raise bpf_error(errno.EINVAL, "file_flags may only hold BPF_F_PATH_FD for OBJ_PIN")
    use_fd = bool(a.file_flags & uapi.BPF_F_PATH_FD)
    if not use_fd and a.path_fd:
        raise bpf_error(errno.EINVAL, "path_fd without BPF_F_PATH_FD")
    slot = ctx.task.fdtable.get(a.bpf_fd)
    f = slot[0] if slot else None
    if f is None or f.obj is None or f.kind not in ("map", "prog", "link"):
        raise bpf_error(errno.EINVAL, "bpf_fd is not a map, program or link")
    path = _resolve(ctx, read_path(ctx, a.pathname), a.path_fd, use_fd)
    ctx.kernel.fs.pin(path, f.obj, ctx.task)
    return 0


@command(uapi.BPF_OBJ_GET)
def obj_get(ctx):
    a = ctx.attr
    ctx.check_attr(uapi.offsetofend("path_fd"))
    if a.bpf_fd or a.file_flags & ~(uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY | uapi.BPF_F_PATH_FD):
        raise bpf_error(errno.EINVAL, "bad bpf_fd or file_flags for OBJ_GET")
    use_fd = bool(a.file_flags & uapi.BPF_F_PATH_FD)
    if not use_fd and a.path_fd:
        raise bpf_error(errno.EINVAL, "path_fd without BPF_F_PATH_FD")
    mode = get_file_flag(a.file_flags)
    path = _resolve(ctx, read_path(ctx, a.pathname), a.path_fd, use_fd)
    node = ctx.kernel.fs.walk(path)
    if node.obj is None or node.sb != "bpf":
        raise bpf_error(errno.EACCES, "%s is not a pinned bpf object" % path)
    obj = node.obj
    if obj.kind == "map":
        return ctx.task.fd_install(File(obj, mode), cloexec=True)
    if mode != FMODE_READ | FMODE_WRITE:
        raise bpf_error(errno.EINVAL, "programs and links open read-write only")
    if getattr(obj, "id", 0) == 0 and obj.__class__.__name__ == "PreloadLink":
        raise bpf_error(errno.EINVAL, "the preloaded iterator links are not modeled")
    return ctx.task.fd_install(File(obj, mode), cloexec=True)
