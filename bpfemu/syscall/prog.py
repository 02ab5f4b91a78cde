"""The program commands of bpf(2) (the program half of the kernel's syscall.c): BPF_PROG_LOAD.

:func:`prog_load` hands the copied-in attr to :func:`bpfemu.prog.load.bpf_prog_load` (the checks of
``bpf_prog_load()`` in the kernel's order, then the verifier) through :class:`LoadCtx`, the caller's view
the program side needs: capabilities, user memory, the fd resolver, the kernel's BTF. A verified program
becomes a kernel object (:class:`bpfemu.prog.prog.BpfProg`: an id, the references on its maps) and the
caller gets a read-write fd to it.
"""
import ctypes
import errno

from ..errors import bpf_error
from ..objects import FMODE_READ, FMODE_WRITE, fdget
from ..prog.core import NotEmulated
from ..prog.fixups import dump_subprog_calls, patcher, rewrite
from ..prog.load import LoadContext, bpf_prog_load
from ..prog.prog import pack_insns
from ..prog.test_run import bpf_prog_test_run, check_test_run_attr
from .common import check_uarg_tail_zero, new_fd, obj_name_cpy
from .info import info_of
from .table import COMMANDS, command
from .. import profiles, uapi

_CAPS = {"bpf": "bpf_capable", "perfmon": "perfmon_capable", "net_admin": "net_capable"}


class LoadCtx(LoadContext):
    """bpf_prog_load's view of the syscall in flight (see :class:`bpfemu.prog.load.LoadContext`)."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.task = ctx.task
        self.unprivileged_bpf_disabled = ctx.kernel.sysctl["kernel.unprivileged_bpf_disabled"]
        self.jit_enabled = ctx.kernel.sysctl["net.core.bpf_jit_enable"]
        self.profile = ctx.kernel.profile

    def capable(self, name):
        t = self.task
        if name == "sys_admin":
            from ..caps import CAP_SYS_ADMIN
            return t.capable(CAP_SYS_ADMIN)
        return getattr(t, _CAPS[name])()

    def read(self, addr, n):
        return self.ctx.read(addr, n)

    def write(self, addr, data):
        self.ctx.write(addr, data)

    def read_str(self, addr, maxlen):
        """strncpy_from_user: bytes up to the NUL (at most ``maxlen``), EFAULT only for what it must read."""
        out = b""
        while len(out) < maxlen:
            step = min(maxlen - len(out), 4096 - (addr + len(out)) % 4096)
            chunk = self.ctx.read(addr + len(out), step)
            nul = chunk.find(b"\0")
            if nul >= 0:
                return out + chunk[:nul]
            out += chunk
        return out

    def map_of_fd(self, fd):
        if not 0 <= fd <= 0x7fffffff:
            return errno.EBADF
        try:
            return fdget(self.task, fd, "map").obj
        except OSError as e:
            return e.errno

    def obj_name_cpy(self, raw):
        return obj_name_cpy(raw)

    def token_of_fd(self, fd):
        fdget(self.task, fd, "token")
        raise bpf_error(errno.EINVAL, "BPF tokens are not modeled")  # pragma: no cover (no token objects)

    def btf_of_fd(self, fd):
        """The parsed types (``bpfemu.btf.Btf``) of the BTF object behind ``fd`` (EBADF, EINVAL as fdget);
        the object is kept as the program's BTF (``prog_btf``)."""
        obj = fdget(self.task, fd, "btf").obj
        self.prog_btf = obj
        return obj.btf

    prog_btf = None

    @property
    def kernel_btf(self):
        """The kernel's BTF, loaded on first use by the verifier (a callable the verifier calls): this
        kernel's own (btf id 1), the one its maps' kptr fields and attach ids refer to."""
        vmlinux = self.ctx.kernel.btf_vmlinux
        return lambda: vmlinux.btf


@command(uapi.BPF_PROG_LOAD)
def prog_load(ctx):
    lctx = LoadCtx(ctx)
    # (what the version's PROG_LOAD reads is what it may write back: no log_true_size before 6.4)
    size = min(ctx.size, ctx.kernel.profile.attr_end(COMMANDS[uapi.BPF_PROG_LOAD]))
    prog, res = bpf_prog_load(ctx.attr, lctx, uattr_size=size, uattr=ctx.uattr)
    prog.created_by_uid = ctx.task.uid
    prog.header_size = ctx.kernel.profile.size("bpf_prog")
    clock = getattr(ctx.kernel, "clock", None)
    if clock is not None:   # aux->load_time: ktime_get_boottime_ns() at load
        prog.load_time = clock.ktime_get_boot_ns()
    _keep_btf_info(ctx, prog, lctx, res)
    prog.publish(ctx.kernel)
    prog.hold(ctx.kernel)  # the creation reference, dropped once the fd holds it
    try:
        return new_fd(ctx.task, prog, FMODE_READ | FMODE_WRITE)
    finally:
        prog.release(ctx.kernel)


def _keep_btf_info(ctx, prog, lctx, res):
    """What bpf_check leaves in prog->aux of the program's BTF: the BTF object (held by the program), its
    func_info and its line_info, as OBJ_GET_INFO_BY_FD gives them back."""
    env = getattr(res, "env", None)
    if lctx.prog_btf is None or env is None or getattr(env, "prog_btf", None) is None:
        return
    prog.btf_obj = lctx.prog_btf
    prog.func_info = list(env.func_info or [])
    prog.line_info = [tuple(li) for li in (getattr(env, "line_info", None) or [])]   # as check_btf_line read them


# -- OBJ_GET_INFO_BY_FD of a program ------------------------------------------------------------------

PROG_INFO_SIZE = ctypes.sizeof(uapi.bpf_prog_info)
PROG_INFO_MIN = uapi.offsetofend("attach_btf_id", uapi.bpf_prog_info)


@info_of("prog")
def prog_get_info(ctx, prog):
    """bpf_prog_get_info_by_fd, field by field in the kernel's order.

    The emulator verifies as a kernel with the JIT on (kfunc calls, tail calls with bpf2bpf calls) but
    translates no machine code: ``jited_prog_len`` is 0 and no JIT image is copied, ``nr_jited_ksyms`` and
    ``nr_jited_func_lens`` count the functions (one per subprogram of a multi-function program) with
    made-up kernel addresses and zero lengths, and ``nr_jited_line_info`` is 0. The xlated program is the
    loaded one with each map's ld_imm64 naming the map by id (``bpf_insn_prepare_dump``); the kernel's own is
    after its rewrites (helper call addresses, inlined helpers, context access conversions, ...), which the
    emulator does not make: its ``xlated_prog_len`` is the loaded length. ``nr_prog_tags`` is 1 (the
    program's tag) where the kernel's JIT gives one tag per subprogram."""
    a = ctx.attr
    uinfo = a.info.info
    info_len = a.info.info_len
    check_uarg_tail_zero(ctx.mem.read, uinfo, PROG_INFO_MIN, info_len)
    info_len = min(info_len, PROG_INFO_SIZE)
    buf = bytearray(PROG_INFO_SIZE)
    buf[:info_len] = ctx.read(uinfo, info_len)
    info = uapi.bpf_prog_info.from_buffer(buf)
    info.type = prog.type
    info.id = prog.id
    off = uapi.bpf_prog_info.tag.offset
    buf[off:off + 8] = prog.tag
    info.load_time = prog.load_time
    info.created_by_uid = prog.created_by_uid
    info.gpl_compatible = 1 if prog.gpl_compatible else 0
    off = uapi.bpf_prog_info.name.offset
    buf[off:off + uapi.BPF_OBJ_NAME_LEN] = prog.name.ljust(uapi.BPF_OBJ_NAME_LEN, b"\0")
    ulen = min(info.nr_map_ids, len(prog.maps))
    info.nr_map_ids = len(prog.maps)
    for i in range(ulen):
        ctx.write(info.map_ids + 4 * i, prog.maps[i].id.to_bytes(4, "little"))
    # set_info_rec_size
    for n, c, size in (("nr_func_info", "func_info_rec_size", 8), ("nr_line_info", "line_info_rec_size", 16),
                       ("nr_jited_line_info", "jited_line_info_rec_size", 8)):
        if (getattr(info, n) or getattr(info, c)) and getattr(info, c) != size:
            raise bpf_error(errno.EINVAL, "%s must be %d" % (c, size))
    info.func_info_rec_size, info.line_info_rec_size, info.jited_line_info_rec_size = 8, 16, 8
    info.run_time_ns, info.run_cnt, info.recursion_misses = prog.run_time_ns, prog.run_cnt, 0
    info.verified_insns = prog.verified_insns
    if prog.btf_obj is not None:
        info.btf_id = prog.btf_obj.id
    if not ctx.task.bpf_capable():
        info.jited_prog_len = info.xlated_prog_len = 0
        info.nr_jited_ksyms = info.nr_jited_func_lens = 0
        info.nr_func_info = info.nr_line_info = info.nr_jited_line_info = 0
        _done(ctx, uinfo, buf, info_len)
        return 0
    ulen = info.xlated_prog_len
    info.xlated_prog_len = 8 * len(_xlated(prog)[0])
    if ulen:
        dump = pack_insns(_dump_insns(prog))
        ctx.write(info.xlated_prog_insns, dump[:min(ulen, len(dump))])
    info.jited_prog_len = 0
    nfuncs = max(1, len(prog.stack_depth)) if len(prog.stack_depth) > 1 else 1
    ulen = info.nr_jited_ksyms
    info.nr_jited_ksyms = nfuncs
    for i in range(min(ulen, nfuncs)):
        ctx.write(info.jited_ksyms + 8 * i, _ksym_addr(prog, i).to_bytes(8, "little"))
    ulen = info.nr_jited_func_lens
    info.nr_jited_func_lens = nfuncs
    for i in range(min(ulen, nfuncs)):
        ctx.write(info.jited_func_lens + 4 * i, (0).to_bytes(4, "little"))
    info.attach_btf_id = prog.attach_btf_id
    if prog.attach_btf_id and getattr(ctx.kernel, "btf_vmlinux", None) is not None:
        info.attach_btf_obj_id = ctx.kernel.btf_vmlinux.id   # the kernel's BTF (module BTFs are not modelled)
    where = _xlated(prog)[1]
    ulen = info.nr_func_info
    info.nr_func_info = len(prog.func_info)
    for i in range(min(ulen, len(prog.func_info))):
        off_, tid = prog.func_info[i]
        off_ = where[off_] if off_ < len(where) else off_
        ctx.write(info.func_info + 8 * i, off_.to_bytes(4, "little") + tid.to_bytes(4, "little"))
    ulen = info.nr_line_info
    info.nr_line_info = len(prog.line_info)
    for i in range(min(ulen, len(prog.line_info))):
        li = prog.line_info[i]
        li = (where[li[0]] if li[0] < len(where) else li[0],) + tuple(li[1:])
        ctx.write(info.line_info + 16 * i, b"".join(v.to_bytes(4, "little") for v in li))
    info.nr_jited_line_info = 0
    ulen = info.nr_prog_tags
    info.nr_prog_tags = 1
    if ulen:
        ctx.write(info.prog_tags, prog.tag)
    _done(ctx, uinfo, buf, info_len)
    return 0


def _done(ctx, uinfo, buf, info_len):
    ctx.write(uinfo, bytes(buf[:info_len]))
    ctx.put("info.info_len", info_len)


def _ksym_addr(prog, i):
    """A kernel-like address for the i-th function of a program (bpf_prog_ksym): the emulator has no image."""
    return 0xffffffffc0000000 + (prog.id << 16) + (i << 8)


def _xlated(prog):
    """(insns, where): the program after the verifier's machine-independent rewrites
    (:func:`bpfemu.prog.fixups.rewrite`), computed once."""
    x = getattr(prog, "_xlated_cache", None)
    if x is None:
        state = getattr(prog, "fixup_state", None)
        if state is None:   # not verified here: as loaded
            x = (list(prog.insns), list(range(len(prog.insns))))
        else:
            kernel = getattr(prog, "kernel", None)
            profile = kernel.profile if kernel is not None else profiles.get()   # its struct offsets
            x = rewrite(prog.insns, state.seen, state.bpf_capable, patcher(prog.type, state, profile))
        prog._xlated_cache = x
    return x


def _dump_insns(prog):
    """bpf_insn_prepare_dump: the xlated program; a ld_imm64 of a map fd or map value names the map by id
    (src_reg BPF_PSEUDO_MAP_FD or BPF_PSEUDO_MAP_VALUE, the offset in the second half)."""
    out, where = _xlated(prog)
    out = dump_subprog_calls(out) if getattr(prog, "fixup_state", None) is not None else list(out)
    for i, m in getattr(prog, "insn_maps", {}).items():
        c, d, s, o, _imm = out[where[i]]
        out[where[i]] = (c, d, {5: 1, 6: 2}.get(s, s), o, m.id)
    return out


# -- BPF_PROG_TEST_RUN (BPF_PROG_RUN) -----------------------------------------------------------------

@command(uapi.BPF_PROG_TEST_RUN)
def prog_test_run(ctx):
    """bpf_prog_test_run (syscall.c): the ctx pointer/size pairs, then the prog fd (EBADF, EINVAL for
    another kind of fd), then the type's test_run (ENOTSUPP for a type without one). No capability is
    needed. Something the emulator does not model (a helper without an implementation) fails the run with
    EINVAL, saying what."""
    check_test_run_attr(ctx.attr)
    prog = ctx.fdget("test.prog_fd").obj
    try:
        return bpf_prog_test_run(prog, ctx)
    except NotEmulated as e:
        raise bpf_error(errno.EINVAL, "%s (in program %r)" % (e, prog.name.decode("latin-1"))) from None


# -- BPF_ENABLE_STATS -----------------------------------------------------------------------------------------

BPF_STATS_RUN_TIME = 0


class BpfStats:
    """The file BPF_ENABLE_STATS hands out (anon inode "bpf-stats"): while one is open, program runs are
    counted (run_cnt, run_time_ns in fdinfo and prog info); closing the last fd of it turns that off again."""

    kind = "stats"

    def __init__(self, kernel):
        self.kernel = kernel
        self.refs = 0

    def hold(self, holder):
        if not self.refs:
            self.kernel.stats_enabled += 1  # static_key_slow_inc
        self.refs += 1

    def release(self, holder):
        self.refs -= 1
        if not self.refs:
            self.kernel.stats_enabled -= 1  # bpf_stats_release

    def show_fdinfo(self):
        return []


@command(uapi.BPF_ENABLE_STATS)
def enable_stats(ctx):
    """bpf_enable_stats: CAP_SYS_ADMIN (EPERM), then the type (only BPF_STATS_RUN_TIME, else EINVAL)."""
    from ..caps import CAP_SYS_ADMIN
    if not ctx.task.capable(CAP_SYS_ADMIN):
        raise bpf_error(errno.EPERM, "BPF_ENABLE_STATS needs CAP_SYS_ADMIN")
    if ctx.attr.enable_stats.type != BPF_STATS_RUN_TIME:
        raise bpf_error(errno.EINVAL, "unknown stats type %d" % ctx.attr.enable_stats.type)
    return new_fd(ctx.task, BpfStats(ctx.kernel), FMODE_READ)


# -- BPF_PROG_BIND_MAP ----------------------------------------------------------------------------------------

@command(uapi.BPF_PROG_BIND_MAP)
def prog_bind_map(ctx):
    """bpf_prog_bind_map: flags must be 0 (EINVAL), then the program and the map fds; the map joins the
    program's used maps (held while the program lives, listed in its info's map_ids) unless it is there."""
    if ctx.attr.prog_bind_map.flags:
        raise bpf_error(errno.EINVAL, "prog_bind_map.flags must be 0")
    prog = ctx.fdget("prog_bind_map.prog_fd").obj
    m = ctx.fdget("prog_bind_map.map_fd").obj
    if any(u is m for u in prog.maps):
        return 0
    m.hold(prog)
    prog.maps.append(m)
    return 0


# -- BPF_PROG_STREAM_READ_BY_FD -------------------------------------------------------------------------------

@command(uapi.BPF_PROG_STREAM_READ_BY_FD)
def prog_stream_read(ctx):
    """bpf_prog_stream_read: the program, then the stream (BPF_STDOUT 1 or BPF_STDERR 2, else ENOENT), then
    a length above INT_MAX (EINVAL); copies out and consumes up to stream_buf_len bytes of the stream, and
    returns how many (EFAULT only when none could be copied)."""
    a = ctx.attr.prog_stream_read
    prog = ctx.fdget("prog_stream_read.prog_fd").obj
    stream = prog.streams.get(a.stream_id)
    if stream is None:
        raise bpf_error(errno.ENOENT, "no stream %d" % a.stream_id)
    if a.stream_buf_len > 0x7FFFFFFF:
        raise bpf_error(errno.EINVAL, "stream_buf_len above INT_MAX")
    n = min(len(stream), a.stream_buf_len)
    if n:
        ctx.write(a.stream_buf, bytes(stream[:n]))
        del stream[:n]
    return n
