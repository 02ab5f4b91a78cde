"""BPF_PROG_LOAD: the attr checks in the kernel's order, the log attributes and buffer modes, the new fd.

Every errno here was asked of the host (6.18); the order of the checks decides which errno wins, so
several tests combine two faults and expect the first one's errno.
"""
import ctypes
import errno
import hashlib
import struct

import pytest

from bpfemu import uapi as u
from bpfemu.prog.insn import (BPF_ALU64_IMM, BPF_EMIT_CALL, BPF_EXIT_INSN, BPF_JMP_IMM, BPF_MOV64_IMM,
                              BPF_ADD, BPF_JEQ)
from bpfemu.testing.support import addr, buf, err, fdinfo_value

RET0 = [BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN()]
NO_R0 = [BPF_EXIT_INSN()]  # R0 !read_ok: EACCES
SOCKET_FILTER = u.BPF_PROG_TYPE_SOCKET_FILTER
BPF_F_TEST_RND_HI32 = 1 << 2
BPF_LOG_FIXED = 8


def encode(insns):
    return b"".join(struct.pack("<BBhi", c, d | (s << 4), o, i) for c, d, s, o, i in insns)


class Load:
    """One PROG_LOAD attr with its buffers kept alive."""

    def __init__(self, insns=RET0, prog_type=SOCKET_FILTER, license=b"GPL", log_size=0, log_level=0, name=None,
                 **fields):
        raw = encode(insns)
        self.insns = buf(raw)
        self.license = buf(license + b"\0")
        self.log = buf(log_size) if log_size else None
        self.attr = u.make_attr(prog_type=prog_type, insn_cnt=len(raw) // 8, log_level=log_level,
                                log_size=log_size, **fields)
        self.attr.prog_load.insns = addr(self.insns)
        self.attr.prog_load.license = addr(self.license)
        self.attr.prog_load.log_buf = addr(self.log)
        if name is not None:
            ctypes.memmove(ctypes.addressof(self.attr) + type(self.attr.prog_load).prog_name.offset, name, len(name))

    def __call__(self, proc):
        return proc.bpf(u.BPF_PROG_LOAD, self.attr)

    def errno(self, proc):
        return err(self, proc)

    @property
    def text(self):
        return self.log.value.decode("latin-1") if self.log is not None else ""


def test_a_minimal_program_loads_and_its_fd_tells_type_tag_and_verified_insns(proc, profile):
    fd = Load()(proc)
    try:
        assert fdinfo_value(proc, fd, "prog_type") == str(SOCKET_FILTER)
        # the tag: the first 8 bytes of SHA-256 over the instructions (SHA-1 before 6.18; no map fd to zero here)
        assert fdinfo_value(proc, fd, "prog_tag") == hashlib.new(profile.prog_tag, encode(RET0)).digest()[:8].hex()
        assert fdinfo_value(proc, fd, "verified_insns") == "2"
        assert fdinfo_value(proc, fd, "memlock") == "4096"
        assert fdinfo_value(proc, fd, "prog_jited") == "1"
    finally:
        proc.close(fd)


def test_insn_cnt_zero_is_E2BIG_before_the_type_is_looked_at(proc):
    ld = Load(prog_type=0x7fff)
    ld.attr.prog_load.insn_cnt = 0
    assert ld.errno(proc) == errno.E2BIG


def test_unknown_prog_flags_come_first(proc):
    ld = Load(prog_flags=1 << 30)
    ld.attr.prog_load.insn_cnt = 0
    assert ld.errno(proc) == errno.EINVAL


def test_more_than_a_million_instructions_is_E2BIG(proc):
    ld = Load()
    ld.attr.prog_load.insn_cnt = 1000001
    assert ld.errno(proc) == errno.E2BIG


def test_unreadable_instructions_are_EFAULT_even_for_an_unknown_type(proc):
    ld = Load(prog_type=0x7fff)
    ld.attr.prog_load.insns = 8   # the NULL page
    assert ld.errno(proc) == errno.EFAULT


def test_unknown_program_type_is_EINVAL(proc):
    assert Load(prog_type=0x7fff).errno(proc) == errno.EINVAL


@pytest.mark.parametrize("name, want", [
    (b"ok_name.1", 0),
    (b"bad-name", errno.EINVAL),
    (b"x" * 16, errno.EINVAL),     # no NUL within the 16 bytes
    (b"x" * 15, 0),
])
def test_prog_name_rules(proc, name, want):
    ld = Load(name=name)
    e = ld.errno(proc)
    assert e == want


def test_log_attribute_rules(proc, profile):
    # a level without a buffer is accepted (nothing is written); the head log (6.1) wants all three, and
    # 128 bytes or more, and knows no BPF_LOG_FIXED
    ld = Load(log_level=1)
    if profile.verifier_log == "head":
        assert ld.errno(proc) == errno.EINVAL
        assert Load(log_level=1, log_size=127).errno(proc) == errno.EINVAL
        assert Load(log_level=1 | BPF_LOG_FIXED, log_size=4096).errno(proc) == errno.EINVAL
        proc.close(Load(log_level=1, log_size=128)(proc))
    else:
        proc.close(ld(proc))
    # a buffer without a level, a size without a buffer, a size too large: EINVAL
    ld = Load(log_size=64)
    assert ld.errno(proc) == errno.EINVAL
    ld = Load(log_level=1)
    ld.attr.prog_load.log_size = 64
    assert ld.errno(proc) == errno.EINVAL
    ld = Load(log_level=1, log_size=64)
    ld.attr.prog_load.log_size = 1 << 30
    assert ld.errno(proc) == errno.EINVAL
    # an unknown log level bit
    assert Load(log_level=1 << 5, log_size=64).errno(proc) == errno.EINVAL


def test_a_refused_program_gets_EACCES_and_the_cause_in_the_log(proc):
    ld = Load(NO_R0, log_level=1, log_size=4096)
    assert ld.errno(proc) == errno.EACCES
    assert "R0 !read_ok" in ld.text.splitlines()
    assert ld.text.endswith("processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 "
                            "peak_states 0 mark_read 0\n")


def test_a_level_one_log_of_a_program_that_loads_keeps_only_the_statistics(proc):
    ld = Load(log_level=1, log_size=4096)
    fd = ld(proc)
    proc.close(fd)
    assert ld.text == "processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 " \
                      "mark_read 0\n"


def test_level_two_traces_every_instruction(proc, profile):
    ld = Load([BPF_MOV64_IMM(0, 1), BPF_ALU64_IMM(BPF_ADD, 0, 2), BPF_EXIT_INSN()], log_level=2, log_size=8192)
    fd = ld(proc)
    proc.close(fd)
    lines = ld.text.splitlines()
    w = "_w" if profile.log_liveness_marks else ""   # kernels before 6.18 mark a written register
    assert "0: (b7) r0 = 1                        ; R0%s=1" % w in lines
    assert "1: (07) r0 += 2                       ; R0%s=3" % w in lines
    assert "2: (95) exit" in lines


def test_a_small_log_is_ENOSPC_rotating_keeps_the_end_fixed_keeps_the_start(proc, profile):
    full = Load(NO_R0, log_level=1, log_size=4096)
    assert full.errno(proc) == errno.EACCES
    text = full.text.encode()
    if profile.verifier_log == "head":  # (6.1) the start of the log, ENOSPC over the verdict, no log_true_size
        head = Load(NO_R0, log_level=1, log_size=128)
        assert head.errno(proc) == errno.ENOSPC
        assert head.log.value == text[:127]
        assert head.attr.prog_load.log_true_size == 0
        return
    rot = Load(NO_R0, log_level=1, log_size=32)
    assert rot.errno(proc) == errno.ENOSPC
    assert rot.log.value == text[-31:]
    fixed = Load(NO_R0, log_level=1 | BPF_LOG_FIXED, log_size=32)
    assert fixed.errno(proc) == errno.ENOSPC
    assert fixed.log.value == text[:31]
    # log_true_size: what the whole log needs, with its NUL
    assert rot.attr.prog_load.log_true_size == len(text) + 1
    assert fixed.attr.prog_load.log_true_size == len(text) + 1


def test_even_a_program_that_loads_fails_with_ENOSPC_when_its_log_does_not_fit(proc, profile):
    ld = Load(log_level=2, log_size=128 if profile.verifier_log == "head" else 16)
    assert ld.errno(proc) == errno.ENOSPC


def test_gpl_only_helpers_need_a_gpl_compatible_license(proc):
    # bpf_trace_printk (#6): GPL-only, and a base helper a (CAP_PERFMON) socket filter may call
    prog = [BPF_MOV64_IMM(1, 0), BPF_MOV64_IMM(2, 0), BPF_EMIT_CALL(6), BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN()]
    ld = Load(prog, license=b"Proprietary", log_level=1, log_size=4096)
    assert ld.errno(proc) == errno.EINVAL
    assert "cannot call GPL-restricted function from non-GPL compatible program" in ld.text.splitlines()


def test_jumps_out_of_range_and_unreachable_instructions(proc):
    ld = Load([BPF_JMP_IMM(BPF_JEQ, 1, 0, 5)] + RET0, log_level=1, log_size=4096)
    assert ld.errno(proc) == errno.EINVAL
    assert "jump out of range from insn 0 to 6" in ld.text.splitlines()
    ld = Load(RET0 + [BPF_MOV64_IMM(0, 1), BPF_EXIT_INSN()], log_level=1, log_size=4096)
    assert ld.errno(proc) == errno.EINVAL
    assert "unreachable insn 2" in ld.text.splitlines()


def test_the_program_holds_its_id_while_an_fd_is_open(proc):
    fd = Load()(proc)
    pid = int(fdinfo_value(proc, fd, "prog_id"))
    a = u.make_attr(prog_id=pid)
    fd2 = proc.bpf(u.BPF_PROG_GET_FD_BY_ID, a)
    assert fdinfo_value(proc, fd2, "prog_id") == str(pid)
    proc.close(fd)
    proc.close(fd2)


def test_info_of_a_program(proc, profile):
    from bpfemu.prog.insn import BPF_LD_MAP_FD
    from bpfemu.testing.support import array_map, map_id
    mfd = array_map(proc)
    prog = list(BPF_LD_MAP_FD(1, mfd)) + RET0
    fd = Load(prog, name=b"info_test")(proc)
    info = u.bpf_prog_info()
    ids = (ctypes.c_uint32 * 4)()
    xl = ctypes.create_string_buffer(8 * len(prog))
    info.nr_map_ids = 4
    info.map_ids = ctypes.addressof(ids)
    info.xlated_prog_len = len(xl)
    info.xlated_prog_insns = ctypes.addressof(xl)
    a = u.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info), "info.info": ctypes.addressof(info)})
    proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, a)
    assert info.type == SOCKET_FILTER
    assert bytes(info.name).rstrip(b"\0") == b"info_test"
    assert info.nr_map_ids == 1 and ids[0] == map_id(proc, mfd)
    assert info.verified_insns == 3   # ld_imm64 counts once
    assert info.gpl_compatible == 1
    # the tag ignores the map fd (both halves of the ld_imm64 imm are zeroed)
    zeroed = [tuple(prog[0])[:4] + (0,), tuple(prog[1])[:4] + (0,)] + [tuple(i) for i in RET0]
    assert bytes(info.tag) == hashlib.new(profile.prog_tag, encode(zeroed)).digest()[:8]
    # the xlated program names the map by id
    assert struct.unpack_from("<i", xl.raw, 4)[0] == ids[0]
    proc.close(fd)
    proc.close(mfd)


@pytest.mark.parametrize("key, max_entries, stored_as, want", [
    (0, 1, "st", 0),            # 4 zero bytes on the stack: STACK_ZERO
    (1, 2, "st", 0),            # an 8-aligned BPF_ST of a constant is recorded as a spill of it
    (1, 2, "spill", 0),          # a 4-byte spill of a known register
    (2, 2, "spill", errno.EACCES),  # out of range: the lookup may fail
])
def test_array_lookup_with_a_constant_key_needs_no_null_check(proc, profile, key, max_entries, stored_as, want):
    """(6.13: before it, the value of any array lookup may be NULL: profile.array_const_key_nonnull)"""
    if not profile.array_const_key_nonnull:
        want = errno.EACCES
    from bpfemu.prog.insn import (BPF_ATOMIC_OP, BPF_DW, BPF_LD_MAP_FD, BPF_MOV64_REG, BPF_REG_0, BPF_REG_1,
                                  BPF_REG_2, BPF_REG_10, BPF_ST_MEM, BPF_STX_MEM, BPF_W)
    from bpfemu.testing.support import array_map
    m = array_map(proc, max_entries=max_entries)
    store = ([BPF_ST_MEM(BPF_W, BPF_REG_10, -8, key)] if stored_as == "st" else
             [BPF_MOV64_IMM(BPF_REG_1, key), BPF_STX_MEM(BPF_W, BPF_REG_10, BPF_REG_1, -8)])
    prog = store + [BPF_MOV64_REG(BPF_REG_2, BPF_REG_10), BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, -8),
                    *BPF_LD_MAP_FD(BPF_REG_1, m), BPF_EMIT_CALL(u.BPF_FUNC_map_lookup_elem),
                    BPF_MOV64_IMM(BPF_REG_1, 1), BPF_ATOMIC_OP(BPF_DW, BPF_ADD, BPF_REG_0, BPF_REG_1, 0),
                    BPF_MOV64_IMM(BPF_REG_0, 0), BPF_EXIT_INSN()]
    ld = Load(prog, log_level=1, log_size=4096)
    e = ld.errno(proc)
    assert e == want
    if e:
        assert "R0 invalid mem access 'map_value_or_null'" in ld.text.splitlines()
    proc.close(m)
