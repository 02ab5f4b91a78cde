"""The bpf(2) command table: each command's facts, declared once.

One :class:`Command` per command of ``enum bpf_cmd`` that bpfemu knows::

    Command(BPF_MAP_LOOKUP_ELEM, last_field="flags",
            user_ptrs=[UserPtr("key", MapKey("map_fd"), IN),
                       UserPtr("value", MapValue("map_fd"), INOUT)],
            fds={"map_fd": Fd("map")})

- ``last_field``: the last attr field the command reads; the bytes after it must be zero (the kernel's
  ``CHECK_ATTR(BPF_<CMD>)``, EINVAL);
- ``user_ptrs``: the attr fields that hold user addresses, each with the rule for how many bytes the
  kernel may copy (:class:`Const`, :class:`Field`, :class:`Product`, :class:`MapKey`, :class:`CString`...),
  the direction (``IN`` copy_from_user, ``OUT`` copy_to_user, ``INOUT`` both), an optional condition
  (``when``) and what the buffer holds if it holds pointers in turn (``points_to``: a :class:`Struct`
  with pointer fields, a :class:`PtrArray`, or a :class:`ByKind` choice on the kind of an fd);
- ``fds``: the attr fields that hold fds, with the object kind(s) each must name and the errnos for a
  closed fd and for an fd of another kind (:class:`Fd`, read by ``ctx.fdget(field)``);
- ``returns_fd``: success returns a new fd;
- ``args``: attr fields a handler reads on every call, decoded in one go into ``ctx.args`` (a tuple in
  this order) from the copied-in attr.
- ``attr_out``: the scalar attr fields the command writes back (``next_id``, ``batch.count``...). Each is
  stored whole or not at all (put_user, and the kernel's copy_to_user of such a field, fault as one
  store on the host).

Who reads it: the syscall front (CHECK_ATTR, dispatch), the handlers (``ctx.fdget``), the host
backend's RPC (which of the caller's memory a child process needs for the call, and which it writes
back), the fuzzers (which fields are pointers and fds), ``tools/gen_docs.py`` and the tests that check
the emulator only touches the memory declared here.

A handler implements a declared command with ``@command(BPF_X)`` in ``syscall/<family>.py``; a
command declared without a handler answers EINVAL like every command bpfemu does not implement (its
declaration already serves the host backend). This module imports only the uapi, the limits and the
errno helper: the host backend reads it without loading the emulator.
"""
import errno
import struct

from .. import uapi as U
from ..limits import PAGE_SIZE, PATH_MAX, SHA256_DIGEST_SIZE

IN, OUT, INOUT = "in", "out", "inout"
KSYM_NAME_LEN = 512
BPF_LICENSE_LEN = 128  # char license[128] in bpf_prog_load
MAX_USED_MAPS = 64
TEST_RUN_GROWTH = 0x10000  # how much a test run's output may exceed its input (bpf_skb_change_tail's limit)


# -- length rules: how many bytes a pointer's buffer holds ---------------------------------------------
# A rule evaluates against an environment ``env`` with env.field(name) (an attr field, or a field of
# the enclosing struct for pointers inside a buffer), env.map_sizes(fd) ((key_size, user value size)
# of the map behind fd, or None) and env.kind(fd) ('map', 'prog', 'link', 'btf' or None). A rule that
# cannot be evaluated (the fd is not a map) gives None: the length is unknown.

class Length:
    cstring = False

    def eval(self, env):  # pragma: no cover - interface
        raise NotImplementedError


class Const(Length):
    def __init__(self, n):
        self.n = n

    def eval(self, env):
        return self.n

    def __repr__(self):
        return str(self.n)


class Field(Length):
    """The value of another field (``log_size``, ``test.data_size_in``)."""

    def __init__(self, name):
        self.name = name

    def eval(self, env):
        return env.field(self.name)

    def __repr__(self):
        return self.name


def _rule(x):
    return Const(x) if isinstance(x, int) else Field(x) if isinstance(x, str) else x


class _Combine(Length):
    op = sym = None

    def __init__(self, *terms):
        self.terms = [_rule(t) for t in terms]

    def eval(self, env):
        vals = [t.eval(env) for t in self.terms]
        return None if None in vals else self.op(vals)

    def __repr__(self):
        return "(%s)" % self.sym.join(map(repr, self.terms))


class Product(_Combine):
    """A product of fields and constants (``func_info_rec_size * func_info_cnt``)."""
    sym = " * "

    @staticmethod
    def op(vals):
        out = 1
        for v in vals:
            out *= v
        return out


class Sum(_Combine):
    sym = " + "
    op = staticmethod(sum)


class FirstNonzero(_Combine):
    """The first term that is not 0 (``data_size_out``, or what the kernel writes when it is 0)."""
    sym = " or "

    @staticmethod
    def op(vals):
        return next((v for v in vals if v), 0)


class Max(_Combine):
    sym = " max "
    op = staticmethod(max)


class Min(_Combine):
    sym = " min "
    op = staticmethod(min)


class MapKey(Length):
    """key_size of the map behind the fd in attr field ``fd_field``."""

    index, what = 0, "key_size"

    def __init__(self, fd_field):
        self.fd_field = fd_field

    def eval(self, env):
        sizes = env.map_sizes(env.field(self.fd_field))
        return None if sizes is None else sizes[self.index]

    def __repr__(self):
        return "%s(%s)" % (self.what, self.fd_field)


class MapValue(MapKey):
    """The value size a syscall copies for the map behind ``fd_field`` (bpf_map_value_size: per-CPU
    values for every possible CPU, 4 bytes for fd maps)."""

    index, what = 1, "value_size"


class CString(Length):
    """A NUL-terminated string of at most ``max_len`` bytes with its NUL (strncpy_from_user): the kernel
    reads up to the NUL, so a reader may stop at the first unreadable byte."""

    cstring = True

    def __init__(self, max_len):
        self.max_len = max_len

    def eval(self, env):
        return self.max_len

    def __repr__(self):
        return "string(<= %d)" % self.max_len


# -- what a buffer holds when it holds pointers in turn ---------------------------------------------

class Struct:
    """The buffer is a struct ``ctype`` whose fields ``ptrs`` point to more user memory (their length
    rules name fields of the struct)."""

    def __init__(self, ctype, ptrs):
        self.ctype, self.ptrs = ctype, ptrs


class PtrArray:
    """The buffer is an array of ``count`` user pointers, each to a buffer of ``each`` bytes."""

    def __init__(self, count, each, direction=IN):
        self.count, self.each, self.direction = _rule(count), each, direction


class ByKind:
    """What the buffer holds depends on the kind of object behind the fd in ``fd_field``."""

    def __init__(self, fd_field, **by_kind):
        self.fd_field, self.by_kind = fd_field, by_kind

    def choose(self, env):
        return self.by_kind.get(env.kind(env.field(self.fd_field)))


class When:
    """A pointer field used only when attr field ``field`` holds one of ``values`` (union members)."""

    def __init__(self, field, *values):
        self.field, self.values = field, frozenset(values)

    def __call__(self, env):
        return env.field(self.field) in self.values


class UserPtr:
    """An attr (or struct) field holding a user address: ``length`` bytes, copied in ``direction``."""

    def __init__(self, field, length, direction, when=None, points_to=None):
        self.field, self.length, self.direction = field, _rule(length), direction
        self.when, self.points_to = when, points_to

    def __repr__(self):
        return "UserPtr(%s, %r, %s)" % (self.field, self.length, self.direction)


class Fd:
    """An attr field holding an fd of ``kinds``: EBADF (``closed``) when it is not open, ``wrong``
    (EINVAL) when it names another kind of file."""

    def __init__(self, kinds, wrong=errno.EINVAL, closed=errno.EBADF):
        self.kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        self.wrong, self.closed = wrong, closed


# -- the commands --------------------------------------------------------------------------------------

_INT = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _unpacker(names):
    """A function raw attr -> tuple of the unsigned values of attr fields ``names`` (one struct unpack)."""
    fields = sorted((U.attr_field(n) + (i,) for i, n in enumerate(names)))
    fmt, at, order = "<", 0, []
    for off, size, i in fields:
        if off < at:
            raise ValueError("args %r overlap" % (names,))
        fmt += "%dx%s" % (off - at, _INT[size]) if off > at else _INT[size]
        at = off + size
        order.append(i)
    if order != sorted(order):
        raise ValueError("args %r must be in attr order" % (names,))
    return struct.Struct(fmt).unpack_from


class Command:
    """One command's declaration (see the module docstring); ``handler`` is set by @command."""

    def __init__(self, cmd, last_field, user_ptrs=(), fds=None, returns_fd=False, args=(), attr_out=()):
        self.cmd = cmd
        self.name = U.cmd_name(cmd)
        self.last_field = last_field
        self.attr_end = U.offsetofend(last_field)  # CHECK_ATTR: zero from here to the end of attr
        self.user_ptrs = list(user_ptrs)
        self.fds = dict(fds or {})
        self.fd_at = {name: U.attr_field(name) + (fd,) for name, fd in self.fds.items()}  # (offset, size, Fd)
        self.returns_fd = returns_fd
        self.args = tuple(args)
        self.unpack_args = _unpacker(self.args) if self.args else None
        self.attr_out = tuple(attr_out)
        self.attr_out_at = {name: U.attr_field(name) for name in self.attr_out}  # (offset, size)
        self.handler = None

    def ptr(self, field):
        return next(p for p in self.user_ptrs if p.field == field)

    def __repr__(self):
        return "<Command %s%s>" % (self.name, "" if self.handler else " (declared only)")


MAP_FD = Fd("map")
BATCH_PTRS = dict(
    in_batch=UserPtr("batch.in_batch", Max(MapKey("batch.map_fd"), 4), IN),  # a key, or a u32 bucket (hash)
    out_batch=UserPtr("batch.out_batch", Max(MapKey("batch.map_fd"), 4), OUT),
    keys_out=UserPtr("batch.keys", Product(MapKey("batch.map_fd"), "batch.count"), OUT),
    values_out=UserPtr("batch.values", Product(MapValue("batch.map_fd"), "batch.count"), OUT),
    keys_in=UserPtr("batch.keys", Product(MapKey("batch.map_fd"), "batch.count"), IN),
    values_in=UserPtr("batch.values", Product(MapValue("batch.map_fd"), "batch.count"), IN),
)
B = BATCH_PTRS
GET_NEXT_ID = dict(last_field="next_id", attr_out=["next_id"])
COUNT = ["batch.count"]
MAP_INFO = Struct(U.bpf_map_info, [UserPtr("hash", SHA256_DIGEST_SIZE, OUT)])
PROG_INFO = Struct(U.bpf_prog_info, [
    UserPtr("jited_prog_insns", "jited_prog_len", OUT),
    UserPtr("xlated_prog_insns", "xlated_prog_len", OUT),
    UserPtr("map_ids", Product("nr_map_ids", 4), OUT),
    UserPtr("jited_ksyms", Product("nr_jited_ksyms", 8), OUT),
    UserPtr("jited_func_lens", Product("nr_jited_func_lens", 4), OUT),
    UserPtr("func_info", Product("nr_func_info", "func_info_rec_size"), OUT),
    UserPtr("line_info", Product("nr_line_info", "line_info_rec_size"), OUT),
    UserPtr("jited_line_info", Product("nr_jited_line_info", "jited_line_info_rec_size"), OUT),
    UserPtr("prog_tags", Product("nr_prog_tags", U.BPF_TAG_SIZE), OUT),
])
BTF_INFO = Struct(U.bpf_btf_info, [UserPtr("btf", "btf_size", OUT), UserPtr("name", "name_len", OUT)])
KPROBE_MULTI = When("link_create.attach_type", U.BPF_TRACE_KPROBE_MULTI, U.BPF_TRACE_KPROBE_SESSION)
UPROBE_MULTI = When("link_create.attach_type", U.BPF_TRACE_UPROBE_MULTI, U.BPF_TRACE_UPROBE_SESSION)

TABLE = [
    Command(U.BPF_MAP_CREATE, "excl_prog_hash_size", returns_fd=True,
            user_ptrs=[UserPtr("excl_prog_hash", SHA256_DIGEST_SIZE, IN)],
            fds={"inner_map_fd": MAP_FD, "btf_fd": Fd("btf"), "value_type_btf_obj_fd": Fd("btf"),
                 "map_token_fd": Fd("token")}),
    Command(U.BPF_MAP_LOOKUP_ELEM, "flags", fds={"map_fd": MAP_FD}, args=("map_fd", "key", "value", "flags"),
            # a bloom filter's lookup reads the value it looks for: INOUT
            user_ptrs=[UserPtr("key", MapKey("map_fd"), IN), UserPtr("value", MapValue("map_fd"), INOUT)]),
    Command(U.BPF_MAP_UPDATE_ELEM, "flags", fds={"map_fd": MAP_FD}, args=("map_fd", "key", "value", "flags"),
            user_ptrs=[UserPtr("key", MapKey("map_fd"), IN), UserPtr("value", MapValue("map_fd"), IN)]),
    Command(U.BPF_MAP_DELETE_ELEM, "key", fds={"map_fd": MAP_FD}, args=("map_fd", "key"),
            user_ptrs=[UserPtr("key", MapKey("map_fd"), IN)]),
    Command(U.BPF_MAP_GET_NEXT_KEY, "next_key", fds={"map_fd": MAP_FD}, args=("map_fd", "key", "next_key"),
            user_ptrs=[UserPtr("key", MapKey("map_fd"), IN), UserPtr("next_key", MapKey("map_fd"), OUT)]),
    Command(U.BPF_MAP_LOOKUP_AND_DELETE_ELEM, "flags", fds={"map_fd": MAP_FD},
            args=("map_fd", "key", "value", "flags"),
            user_ptrs=[UserPtr("key", MapKey("map_fd"), IN), UserPtr("value", MapValue("map_fd"), OUT)]),
    Command(U.BPF_MAP_FREEZE, "map_fd", fds={"map_fd": MAP_FD}),
    Command(U.BPF_MAP_LOOKUP_BATCH, "batch.flags", fds={"batch.map_fd": MAP_FD}, attr_out=COUNT,
            user_ptrs=[B["in_batch"], B["out_batch"], B["keys_out"], B["values_out"]]),
    Command(U.BPF_MAP_LOOKUP_AND_DELETE_BATCH, "batch.flags", fds={"batch.map_fd": MAP_FD}, attr_out=COUNT,
            user_ptrs=[B["in_batch"], B["out_batch"], B["keys_out"], B["values_out"]]),
    Command(U.BPF_MAP_UPDATE_BATCH, "batch.flags", fds={"batch.map_fd": MAP_FD}, attr_out=COUNT,
            user_ptrs=[B["keys_in"], B["values_in"]]),
    Command(U.BPF_MAP_DELETE_BATCH, "batch.flags", fds={"batch.map_fd": MAP_FD}, attr_out=COUNT,
            user_ptrs=[B["keys_in"]]),
    # bpf_obj_pin/bpf_obj_get: bpf_fd_probe_obj answers EINVAL for a closed fd as for any other file
    Command(U.BPF_OBJ_PIN, "path_fd", user_ptrs=[UserPtr("pathname", CString(PATH_MAX), IN)],
            fds={"bpf_fd": Fd(("map", "prog", "link"), closed=errno.EINVAL),
                 "path_fd": Fd("dir", wrong=errno.ENOTDIR)}),
    Command(U.BPF_OBJ_GET, "path_fd", returns_fd=True, user_ptrs=[UserPtr("pathname", CString(PATH_MAX), IN)],
            fds={"path_fd": Fd("dir", wrong=errno.ENOTDIR)}),
    Command(U.BPF_PROG_GET_NEXT_ID, **GET_NEXT_ID),
    Command(U.BPF_MAP_GET_NEXT_ID, **GET_NEXT_ID),
    Command(U.BPF_BTF_GET_NEXT_ID, **GET_NEXT_ID),
    Command(U.BPF_LINK_GET_NEXT_ID, **GET_NEXT_ID),
    Command(U.BPF_PROG_GET_FD_BY_ID, "prog_id", returns_fd=True),
    Command(U.BPF_MAP_GET_FD_BY_ID, "open_flags", returns_fd=True),
    Command(U.BPF_BTF_GET_FD_BY_ID, "fd_by_id_token_fd", returns_fd=True, fds={"fd_by_id_token_fd": Fd("token")}),
    Command(U.BPF_LINK_GET_FD_BY_ID, "link_id", returns_fd=True),
    # bpf_obj_get_info_by_fd: a closed fd is EBADFD here
    Command(U.BPF_OBJ_GET_INFO_BY_FD, "info.info", attr_out=["info.info_len"],
            fds={"info.bpf_fd": Fd(("map", "prog", "link", "btf"), closed=errno.EBADFD)},
            user_ptrs=[UserPtr("info.info", Min("info.info_len", PAGE_SIZE), INOUT,
                               points_to=ByKind("info.bpf_fd", map=MAP_INFO, prog=PROG_INFO, btf=BTF_INFO))]),

    # Declared for the host backend; the emulator does not implement these yet (EINVAL).
    Command(U.BPF_PROG_LOAD, "keyring_id", returns_fd=True, attr_out=["log_true_size"], user_ptrs=[
        UserPtr("insns", Product("insn_cnt", 8), IN),
        UserPtr("license", CString(BPF_LICENSE_LEN), IN),
        UserPtr("log_buf", "log_size", INOUT),  # a rotating log is reversed in place: read back too
        UserPtr("func_info", Product("func_info_rec_size", "func_info_cnt"), IN),
        UserPtr("line_info", Product("line_info_rec_size", "line_info_cnt"), IN),
        # with fd_array_cnt the kernel copies the whole array; without, the entries the instructions name
        UserPtr("fd_array", Max(Product("fd_array_cnt", 4), MAX_USED_MAPS * 4), IN),
        UserPtr("core_relos", Product("core_relo_rec_size", "core_relo_cnt"), IN),
        UserPtr("signature", "signature_size", IN),
    ], fds={"prog_btf_fd": Fd("btf"), "attach_prog_fd": Fd(("prog", "btf")), "prog_token_fd": Fd("token")}),
    Command(U.BPF_BTF_LOAD, "btf_token_fd", returns_fd=True, attr_out=["btf_log_true_size"], user_ptrs=[
        UserPtr("btf", "btf_size", IN),
        UserPtr("btf_log_buf", "btf_log_size", INOUT),
    ], fds={"btf_token_fd": Fd("token")}),
    # bpf_test_finish writes the whole output when data_size_out is 0: the frame as the program left it, which
    # helpers may have grown (up to an skb of 64 KiB), or the flow keys; bpf_ctx_finish at most ctx_size_out
    Command(U.BPF_PROG_TEST_RUN, "test.batch_size",
            attr_out=["test.retval", "test.data_size_out", "test.ctx_size_out", "test.duration"], user_ptrs=[
        UserPtr("test.data_in", "test.data_size_in", IN),
        UserPtr("test.data_out", FirstNonzero("test.data_size_out", Sum("test.data_size_in", TEST_RUN_GROWTH)), OUT),
        # a syscall program's context is written back to ctx_in (bpf_prog_test_run_syscall)
        UserPtr("test.ctx_in", "test.ctx_size_in", INOUT),
        UserPtr("test.ctx_out", Max("test.ctx_size_out", "test.ctx_size_in"), OUT),
    ], fds={"test.prog_fd": Fd("prog")}),
    Command(U.BPF_ENABLE_STATS, "enable_stats.type", returns_fd=True),
    Command(U.BPF_PROG_BIND_MAP, "prog_bind_map.flags",
            fds={"prog_bind_map.prog_fd": Fd("prog"), "prog_bind_map.map_fd": MAP_FD}),
    Command(U.BPF_PROG_STREAM_READ_BY_FD, "prog_stream_read.prog_fd",
            user_ptrs=[UserPtr("prog_stream_read.stream_buf", "prog_stream_read.stream_buf_len", OUT)],
            fds={"prog_stream_read.prog_fd": Fd("prog")}),
    Command(U.BPF_LINK_CREATE, "link_create.uprobe_multi.pid", returns_fd=True, user_ptrs=[
        UserPtr("link_create.iter_info", "link_create.iter_info_len", IN,
                when=When("link_create.attach_type", U.BPF_TRACE_ITER)),
        UserPtr("link_create.kprobe_multi.syms", Product("link_create.kprobe_multi.cnt", 8), IN, when=KPROBE_MULTI,
                points_to=PtrArray("link_create.kprobe_multi.cnt", CString(KSYM_NAME_LEN))),
        UserPtr("link_create.kprobe_multi.addrs", Product("link_create.kprobe_multi.cnt", 8), IN, when=KPROBE_MULTI),
        UserPtr("link_create.kprobe_multi.cookies", Product("link_create.kprobe_multi.cnt", 8), IN,
                when=KPROBE_MULTI),
        UserPtr("link_create.uprobe_multi.path", CString(PATH_MAX), IN, when=UPROBE_MULTI),
        UserPtr("link_create.uprobe_multi.offsets", Product("link_create.uprobe_multi.cnt", 8), IN,
                when=UPROBE_MULTI),
        UserPtr("link_create.uprobe_multi.ref_ctr_offsets", Product("link_create.uprobe_multi.cnt", 8), IN,
                when=UPROBE_MULTI),
        UserPtr("link_create.uprobe_multi.cookies", Product("link_create.uprobe_multi.cnt", 8), IN,
                when=UPROBE_MULTI),
    ], fds={"link_create.prog_fd": Fd(("prog", "map"))}),
]
COMMANDS = {c.cmd: c for c in TABLE}


def command(cmd):
    """Decorator: ``fn(ctx)`` implements the declared command ``cmd`` (KeyError if it is not declared)."""

    def deco(fn):
        entry = COMMANDS[cmd]
        if entry.handler is not None:
            raise ValueError("%s has two handlers" % entry.name)
        entry.handler = fn
        return fn

    return deco
