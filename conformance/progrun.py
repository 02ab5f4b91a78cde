"""Load a program and test-run it through a backend's ``bpf()``: the same code for the host and the emulator.

``load(sys, insns, prog_type)`` is BPF_PROG_LOAD (the verifier log comes with the OSError when loading
fails), ``test_run(sys, fd, ...)`` is BPF_PROG_TEST_RUN and returns a :class:`Result` (``errno`` 0 on
success, otherwise what the call failed with, and the attr fields and buffers as the call left them).

``sys`` is anything with ``bpf(cmd, attr)`` and ``close(fd)``: ``bpfemu.Host()``, a host task, or an emulated
task (which verifies, translates and runs the program through its own syscall layer).
"""
import ctypes
from typing import NamedTuple

from bpfemu import uapi as u
from bpfemu.prog.insn import encode

LOG_SIZE = 1 << 20


def load(sys, insns, prog_type, expected_attach_type=0, prog_flags=0, log_level=0):
    """BPF_PROG_LOAD of ``insns`` (builders or Insn slots); returns the fd. On failure the OSError's
    ``log`` attribute holds the verifier log (loading again with log_level 1 to get it)."""
    raw = encode(insns)
    ib = ctypes.create_string_buffer(raw, len(raw))
    lic = ctypes.create_string_buffer(b"GPL")
    logb = ctypes.create_string_buffer(LOG_SIZE if log_level else 1)
    a = u.make_attr(prog_type=prog_type, insns=ctypes.addressof(ib), insn_cnt=len(raw) // 8,
                    license=ctypes.addressof(lic), expected_attach_type=expected_attach_type,
                    prog_flags=prog_flags)
    if log_level:
        a.log_buf, a.log_size, a.log_level = ctypes.addressof(logb), LOG_SIZE, log_level
    try:
        return sys.bpf(u.BPF_PROG_LOAD, a)
    except OSError as e:
        if not log_level:
            try:
                fd = load(sys, insns, prog_type, expected_attach_type, prog_flags, log_level=1)
            except OSError as e2:
                e.log = getattr(e2, "log", "")
                raise e
            sys.close(fd)
            e.log = ""
            raise
        e.log = logb.value.decode(errors="replace")
        raise


class Result(NamedTuple):
    """What BPF_PROG_TEST_RUN left: errno (0 on success), the attr fields and the output buffers."""

    errno: int
    retval: int
    data_out: bytes
    data_size_out: int
    ctx_out: bytes
    ctx_size_out: int
    duration: int

    def __repr__(self):
        return ("Result(errno=%d, retval=%#x, data_size_out=%d, ctx_size_out=%d, duration=%d, data_out=%s..., "
                "ctx_out=%s...)" % (self.errno, self.retval, self.data_size_out, self.ctx_size_out, self.duration,
                                   self.data_out[:32].hex(), self.ctx_out[:32].hex()))


def test_run(sys, fd, data=None, ctx=None, repeat=0, data_size_out=None, data_out_len=None, ctx_size_out=None,
             ctx_out_len=None, flags=0, cpu=0, batch_size=0, data_size_in=None, ctx_size_in=None, no_data_out=False,
             no_ctx_out=None):
    """BPF_PROG_TEST_RUN. ``data``/``ctx`` are the input bytes (None: NULL pointer, size 0 unless given).
    The output buffers are ``data_out_len`` (default len(data) + 512) and ``ctx_out_len`` bytes, prefilled
    with 0xee; ``data_size_out``/``ctx_size_out`` are the sizes announced in attr (default: the buffer's
    length; ctx_out is passed only when ctx is, unless ``no_ctx_out`` says otherwise)."""
    din = ctypes.create_string_buffer(bytes(data), max(len(data), 1)) if data is not None else None
    n_out = data_out_len if data_out_len is not None else (len(data) if data is not None else 0) + 512
    dout = ctypes.create_string_buffer(b"\xee" * n_out, max(n_out, 1))
    cin = ctypes.create_string_buffer(bytes(ctx), max(len(ctx), 1)) if ctx is not None else None
    want_ctx_out = (ctx is not None) if no_ctx_out is None else not no_ctx_out
    c_out = ctx_out_len if ctx_out_len is not None else (len(ctx) if ctx is not None else 0) + 64
    cout = ctypes.create_string_buffer(b"\xee" * c_out, max(c_out, 1)) if want_ctx_out else None
    fields = {"test.prog_fd": fd, "test.repeat": repeat, "test.flags": flags, "test.cpu": cpu,
              "test.batch_size": batch_size}
    if din is not None:
        fields["test.data_in"] = ctypes.addressof(din)
        fields["test.data_size_in"] = len(data) if data_size_in is None else data_size_in
    elif data_size_in is not None:
        fields["test.data_size_in"] = data_size_in
    if not no_data_out:
        fields["test.data_out"] = ctypes.addressof(dout)
        fields["test.data_size_out"] = n_out if data_size_out is None else data_size_out
    if cin is not None:
        fields["test.ctx_in"] = ctypes.addressof(cin)
        fields["test.ctx_size_in"] = len(ctx) if ctx_size_in is None else ctx_size_in
    elif ctx_size_in is not None:
        fields["test.ctx_size_in"] = ctx_size_in
    if cout is not None:
        fields["test.ctx_out"] = ctypes.addressof(cout)
        fields["test.ctx_size_out"] = c_out if ctx_size_out is None else ctx_size_out
    a = u.make_attr(**fields)
    try:
        sys.bpf(u.BPF_PROG_TEST_RUN, a)
        e = 0
    except OSError as ex:
        e = ex.errno
    t = a.test
    return Result(e, t.retval, dout.raw[:n_out], t.data_size_out, cout.raw[:c_out] if cout is not None else b"",
                  t.ctx_size_out, t.duration)
