"""Object ids: *_GET_NEXT_ID and *_GET_FD_BY_ID (bpf_obj_get_next_id and friends)."""
import errno

from .. import uapi
from ..caps import CAP_SYS_ADMIN
from ..errors import bpf_error
from ..limits import INT_MAX
from ..objects import FMODE_READ, FMODE_WRITE
from .common import get_file_flag, new_fd
from .table import command

NEXT_ID_KIND = {uapi.BPF_MAP_GET_NEXT_ID: "map", uapi.BPF_PROG_GET_NEXT_ID: "prog",
                uapi.BPF_LINK_GET_NEXT_ID: "link", uapi.BPF_BTF_GET_NEXT_ID: "btf"}


def _get_next_id(ctx):
    a = ctx.attr
    if a.start_id >= INT_MAX:
        raise bpf_error(errno.EINVAL, "start_id out of range")
    if not ctx.task.capable(CAP_SYS_ADMIN):
        raise bpf_error(errno.EPERM, "GET_NEXT_ID needs CAP_SYS_ADMIN")
    nxt = ctx.kernel.idr[NEXT_ID_KIND[ctx.cmd]].get_next(a.start_id)
    if nxt is None:
        raise bpf_error(errno.ENOENT)
    ctx.put("next_id", nxt)
    return 0


for _cmd in NEXT_ID_KIND:
    command(_cmd)(_get_next_id)


def _find(ctx, kind, obj_id):
    obj = ctx.kernel.idr[kind].find(obj_id)
    if obj is None or obj.freed:
        raise bpf_error(errno.ENOENT, "no %s with id %d" % (kind, obj_id))
    return obj


@command(uapi.BPF_MAP_GET_FD_BY_ID)
def map_get_fd_by_id(ctx):
    a = ctx.attr
    if a.open_flags & ~(uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY):
        raise bpf_error(errno.EINVAL, "open_flags may only hold BPF_F_RDONLY/BPF_F_WRONLY")
    if not ctx.task.capable(CAP_SYS_ADMIN):
        raise bpf_error(errno.EPERM, "GET_FD_BY_ID needs CAP_SYS_ADMIN")
    mode = get_file_flag(a.open_flags)
    m = _find(ctx, "map", a.map_id)
    return new_fd(ctx.task, m, mode)


def _rw_fd_by_id(ctx, kind):
    """bpf_prog_get_fd_by_id / bpf_link_get_fd_by_id: the id is the last field; the fd is read-write."""
    if not ctx.task.capable(CAP_SYS_ADMIN):
        raise bpf_error(errno.EPERM, "GET_FD_BY_ID needs CAP_SYS_ADMIN")
    obj = _find(ctx, kind, getattr(ctx.attr, kind + "_id"))
    return new_fd(ctx.task, obj, FMODE_READ | FMODE_WRITE)


@command(uapi.BPF_PROG_GET_FD_BY_ID)
def prog_get_fd_by_id(ctx):
    return _rw_fd_by_id(ctx, "prog")


@command(uapi.BPF_LINK_GET_FD_BY_ID)
def link_get_fd_by_id(ctx):
    return _rw_fd_by_id(ctx, "link")


@command(uapi.BPF_BTF_GET_FD_BY_ID)
def btf_get_fd_by_id(ctx):
    a = ctx.attr
    if a.open_flags & ~uapi.BPF_F_TOKEN_FD:
        raise bpf_error(errno.EINVAL, "open_flags may only hold BPF_F_TOKEN_FD")
    if a.open_flags & uapi.BPF_F_TOKEN_FD:
        ctx.fdget("fd_by_id_token_fd")
        raise bpf_error(errno.EINVAL, "BPF tokens are not modeled")  # pragma: no cover (no token objects)
    if not ctx.task.capable(CAP_SYS_ADMIN):
        raise bpf_error(errno.EPERM, "GET_FD_BY_ID needs CAP_SYS_ADMIN")
    b = _find(ctx, "btf", a.btf_id)
    return new_fd(ctx.task, b, FMODE_READ)
