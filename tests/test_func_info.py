"""bpfemu.btf.func_info against the host's BPF_PROG_LOAD: func_info and line_info records, good and bad.

The emulator has no PROG_LOAD yet; these checks are what it will call. Each case loads a small socket
filter (one or two subprograms) on the host with func_info/line_info records, and runs the same records
through check_func_info_early, check_func_info and check_line_info: the errno, the verifier log when the
load fails (up to the statistics line the verifier adds), and the record size the kernel writes back must
agree.
"""
import ctypes
import errno
import struct

import pytest

from bpfemu import Host, uapi as u
from bpfemu.btf import Builder, BytesBuffer, VerifierLog, btf_parse
from bpfemu.btf.func_info import Subprog, check_func_info, check_func_info_early, check_line_info
from bpfemu.testing.backends import need_host
from bpfemu.testing.support import btf_load


def insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


MOV_R0_0 = insn(0xB7)  # BPF_ALU64 | BPF_MOV | BPF_K
EXIT = insn(0x95)
CALL_SUB = insn(0x85, src=1, imm=1)  # BPF_JMP | BPF_CALL, BPF_PSEUDO_CALL: the insn after next
LD_IMM64 = insn(0x18, imm=1) + insn(0)  # r0 = 1 (the second half has code 0)

ONE = MOV_R0_0 + EXIT
TWO = CALL_SUB + EXIT + MOV_R0_0 + EXIT  # subprograms at 0 and 2
WIDE = LD_IMM64 + EXIT

B = Builder().int("int", 4, signed=True).func_proto("int").func("main", 2).func("sub", 2)
FILE, LINE = B.add_str("prog.c"), B.add_str("return 0;")
BTF = B.blob()


def finfo(*recs, size=8, tail=b""):
    return b"".join(struct.pack("<II", off, tid).ljust(size - len(tail), b"\0") + tail for off, tid in recs)


def linfo(*offs, size=16, tail=b"", file_off=None, line_off=None):
    f = FILE if file_off is None else file_off
    ln = LINE if line_off is None else line_off
    return b"".join(struct.pack("<IIII", off, f, ln, 1).ljust(size - len(tail), b"\0") + tail for off in offs)


# name: (insns, subprogram starts, func_info bytes, rec size, count, line_info bytes, rec size, count)
CASES = {
    "none": (ONE, [0], b"", 8, 0, b"", 16, 0),
    "one func": (ONE, [0], finfo((0, 3)), 8, 1, b"", 16, 0),
    "two funcs": (TWO, [0, 2], finfo((0, 3), (2, 4)), 8, 2, b"", 16, 0),
    "func rec size 4": (ONE, [0], finfo((0, 3)), 4, 1, b"", 16, 0),
    "func rec size 6": (ONE, [0], finfo((0, 3), size=8), 6, 1, b"", 16, 0),
    "func rec size 256": (ONE, [0], finfo((0, 3), size=256), 256, 1, b"", 16, 0),
    "func rec 12, zero tail": (ONE, [0], finfo((0, 3), size=12), 12, 1, b"", 16, 0),
    "func rec 12, nonzero tail": (ONE, [0], finfo((0, 3), size=12, tail=b"\1"), 12, 1, b"", 16, 0),
    "first insn_off not 0": (TWO, [0, 2], finfo((1, 3), (2, 4)), 8, 2, b"", 16, 0),
    "insn_off not increasing": (TWO, [0, 2], finfo((0, 3), (0, 4)), 8, 2, b"", 16, 0),
    "type id not a func": (ONE, [0], finfo((0, 2)), 8, 1, b"", 16, 0),
    "type id out of range": (ONE, [0], finfo((0, 99)), 8, 1, b"", 16, 0),
    "type id negative": (ONE, [0], finfo((0, 0xFFFFFFFF)), 8, 1, b"", 16, 0),
    "fewer funcs than subprogs": (TWO, [0, 2], finfo((0, 3)), 8, 1, b"", 16, 0),
    "func at the wrong insn": (TWO, [0, 2], finfo((0, 3), (3, 4)), 8, 2, b"", 16, 0),
    "lines": (TWO, [0, 2], finfo((0, 3), (2, 4)), 8, 2, linfo(0, 1, 2, 3), 16, 4),
    "line rec size 12": (ONE, [0], finfo((0, 3)), 8, 1, linfo(0, size=16), 12, 1),
    "line rec 20, zero tail": (ONE, [0], finfo((0, 3)), 8, 1, linfo(0, size=20), 20, 1),
    "line rec 20, nonzero tail": (ONE, [0], finfo((0, 3)), 8, 1, linfo(0, size=20, tail=b"\7"), 20, 1),
    "line past the program": (ONE, [0], finfo((0, 3)), 8, 1, linfo(0, 2), 16, 2),
    "lines not increasing": (ONE, [0], finfo((0, 3)), 8, 1, linfo(0, 0), 16, 2),
    "line on a zero opcode": (WIDE, [0], finfo((0, 3)), 8, 1, linfo(0, 1), 16, 2),
    "bad line_off": (ONE, [0], finfo((0, 3)), 8, 1, linfo(0, line_off=9999), 16, 1),
    "bad file_name_off": (ONE, [0], finfo((0, 3)), 8, 1, linfo(0, file_off=9999), 16, 1),
    "no line for func#1": (TWO, [0, 2], finfo((0, 3), (2, 4)), 8, 2, linfo(0, 3), 16, 2),
    "lines for func#0 only": (TWO, [0, 2], finfo((0, 3), (2, 4)), 8, 2, linfo(0, 1), 16, 2),
    "first line not at 0": (ONE, [0], finfo((0, 3)), 8, 1, linfo(1), 16, 1),
}


class _Mem:
    def __init__(self, data):
        self.data = data

    def __call__(self, off, n):
        if off + n > len(self.data):
            raise OSError(errno.EFAULT, "past the records")
        return self.data[off:off + n]


def emulate(case):
    insns, starts, fi, frec, fcnt, li, lrec, lcnt = case
    btf = btf_parse(BTF)
    buf = BytesBuffer(1 << 16)
    log = VerifierLog(1, buf, 1 << 16)
    put = {}
    try:
        recs = check_func_info_early(btf, _Mem(fi), frec, fcnt, log, lambda n: put.setdefault("func", n))
        check_func_info(btf, recs, [Subprog(s, False, False) for s in starts], log)
        check_line_info(btf, _Mem(li), lrec, lcnt, insns, starts, log, lambda n: put.setdefault("line", n))
        err = 0
    except OSError as e:
        err = e.errno
    return err, buf.text(), put


def host_load(case):
    insns, starts, fi, frec, fcnt, li, lrec, lcnt = case
    h = Host()
    bfd = btf_load(h, BTF)
    ib = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    fib = ctypes.create_string_buffer(fi, max(len(fi), 1))
    lib = ctypes.create_string_buffer(li, max(len(li), 1))
    log = ctypes.create_string_buffer(1 << 16)
    a = u.make_attr(prog_type=u.BPF_PROG_TYPE_SOCKET_FILTER, insns=ctypes.addressof(ib), insn_cnt=len(insns) // 8,
                    license=ctypes.addressof(lic), log_level=1, log_size=1 << 16, log_buf=ctypes.addressof(log),
                    prog_btf_fd=bfd, func_info=ctypes.addressof(fib), func_info_rec_size=frec,
                    func_info_cnt=fcnt, line_info=ctypes.addressof(lib), line_info_rec_size=lrec,
                    line_info_cnt=lcnt)
    try:
        h.close(h.bpf(u.BPF_PROG_LOAD, a))
        err = 0
    except OSError as e:
        err = e.errno
    finally:
        h.close(bfd)
    put = {}
    if a.func_info_rec_size != frec:
        put["func"] = a.func_info_rec_size
    if a.line_info_rec_size != lrec:
        put["line"] = a.line_info_rec_size
    return err, log.value, put


@pytest.mark.parametrize("name", sorted(CASES))
def test_records_as_the_host_checks_them(name):
    need_host()
    want_err, want_log, want_put = host_load(CASES[name])
    got_err, got_log, got_put = emulate(CASES[name])
    assert (got_err, got_put) == (want_err, want_put)
    if want_err:
        # then the verifier's statistics line, which is the verifier's to write
        assert want_log.startswith(got_log) and want_log[len(got_log):].startswith(b"processed 0 insns")


def test_cases_reach_every_check():
    causes = {emulate(c)[1].decode().split(" ")[0] for c in CASES.values()}
    assert len(causes) >= 8
