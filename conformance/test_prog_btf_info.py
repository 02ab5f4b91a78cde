"""BPF_PROG_LOAD with a program BTF: func_info and line_info records, good and bad (check_btf_func_early,
check_btf_func, check_btf_line), the record sizes the kernel writes back, and what OBJ_GET_INFO_BY_FD gives
back (btf_id, func_info, line_info) on both backends.

Each case loads a small socket filter (one or two subprograms) with a BTF holding ``int main(void)`` and
``int sub(void)``; the expected errno, the cause line of the log and the written-back record sizes are the
host's (6.18).
"""
import ctypes
import errno
import struct

import pytest

from bpfemu import uapi as u
from bpfemu.btf import Builder
from bpfemu.testing.support import btf_load


def insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


MOV_R0_0 = insn(0xB7)
EXIT = insn(0x95)
CALL_SUB = insn(0x85, src=1, imm=1)   # a bpf2bpf call of the instruction after next
LD_IMM64 = insn(0x18, imm=1) + insn(0)
ONE = MOV_R0_0 + EXIT
TWO = CALL_SUB + EXIT + MOV_R0_0 + EXIT   # subprograms at 0 and 2
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


# name: (insns, func_info bytes, rec size, count, line_info bytes, rec size, count,
#        expected errno, cause line, written-back {func|line: rec size})
CASES = {
    "none": (ONE, b"", 8, 0, b"", 16, 0, 0, "", {}),
    "one func": (ONE, finfo((0, 3)), 8, 1, b"", 16, 0, 0, "", {}),
    "two funcs": (TWO, finfo((0, 3), (2, 4)), 8, 2, b"", 16, 0, 0, "", {}),
    "func rec size 4": (ONE, finfo((0, 3)), 4, 1, b"", 16, 0, errno.EINVAL, "invalid func info rec size 4", {}),
    "func rec size 6": (ONE, finfo((0, 3), size=8), 6, 1, b"", 16, 0, errno.EINVAL,
                        "invalid func info rec size 6", {}),
    "func rec size 256": (ONE, finfo((0, 3), size=256), 256, 1, b"", 16, 0, errno.EINVAL,
                          "invalid func info rec size 256", {}),
    "func rec 12, zero tail": (ONE, finfo((0, 3), size=12), 12, 1, b"", 16, 0, 0, "", {}),
    "func rec 12, nonzero tail": (ONE, finfo((0, 3), size=12, tail=b"\1"), 12, 1, b"", 16, 0, errno.E2BIG,
                                  "nonzero tailing record in func info", {"func": 8}),
    "first insn_off not 0": (TWO, finfo((1, 3), (2, 4)), 8, 2, b"", 16, 0, errno.EINVAL,
                             "nonzero insn_off 1 for the first func info record", {}),
    "insn_off not increasing": (TWO, finfo((0, 3), (0, 4)), 8, 2, b"", 16, 0, errno.EINVAL,
                                "same or smaller insn offset (0) than previous func info record (0)", {}),
    "type id not a func": (ONE, finfo((0, 2)), 8, 1, b"", 16, 0, errno.EINVAL, "invalid type id 2 in func info", {}),
    "type id out of range": (ONE, finfo((0, 99)), 8, 1, b"", 16, 0, errno.EINVAL,
                             "invalid type id 99 in func info", {}),
    "fewer funcs than subprogs": (TWO, finfo((0, 3)), 8, 1, b"", 16, 0, errno.EINVAL,
                                  "number of funcs in func_info doesn't match number of subprogs", {}),
    "func at the wrong insn": (TWO, finfo((0, 3), (3, 4)), 8, 2, b"", 16, 0, errno.EINVAL,
                               "func_info BTF section doesn't match subprog layout in BPF program", {}),
    "lines": (TWO, finfo((0, 3), (2, 4)), 8, 2, linfo(0, 1, 2, 3), 16, 4, 0, "", {}),
    "line rec size 12": (ONE, finfo((0, 3)), 8, 1, linfo(0, size=16), 12, 1, errno.EINVAL, "", {}),
    "line rec 20, zero tail": (ONE, finfo((0, 3)), 8, 1, linfo(0, size=20), 20, 1, 0, "", {}),
    "line rec 20, nonzero tail": (ONE, finfo((0, 3)), 8, 1, linfo(0, size=20, tail=b"\7"), 20, 1, errno.E2BIG,
                                  "nonzero tailing record in line_info", {"line": 16}),
    "line past the program": (ONE, finfo((0, 3)), 8, 1, linfo(0, 2), 16, 2, errno.EINVAL,
                              "Invalid line_info[1].insn_off:2 (prev_offset:0 prog->len:2)", {}),
    "lines not increasing": (ONE, finfo((0, 3)), 8, 1, linfo(0, 0), 16, 2, errno.EINVAL,
                             "Invalid line_info[1].insn_off:0 (prev_offset:0 prog->len:2)", {}),
    "line on a zero opcode": (WIDE, finfo((0, 3)), 8, 1, linfo(0, 1), 16, 2, errno.EINVAL,
                              "Invalid insn code at line_info[1].insn_off", {}),
    "bad line_off": (ONE, finfo((0, 3)), 8, 1, linfo(0, line_off=9999), 16, 1, errno.EINVAL,
                     "Invalid line_info[0].line_off or .file_name_off", {}),
    "no line for func#1": (TWO, finfo((0, 3), (2, 4)), 8, 2, linfo(0, 3), 16, 2, errno.EINVAL,
                           "missing bpf_line_info for func#1", {}),
    "lines for func#0 only": (TWO, finfo((0, 3), (2, 4)), 8, 2, linfo(0, 1), 16, 2, errno.EINVAL,
                              "missing bpf_line_info for 1 funcs starting from func#1", {}),
    "first line not at 0": (ONE, finfo((0, 3)), 8, 1, linfo(1), 16, 1, errno.EINVAL,
                            "missing bpf_line_info for func#0", {}),
    "lines without func_info": (ONE, b"", 8, 0, linfo(0, 1), 16, 2, 0, "", {}),
}


class Load:
    """A PROG_LOAD attr with the program BTF, func_info and line_info, its buffers kept alive."""

    def __init__(self, proc, case):
        insns, fi, frec, fcnt, li, lrec, lcnt = case[:7]
        self.btf_fd = btf_load(proc, BTF)
        self.ib = ctypes.create_string_buffer(insns, len(insns))
        self.lic = ctypes.create_string_buffer(b"GPL")
        self.fib = ctypes.create_string_buffer(fi, max(len(fi), 1))
        self.lib = ctypes.create_string_buffer(li, max(len(li), 1))
        self.log = ctypes.create_string_buffer(1 << 16)
        self.attr = u.make_attr(
            prog_type=u.BPF_PROG_TYPE_SOCKET_FILTER, insns=ctypes.addressof(self.ib), insn_cnt=len(insns) // 8,
            license=ctypes.addressof(self.lic), log_level=1, log_size=1 << 16, log_buf=ctypes.addressof(self.log),
            prog_btf_fd=self.btf_fd, func_info=ctypes.addressof(self.fib), func_info_rec_size=frec,
            func_info_cnt=fcnt, line_info=ctypes.addressof(self.lib), line_info_rec_size=lrec, line_info_cnt=lcnt)
        self.frec, self.lrec = frec, lrec

    def __call__(self, proc):
        try:
            return proc.bpf(u.BPF_PROG_LOAD, self.attr), 0
        except OSError as e:
            return -1, e.errno

    def cause(self):
        """The last line before the statistics (some messages have no newline: the statistics follow on
        their line, in both kernels)."""
        text = self.log.value.decode()
        text = text[:text.rfind("processed ")] if "processed " in text else text
        lines = [ln for ln in text.splitlines() if ln]
        return lines[-1] if lines else ""

    def written_back(self):
        put = {}
        if self.attr.prog_load.func_info_rec_size != self.frec:
            put["func"] = self.attr.prog_load.func_info_rec_size
        if self.attr.prog_load.line_info_rec_size != self.lrec:
            put["line"] = self.attr.prog_load.line_info_rec_size
        return put


@pytest.mark.parametrize("name", sorted(CASES))
def test_func_and_line_info_records(proc, name):
    case = CASES[name]
    ld = Load(proc, case)
    fd, e = ld(proc)
    try:
        assert (e, ld.cause() if e else "", ld.written_back()) == case[7:]
    finally:
        if fd >= 0:
            proc.close(fd)
        proc.close(ld.btf_fd)


def _info(proc, fd, nr_func=0, nr_line=0):
    info = u.bpf_prog_info()
    fib = (ctypes.c_uint32 * (2 * max(nr_func, 1)))()
    lib = (ctypes.c_uint32 * (4 * max(nr_line, 1)))()
    info.nr_func_info, info.func_info_rec_size, info.func_info = nr_func, 8 if nr_func else 0, ctypes.addressof(fib)
    info.nr_line_info, info.line_info_rec_size, info.line_info = nr_line, 16 if nr_line else 0, ctypes.addressof(lib)
    a = u.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info), "info.info": ctypes.addressof(info)})
    proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, a)
    return info, list(fib), list(lib)


def _btf_id(proc, btf_fd):
    from bpfemu.testing.support import btf_info
    return btf_info(proc, btf_fd)[0].id


def test_info_gives_back_the_btf_and_the_records(proc):
    ld = Load(proc, CASES["lines"])
    fd, e = ld(proc)
    assert e == 0
    try:
        info, _, _ = _info(proc, fd)
        assert info.btf_id == _btf_id(proc, ld.btf_fd)
        assert (info.nr_func_info, info.func_info_rec_size, info.nr_line_info, info.line_info_rec_size) == (2, 8, 4, 16)
        info, fi, li = _info(proc, fd, 2, 4)
        assert fi == [0, 3, 2, 4]
        assert li == [v for off in (0, 1, 2, 3) for v in (off, FILE, LINE, 1)]
        # the program holds its BTF: the id stays alive after the BTF fd is closed
        proc.close(ld.btf_fd)
        ld.btf_fd = -1
        a = u.make_attr(btf_id=info.btf_id)
        proc.close(proc.bpf(u.BPF_BTF_GET_FD_BY_ID, a))
    finally:
        proc.close(fd)
        if ld.btf_fd >= 0:
            proc.close(ld.btf_fd)


def test_info_record_sizes_must_be_the_kernels(proc):
    ld = Load(proc, CASES["one func"])
    fd, e = ld(proc)
    try:
        for field in ("func_info_rec_size", "line_info_rec_size", "jited_line_info_rec_size"):
            info = u.bpf_prog_info()
            setattr(info, field, 4)
            a = u.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info),
                               "info.info": ctypes.addressof(info)})
            with pytest.raises(OSError) as ei:
                proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, a)
            assert ei.value.errno == errno.EINVAL, field
    finally:
        proc.close(fd)
        proc.close(ld.btf_fd)


def test_a_program_without_btf_has_no_btf_id(proc):
    ld = Load(proc, CASES["none"])
    fd, e = ld(proc)
    try:
        info, _, _ = _info(proc, fd)
        assert (info.btf_id, info.nr_func_info, info.nr_line_info) == (0, 0, 0)
    finally:
        proc.close(fd)
        proc.close(ld.btf_fd)


def test_func_and_line_info_follow_the_rewritten_program(proc):
    # a division by a register gets three guard instructions before it: the records after it move by three
    insns = (insn(0xB7, imm=7) + insn(0xB7, dst=1, imm=3) + insn(0x3F, dst=0, src=1) +   # r0 /= r1
             CALL_SUB + EXIT + MOV_R0_0 + EXIT)                                        # sub at 5
    case = (insns, finfo((0, 3), (5, 4)), 8, 2, linfo(0, 2, 3, 5), 16, 4)
    ld = Load(proc, case)
    fd, e = ld(proc)
    assert e == 0, ld.cause()
    try:
        info, fi, li = _info(proc, fd, 2, 4)
        assert info.xlated_prog_len == 8 * (7 + 3)
        assert fi == [0, 3, 8, 4]
        assert [li[4 * i] for i in range(4)] == [0, 2, 6, 8]
    finally:
        proc.close(fd)
        proc.close(ld.btf_fd)
