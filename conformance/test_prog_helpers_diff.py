"""The skb and XDP helpers that test-run programs call, differential: each program runs through
BPF_PROG_TEST_RUN on the host and on the emulator (interpreted and translated), and everything the run gives
back must agree: errno, retval (the helper's return value or what the program computed), data_out and ctx_out.

Each case is a small program: r6 = ctx; a few stores put helper arguments on the stack; one or more helper
calls; r0 the last helper's return value (or a value read after it). The input frame is an Ethernet + IPv4 +
TCP packet with correct checksums.
"""
import struct

import pytest

from bpfemu import uapi as u
from bpfemu.testing.backends import real_profile
from bpfemu.prog.insn import *  # noqa: F401,F403 - builders read like the kernel's macros

from . import progrun
from .isa import make_sys


def _csum16(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b[:len(b) // 2 * 2]))
    if len(b) % 2:
        s += b[-1] << 8
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_frame(payload=b"hello, bpf world"):
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    tcp = struct.pack("!HHIIBBHHH", 1234, 80, 1, 0, 5 << 4, 0x18, 512, 0, 0) + payload
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _csum16(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 7, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum16(ip)) + ip[12:]
    return bytes(6 * [0x02]) + bytes(6 * [0x04]) + b"\x08\x00" + ip + tcp


FRAME = tcp_frame()


def stack_bytes(data, off=-16):
    """Stores putting ``data`` (a multiple of 4 bytes) at r10+off."""
    return [BPF_ST_MEM(BPF_W, BPF_REG_10, off + i, struct.unpack_from("<i", data, i)[0])
            for i in range(0, len(data), 4)]


def args(*regs):
    """r1 = ctx, then (reg, value) moves; a value 'fp-N' is the stack address r10-N."""
    out = [BPF_MOV64_REG(BPF_REG_1, BPF_REG_6)]
    for reg, v in regs:
        if isinstance(v, str):
            out += [BPF_MOV64_REG(reg, BPF_REG_10), BPF_ALU64_IMM(BPF_ADD, reg, -int(v[3:]))]
        else:
            out.append(BPF_MOV64_IMM(reg, v))
    return out


def call(fid, *regs):
    return args(*regs) + [BPF_EMIT_CALL(fid)]


def prog(*body, ret=None):
    """r6 = ctx; body; return r0 (or ``ret``, instructions computing r0)."""
    return [BPF_MOV64_REG(BPF_REG_6, BPF_REG_1)] + [i for part in body for i in part] + (ret or []) + [BPF_EXIT_INSN()]


F = u
R2, R3, R4, R5 = BPF_REG_2, BPF_REG_3, BPF_REG_4, BPF_REG_5
LOAD_WORD = [BPF_LDX_MEM(BPF_W, BPF_REG_0, BPF_REG_10, -16)]   # the first stack word after a load_bytes

TC = u.BPF_PROG_TYPE_SCHED_CLS
XDP = u.BPF_PROG_TYPE_XDP
SKF = u.BPF_PROG_TYPE_SOCKET_FILTER

CASES = {
    # bpf_skb_load_bytes: in range, across the end (-EFAULT), the stack left zeroed on failure
    "skb_load_bytes": (TC, prog(stack_bytes(bytes(8)), call(F.BPF_FUNC_skb_load_bytes, (R2, 26), (R3, "fp-16"),
                                                             (R4, 8)), ret=LOAD_WORD)),
    "skb_load_bytes_past_end": (TC, prog(stack_bytes(b"\xaa" * 8), call(F.BPF_FUNC_skb_load_bytes,
                                                                         (R2, len(FRAME) - 4), (R3, "fp-16"), (R4, 8)))),
    "skb_load_bytes_past_end_zeroes": (TC, prog(stack_bytes(b"\xaa" * 8), call(F.BPF_FUNC_skb_load_bytes,
                                       (R2, len(FRAME) - 4), (R3, "fp-16"), (R4, 8)), ret=LOAD_WORD)),
    "skb_load_bytes_relative_net": (TC, prog(stack_bytes(bytes(8)), call(F.BPF_FUNC_skb_load_bytes_relative,
                                    (R2, 12), (R3, "fp-16"), (R4, 8), (R5, 1)), ret=LOAD_WORD)),
    "skb_load_bytes_relative_mac": (TC, prog(stack_bytes(bytes(8)), call(F.BPF_FUNC_skb_load_bytes_relative,
                                    (R2, 0), (R3, "fp-16"), (R4, 8), (R5, 0)), ret=LOAD_WORD)),
    "skb_load_bytes_socket_filter": (SKF, prog(stack_bytes(bytes(8)), call(F.BPF_FUNC_skb_load_bytes, (R2, 0),
                                                                          (R3, "fp-16"), (R4, 4)), ret=LOAD_WORD)),
    "skb_store_bytes": (TC, prog(stack_bytes(b"\xde\xad\xbe\xef"), call(F.BPF_FUNC_skb_store_bytes, (R2, 6),
                                                                         (R3, "fp-16"), (R4, 4), (R5, 0)))),
    "skb_store_bytes_bad_flags": (TC, prog(stack_bytes(b"\xde\xad\xbe\xef"), call(F.BPF_FUNC_skb_store_bytes,
                                  (R2, 6), (R3, "fp-16"), (R4, 4), (R5, 8)))),
    "skb_store_bytes_past_end": (TC, prog(stack_bytes(b"\xde\xad\xbe\xef"), call(F.BPF_FUNC_skb_store_bytes,
                                 (R2, len(FRAME) - 2), (R3, "fp-16"), (R4, 4), (R5, 0)))),
    # the IPv4 header's TTL 64 -> 63 with the checksum fixed by l3_csum_replace (old/new 16-bit words)
    "l3_csum_replace": (TC, prog(stack_bytes(b"\x3f\x06\x00\x00"), call(F.BPF_FUNC_skb_store_bytes, (R2, 22),
                        (R3, "fp-16"), (R4, 1), (R5, 0)),
                        call(F.BPF_FUNC_l3_csum_replace, (R2, 24), (R3, 0x0640), (R4, 0x063f), (R5, 2)))),
    "l3_csum_replace_bad_size": (TC, prog(call(F.BPF_FUNC_l3_csum_replace, (R2, 24), (R3, 1), (R4, 2), (R5, 3)))),
    # the TCP port 80 -> 8080 with l4_csum_replace
    "l4_csum_replace": (TC, prog(stack_bytes(b"\x1f\x90\x00\x00"), call(F.BPF_FUNC_skb_store_bytes, (R2, 36),
                        (R3, "fp-16"), (R4, 2), (R5, 0)),
                        call(F.BPF_FUNC_l4_csum_replace, (R2, 50), (R3, 0x5000), (R4, 0x901f), (R5, 2)))),
    "l4_csum_replace_pseudo": (TC, prog(call(F.BPF_FUNC_l4_csum_replace, (R2, 50), (R3, 0x0100000a),
                                             (R4, 0x0200000a), (R5, 4 | 0x10)))),
    "csum_diff": (TC, prog(stack_bytes(b"\x01\x02\x03\x04\x05\x06\x07\x08"),
                           [BPF_MOV64_IMM(BPF_REG_1, 0), BPF_MOV64_IMM(BPF_REG_2, 0), BPF_MOV64_REG(BPF_REG_3, BPF_REG_10),
                            BPF_ALU64_IMM(BPF_ADD, BPF_REG_3, -16), BPF_MOV64_IMM(BPF_REG_4, 8),
                            BPF_MOV64_IMM(BPF_REG_5, 0x1234), BPF_EMIT_CALL(F.BPF_FUNC_csum_diff)])),
    "csum_diff_from": (TC, prog(stack_bytes(b"\x01\x02\x03\x04\x05\x06\x07\x08"),
                       [BPF_MOV64_REG(BPF_REG_1, BPF_REG_10), BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, -16),
                        BPF_MOV64_IMM(BPF_REG_2, 8), BPF_MOV64_IMM(BPF_REG_3, 0), BPF_MOV64_IMM(BPF_REG_4, 0),
                        BPF_MOV64_IMM(BPF_REG_5, 0x1234), BPF_EMIT_CALL(F.BPF_FUNC_csum_diff)])),
    "csum_diff_from_to": (TC, prog(stack_bytes(b"\x01\x02\x03\x04\xff\xee\xdd\xcc"),
                          [BPF_MOV64_REG(BPF_REG_1, BPF_REG_10), BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, -16),
                           BPF_MOV64_IMM(BPF_REG_2, 4), BPF_MOV64_REG(BPF_REG_3, BPF_REG_10),
                           BPF_ALU64_IMM(BPF_ADD, BPF_REG_3, -12), BPF_MOV64_IMM(BPF_REG_4, 4),
                           BPF_MOV64_IMM(BPF_REG_5, 0), BPF_EMIT_CALL(F.BPF_FUNC_csum_diff)])),
    "csum_diff_odd_size": (TC, prog(stack_bytes(b"\x11\x12\x13\x14\x15\x16\x17\x18"),
                           [BPF_MOV64_IMM(BPF_REG_1, 0), BPF_MOV64_IMM(BPF_REG_2, 0), BPF_MOV64_REG(BPF_REG_3, BPF_REG_10),
                            BPF_ALU64_IMM(BPF_ADD, BPF_REG_3, -16), BPF_MOV64_IMM(BPF_REG_4, 6),
                            BPF_MOV64_IMM(BPF_REG_5, 0), BPF_EMIT_CALL(F.BPF_FUNC_csum_diff)])),
    "skb_change_tail_grow": (TC, prog(call(F.BPF_FUNC_skb_change_tail, (R2, len(FRAME) + 20), (R3, 0)))),
    "skb_change_tail_shrink": (TC, prog(call(F.BPF_FUNC_skb_change_tail, (R2, 40), (R3, 0)))),
    "skb_change_tail_bad_flags": (TC, prog(call(F.BPF_FUNC_skb_change_tail, (R2, 40), (R3, 1)))),
    "skb_change_head": (TC, prog(call(F.BPF_FUNC_skb_change_head, (R2, 16), (R3, 0)))),
    "skb_pull_data": (TC, prog(call(F.BPF_FUNC_skb_pull_data, (R2, 30)))),
    "skb_pull_data_too_far": (TC, prog(call(F.BPF_FUNC_skb_pull_data, (R2, 4000)))),
    "skb_vlan_push": (TC, prog(call(F.BPF_FUNC_skb_vlan_push, (R2, 0x0081), (R3, 42)))),
    "skb_vlan_push_pop": (TC, prog(call(F.BPF_FUNC_skb_vlan_push, (R2, 0x0081), (R3, 42)),
                                   call(F.BPF_FUNC_skb_vlan_pop))),
    "skb_vlan_push_twice_pop": (TC, prog(call(F.BPF_FUNC_skb_vlan_push, (R2, 0x0081), (R3, 42)),
                                         call(F.BPF_FUNC_skb_vlan_push, (R2, 0xA888), (R3, 7)),
                                         call(F.BPF_FUNC_skb_vlan_pop))),
    "skb_vlan_push_thrice_pop_twice": (TC, prog(call(F.BPF_FUNC_skb_vlan_push, (R2, 0x0081), (R3, 1)),
                                                call(F.BPF_FUNC_skb_vlan_push, (R2, 0x0081), (R3, 2)),
                                                call(F.BPF_FUNC_skb_vlan_push, (R2, 0x0081), (R3, 3)),
                                                call(F.BPF_FUNC_skb_vlan_pop), call(F.BPF_FUNC_skb_vlan_pop))),
    "skb_vlan_push_bad_proto": (TC, prog(call(F.BPF_FUNC_skb_vlan_push, (R2, 0x0008), (R3, 42)))),
    "redirect_tc": (TC, prog([BPF_MOV64_IMM(BPF_REG_1, 1), BPF_MOV64_IMM(BPF_REG_2, 0),
                              BPF_EMIT_CALL(F.BPF_FUNC_redirect)])),
    "redirect_tc_bad_flags": (TC, prog([BPF_MOV64_IMM(BPF_REG_1, 1), BPF_MOV64_IMM(BPF_REG_2, 4),
                                        BPF_EMIT_CALL(F.BPF_FUNC_redirect)])),
    "get_hash_recalc": (TC, prog(call(F.BPF_FUNC_get_hash_recalc))),
    "set_hash": (TC, prog(call(F.BPF_FUNC_set_hash, (R2, 0x1234567)), call(F.BPF_FUNC_get_hash_recalc))),
    # fib lookup: the params' family and ifindex decide (a test run's netns has only lo)
    "fib_lookup_short": (XDP, prog(stack_bytes(bytes(64), -64), call(F.BPF_FUNC_fib_lookup, (R2, "fp-64"), (R3, 8),
                                                                         (R4, 0)))),
    "fib_lookup_family": (XDP, prog(stack_bytes(bytes(64), -64), call(F.BPF_FUNC_fib_lookup, (R2, "fp-64"),
                                                                          (R3, 64), (R4, 0)))),
    "fib_lookup_bad_flags": (XDP, prog(stack_bytes(bytes(64), -64), call(F.BPF_FUNC_fib_lookup, (R2, "fp-64"),
                                                                             (R3, 64), (R4, 1 << 20)))),
    "fib_lookup_no_dev": (XDP, prog(stack_bytes(b"\x02" + bytes(7) + b"\x07" + bytes(55), -64),
                                    call(F.BPF_FUNC_fib_lookup, (R2, "fp-64"), (R3, 64), (R4, 0)))),
    # XDP
    "xdp_adjust_head_pull": (XDP, prog(call(F.BPF_FUNC_xdp_adjust_head, (R2, 14)))),
    "xdp_adjust_head_push": (XDP, prog(call(F.BPF_FUNC_xdp_adjust_head, (R2, -32)))),
    "xdp_adjust_head_too_far": (XDP, prog(call(F.BPF_FUNC_xdp_adjust_head, (R2, -4096)))),
    "xdp_adjust_head_past_end": (XDP, prog(call(F.BPF_FUNC_xdp_adjust_head, (R2, len(FRAME))))),
    "xdp_adjust_tail_shrink": (XDP, prog(call(F.BPF_FUNC_xdp_adjust_tail, (R2, -10)))),
    "xdp_adjust_tail_grow": (XDP, prog(call(F.BPF_FUNC_xdp_adjust_tail, (R2, 20)))),
    "xdp_adjust_tail_too_far": (XDP, prog(call(F.BPF_FUNC_xdp_adjust_tail, (R2, 8192)))),
    "xdp_adjust_meta": (XDP, prog(call(F.BPF_FUNC_xdp_adjust_meta, (R2, -8)))),
    "xdp_adjust_meta_unaligned": (XDP, prog(call(F.BPF_FUNC_xdp_adjust_meta, (R2, -6)))),
    "xdp_get_buff_len": (XDP, prog(call(F.BPF_FUNC_xdp_get_buff_len))),
    "xdp_load_bytes": (XDP, prog(stack_bytes(bytes(8)), call(F.BPF_FUNC_xdp_load_bytes, (R2, 30), (R3, "fp-16"),
                                                              (R4, 8)), ret=LOAD_WORD)),
    "xdp_load_bytes_past_end": (XDP, prog(stack_bytes(bytes(8)), call(F.BPF_FUNC_xdp_load_bytes,
                                (R2, len(FRAME) - 2), (R3, "fp-16"), (R4, 8)))),
    "xdp_store_bytes": (XDP, prog(stack_bytes(b"\x99\x88\x77\x66"), call(F.BPF_FUNC_xdp_store_bytes, (R2, 0),
                                                                          (R3, "fp-16"), (R4, 4)))),
    "xdp_redirect": (XDP, prog([BPF_MOV64_IMM(BPF_REG_1, 1), BPF_MOV64_IMM(BPF_REG_2, 0),
                                BPF_EMIT_CALL(F.BPF_FUNC_redirect)])),
    "xdp_redirect_fallback": (XDP, prog([BPF_MOV64_IMM(BPF_REG_1, 1), BPF_MOV64_IMM(BPF_REG_2, 9),
                                         BPF_EMIT_CALL(F.BPF_FUNC_redirect)])),
}


# the flow hash is jhash with a seed each kernel draws at boot: compared as "not 0" only
RANDOM_RETVAL = {"get_hash_recalc"}


def run(backend, ptype, insns, random_retval=False, version=None):
    s, done = make_sys(backend, version)
    try:
        try:
            fd = progrun.load(s, insns, ptype)
        except OSError as e:
            return ("load", e.errno)
        ctx = None
        r = progrun.test_run(s, fd, data=FRAME, ctx=ctx, data_out_len=len(FRAME) + 512)
        out = r.data_out[:r.data_size_out] if not r.errno else b""
        retval = bool(r.retval) if random_retval else r.retval
        return (r.errno, retval, out, r.data_size_out if not r.errno else None)
    finally:
        done()


@pytest.mark.parametrize("name", sorted(CASES))
def test_helper_agrees_with_the_host(name):
    ptype, insns = CASES[name]
    host = run("host", ptype, insns, name in RANDOM_RETVAL)
    assert host[0] != "load", "the host refused the program: errno %s" % (host[1],)
    version = real_profile().version   # the emulator as the version of the real kernel it is compared with
    for emu in ("emu-interp", "emu-jit"):
        got = run(emu, ptype, insns, name in RANDOM_RETVAL, version)
        assert got == host, "%s: %s\n  host %s" % (emu, got, host)
