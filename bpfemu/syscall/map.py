"""The map commands of bpf(2) (the map half of the kernel's syscall.c).

Each handler checks what the kernel checks, in the kernel's order (the order
decides which errno wins), copies keys and values in and out through user
memory, and calls the map's operation (:mod:`bpfemu.maps.bpf_map`).
"""
import errno

from .. import uapi
from ..caps import CAP_NET_ADMIN
from ..errors import ENOTSUPP, bpf_error
from ..limits import NR_NODE_IDS, NUMA_NO_NODE, SHA256_DIGEST_SIZE
from ..maps.bpf_types import MAP_TYPES, NET, UNPRIV
from ..objects import FMODE_READ, FMODE_WRITE
from .common import get_file_flag, new_fd, obj_name_cpy
from .table import command

BPF_F_ACCESS = uapi.BPF_F_RDONLY | uapi.BPF_F_WRONLY
ELEM_LOCK = uapi.BPF_F_LOCK


def map_get(ctx, field="map_fd"):
    """__bpf_map_get of the fd in attr field ``field``: (open file, map)."""
    f = ctx.fdget(field)
    return f, f.obj


def sys_perms(f, m):
    """map_get_sys_perms: the file's mode, less write on a frozen map."""
    mode = f.mode
    if m.frozen:
        mode &= ~FMODE_WRITE
    return mode


def need(f, m, mode):
    if sys_perms(f, m) & mode != mode:
        raise bpf_error(errno.EPERM, "fd lacks %s permission%s" % (
            "read" if mode == FMODE_READ else "write" if mode == FMODE_WRITE else "read/write",
            " (map is frozen)" if m.frozen and mode & FMODE_WRITE else ""))


def check_lock_flag(m, flags):
    if flags & ELEM_LOCK and not m.has_spin_lock():
        raise bpf_error(errno.EINVAL, "BPF_F_LOCK on a map without a bpf_spin_lock in its value")


def copy_key(ctx, m, ukey):
    """__bpf_copy_key: key_size bytes, or None for key-less maps (a pointer there is EINVAL)."""
    if m.key_size:
        return ctx.read(ukey, m.key_size)
    if ukey:
        raise bpf_error(errno.EINVAL, "this map type takes no key")
    return None


# -- MAP_CREATE ---------------------------------------------------------------

@command(uapi.BPF_MAP_CREATE)
def map_create(ctx):
    a = ctx.attr
    task = ctx.task
    token_flag = a.map_flags & uapi.BPF_F_TOKEN_FD
    a.map_flags &= ~uapi.BPF_F_TOKEN_FD
    if a.btf_vmlinux_value_type_id:
        if a.map_type != uapi.BPF_MAP_TYPE_STRUCT_OPS or a.btf_key_type_id or a.btf_value_type_id:
            raise bpf_error(errno.EINVAL, "btf_vmlinux_value_type_id is for struct_ops maps")
    elif a.btf_key_type_id and not a.btf_value_type_id:
        raise bpf_error(errno.EINVAL, "btf_key_type_id without btf_value_type_id")
    if a.map_type not in (uapi.BPF_MAP_TYPE_BLOOM_FILTER, uapi.BPF_MAP_TYPE_ARENA) and a.map_extra:
        raise bpf_error(errno.EINVAL, "map_extra is for bloom filter and arena maps")
    mode = get_file_flag(a.map_flags)
    if a.map_flags & uapi.BPF_F_NUMA_NODE:
        node = a.numa_node if a.numa_node < 1 << 31 else a.numa_node - (1 << 32)
        if node != NUMA_NO_NODE and not (0 <= node < NR_NODE_IDS):
            raise bpf_error(errno.EINVAL, "numa_node %d is not online" % node)
    profile = ctx.kernel.profile
    entry = MAP_TYPES.get(a.map_type)
    if entry is None or not profile.knows_map_type(a.map_type):
        raise bpf_error(errno.EINVAL, "unknown map type %d%s" % (
            a.map_type, "" if entry is None else " in %s (%s)" % (profile.version, uapi.map_type_name(a.map_type))))
    entry.ops.alloc_check(a, task)
    if a.map_ifindex:
        raise bpf_error(errno.EINVAL, "device offload is not modeled")
    if token_flag:
        ctx.fdget("map_token_fd")
        raise bpf_error(errno.EINVAL, "BPF tokens are not modeled")  # pragma: no cover (no token objects)
    if (not profile.unpriv_check_at_entry and ctx.kernel.sysctl["kernel.unprivileged_bpf_disabled"]
            and not task.bpf_capable()):
        raise bpf_error(errno.EPERM, "unprivileged BPF is disabled (kernel.unprivileged_bpf_disabled)")
    if entry.privilege == NET:
        if not (task.net_capable() if profile.net_admin == "bpf_net_capable" else task.capable(CAP_NET_ADMIN)):
            raise bpf_error(errno.EPERM, "%s maps need %s" % (
                uapi.map_type_name(a.map_type), "CAP_NET_ADMIN or CAP_SYS_ADMIN" if profile.net_admin ==
                "bpf_net_capable" else "CAP_NET_ADMIN (CAP_SYS_ADMIN does not do in %s)" % profile.version))
    elif entry.privilege != UNPRIV and not task.bpf_capable():
        raise bpf_error(errno.EPERM, "%s maps need CAP_BPF" % uapi.map_type_name(a.map_type))
    m = entry.ops.map_alloc(ctx.kernel, a, task)
    m.map_flags &= ~BPF_F_ACCESS  # the type may add flags (devmap adds BPF_F_RDONLY_PROG)
    try:
        off, n = uapi.attr_field("map_name")
        m.name = obj_name_cpy(ctx.raw[off:off + n])
        if a.btf_key_type_id or a.btf_value_type_id or a.btf_vmlinux_value_type_id:
            btf = ctx.fdget("btf_fd").obj  # btf_get_by_fd: EBADF, or EINVAL for another kind of fd
            if btf.kernel_btf:
                raise bpf_error(errno.EACCES, "btf_fd names the kernel's own BTF")
            m.btf = btf  # map->btf: the map holds it from here on (dropped by bpf_map_free)
            btf.hold(m)
            if a.btf_value_type_id:
                m.check_btf(task, btf, a.btf_key_type_id, a.btf_value_type_id)
            m.btf_key_type_id = a.btf_key_type_id
            m.btf_value_type_id = a.btf_value_type_id
            m.btf_vmlinux_value_type_id = a.btf_vmlinux_value_type_id
        if a.excl_prog_hash:
            if a.excl_prog_hash_size != SHA256_DIGEST_SIZE:
                raise bpf_error(errno.EINVAL, "excl_prog_hash_size must be 32")
            m.excl_prog_hash = ctx.read(a.excl_prog_hash, SHA256_DIGEST_SIZE)
        elif a.excl_prog_hash_size:
            raise bpf_error(errno.EINVAL, "excl_prog_hash_size without excl_prog_hash")
        ctx.kernel.memcg.charge_map(m)  # ENOMEM past Kernel(memory_limit=...)
    except OSError:
        m.free()  # drops what the map took (its BTF)
        raise
    ctx.kernel.register(m)
    m.hold(ctx.kernel)  # creation reference, dropped once the fd holds it
    try:
        return new_fd(task, m, mode)
    finally:
        m.release(ctx.kernel)


# -- element commands ---------------------------------------------------------

@command(uapi.BPF_MAP_LOOKUP_ELEM)
def map_lookup_elem(ctx):
    a = ctx.attr
    if a.flags & ~ELEM_LOCK:
        raise bpf_error(errno.EINVAL, "unknown lookup flags")
    f, m = map_get(ctx)
    need(f, m, FMODE_READ)
    check_lock_flag(m, a.flags)
    key = copy_key(ctx, m, a.key)
    if m.map_type == uapi.BPF_MAP_TYPE_BLOOM_FILTER:  # the value is what is looked for
        m.peek_value(ctx.read(a.value, m.user_value_size))
        return 0
    value = m.lookup_sys(key, a.flags)
    ctx.write(a.value, value)
    return 0


@command(uapi.BPF_MAP_UPDATE_ELEM)
def map_update_elem(ctx):
    a = ctx.attr
    f, m = map_get(ctx)
    need(f, m, FMODE_WRITE)
    check_lock_flag(m, a.flags)
    key = copy_key(ctx, m, a.key)
    value = ctx.read(a.value, m.user_value_size)
    m.update_sys(ctx.task, key, value, a.flags)
    return 0


@command(uapi.BPF_MAP_DELETE_ELEM)
def map_delete_elem(ctx):
    a = ctx.attr
    f, m = map_get(ctx)
    need(f, m, FMODE_WRITE)
    key = copy_key(ctx, m, a.key)
    m.delete(key)
    return 0


@command(uapi.BPF_MAP_GET_NEXT_KEY)
def map_get_next_key(ctx):
    a = ctx.attr
    f, m = map_get(ctx)
    need(f, m, FMODE_READ)
    key = copy_key(ctx, m, a.key) if a.key else None
    nxt = m.get_next_key(key)
    ctx.write(a.next_key, nxt)
    return 0


@command(uapi.BPF_MAP_LOOKUP_AND_DELETE_ELEM)
def map_lookup_and_delete_elem(ctx):
    a = ctx.attr
    if a.flags & ~ELEM_LOCK:
        raise bpf_error(errno.EINVAL, "unknown flags")
    f, m = map_get(ctx)
    need(f, m, FMODE_READ | FMODE_WRITE)
    check_lock_flag(m, a.flags)
    key = copy_key(ctx, m, a.key)
    if m.map_type not in ctx.kernel.profile.lookup_and_delete_types:
        raise bpf_error(ENOTSUPP, "%s does not serve lookup-and-delete of %s maps" % (
            ctx.kernel.profile.version, m.type_name()))
    value = m.lookup_and_delete_sys(key, a.flags)
    ctx.write(a.value, value)
    return 0


@command(uapi.BPF_MAP_FREEZE)
def map_freeze(ctx):
    f, m = map_get(ctx)
    if m.map_type == uapi.BPF_MAP_TYPE_STRUCT_OPS or m.record:
        raise bpf_error(ENOTSUPP, "this map cannot be frozen")
    for check in ctx.kernel.profile.freeze_checks:  # this version's checks, in its order
        FREEZE_CHECKS[check](ctx, f, m)
    m.frozen = True
    return 0


def _freeze_write_perm(ctx, f, m):
    need(f, m, FMODE_WRITE)


def _freeze_write_active(ctx, f, m):
    if m.writecnt:
        raise bpf_error(errno.EBUSY, "a writable mapping of the map is alive")


def _freeze_frozen(ctx, f, m):
    if m.frozen:
        raise bpf_error(errno.EBUSY, "already frozen")


def _freeze_bpf_capable(ctx, f, m):
    if not ctx.task.bpf_capable():
        raise bpf_error(errno.EPERM, "MAP_FREEZE needs CAP_BPF in %s" % ctx.kernel.profile.version)


FREEZE_CHECKS = {"write_perm": _freeze_write_perm, "write_active": _freeze_write_active, "frozen": _freeze_frozen,
                 "bpf_capable": _freeze_bpf_capable}


# -- batch commands (bpf_map_do_batch) --------------------------------------------

def _batch(ctx, has_read, has_write):
    f, m = map_get(ctx, "batch.map_fd")
    if has_read:
        need(f, m, FMODE_READ)
    if has_write:
        need(f, m, FMODE_WRITE)
    return m


@command(uapi.BPF_MAP_LOOKUP_BATCH)
def map_lookup_batch(ctx):
    return _batch(ctx, True, False).lookup_batch(ctx, ctx.attr.batch)


@command(uapi.BPF_MAP_LOOKUP_AND_DELETE_BATCH)
def map_lookup_and_delete_batch(ctx):
    return _batch(ctx, True, True).lookup_and_delete_batch(ctx, ctx.attr.batch)


@command(uapi.BPF_MAP_UPDATE_BATCH)
def map_update_batch(ctx):
    return _batch(ctx, False, True).update_batch(ctx, ctx.attr.batch)


@command(uapi.BPF_MAP_DELETE_BATCH)
def map_delete_batch(ctx):
    return _batch(ctx, False, True).delete_batch(ctx, ctx.attr.batch)
