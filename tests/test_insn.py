"""The instruction encoding: builders, encode/decode, and the host kernel loading what they build."""
import ctypes

import pytest

from bpfemu import uapi
from bpfemu.prog.insn import *  # noqa: F401,F403 - the builders read like the kernel's macros
from bpfemu.prog import insn as I


def test_encode_decode_round_trip():
    prog = [
        BPF_MOV64_IMM(BPF_REG_0, -1),
        BPF_LD_IMM64(BPF_REG_1, 0x1122334455667788),
        BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_10, -4),
        BPF_ATOMIC_OP(BPF_DW, BPF_CMPXCHG, BPF_REG_10, BPF_REG_1, -8),
        BPF_JMP_IMM(BPF_JSLE, BPF_REG_0, -5, 1),
        BPF_EXIT_INSN(),
    ]
    raw = encode(prog)
    assert len(raw) == 7 * 8 == insn_count(prog) * 8
    assert decode(raw) == list(flatten(prog))
    # dst in the low nibble, src in the high one; off s16 and imm s32 little-endian
    assert raw[:8] == bytes([0xb7, 0x00, 0, 0, 0xff, 0xff, 0xff, 0xff])
    assert raw[8:24] == bytes([0x18, 0x01, 0, 0, 0x88, 0x77, 0x66, 0x55, 0, 0, 0, 0, 0x44, 0x33, 0x22, 0x11])
    assert raw[40:48] == bytes([0xd5, 0x00, 0x01, 0x00, 0xfb, 0xff, 0xff, 0xff])


def test_decode_rejects_partial_slot():
    with pytest.raises(ValueError):
        decode(b"\0" * 9)


def test_macros_match_kernel_opcodes():
    assert BPF_EXIT_INSN().code == 0x95
    assert BPF_EMIT_CALL(1) == I.Insn(0x85, 0, 0, 0, 1)
    assert BPF_CALL_REL(3).src_reg == BPF_PSEUDO_CALL
    assert BPF_LD_MAP_FD(BPF_REG_1, 5)[0] == I.Insn(0x18, 1, 1, 0, 5)
    assert BPF_STX_XADD(BPF_W, BPF_REG_1, BPF_REG_2, 0).code == 0xc3
    assert BPF_LDX_MEMSX(BPF_B, 1, 2, 0).code == 0x91
    assert BPF_JMP32_A(7).code == 0x06
    assert BPF_ENDIAN(BPF_TO_BE, 1, 16) == I.Insn(0xdc, 1, 0, 0, 16)


def test_host_accepts_a_built_program():
    from bpfemu import host
    ok, why = host.available()
    if not ok:
        pytest.skip(why)
    prog = encode([BPF_MOV64_IMM(BPF_REG_0, 0), BPF_EXIT_INSN()])
    buf = ctypes.create_string_buffer(prog, len(prog))
    lic = ctypes.create_string_buffer(b"GPL")
    attr = uapi.make_attr(prog_type=uapi.BPF_PROG_TYPE_SOCKET_FILTER, insn_cnt=2,
                          insns=ctypes.addressof(buf), license=ctypes.addressof(lic))
    h = host.Host()
    fd = h.bpf(uapi.BPF_PROG_LOAD, attr)
    h.close(fd)
