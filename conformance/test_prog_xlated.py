"""What OBJ_GET_INFO_BY_FD gives back of a verified program, on both backends: ``xlated_prog_insns`` after
the verifier's rewrites (:mod:`bpfemu.prog.fixups`: dead code, division guards, context accesses of the
socket-buffer and XDP types, the tc unclone prologue, inlined array and hash lookups, LD_ABS), maps named by
id, and ``verified_insns`` as the statistics log counts them. Helper call immediates are masked: the host writes
kernel addresses there. Struct offsets come from the kernel BTF (tests needing it skip without one); the
expected sequences are the host's (6.18).
"""
import ctypes
import re

import pytest

from bpfemu import uapi as U
from bpfemu.prog import insn as I
from bpfemu.testing.support import array_map, map_id, need_insn, real_kernel_btf

SOCKET_FILTER = U.BPF_PROG_TYPE_SOCKET_FILTER
PRANDOM = 7   # bpf_get_prandom_u32: an unknown scalar in r0
AX = 11       # BPF_REG_AX, the verifier's scratch register


def load(proc, insns, log_level=0, fd_array=None, prog_type=SOCKET_FILTER):
    keep = []

    def buf(b):
        x = ctypes.create_string_buffer(bytes(b), max(len(b), 1))
        keep.append(x)
        return ctypes.addressof(x)
    raw = I.encode(insns)
    log = ctypes.create_string_buffer(1 << 16)
    f = dict(prog_type=prog_type, insns=buf(raw), insn_cnt=len(raw) // 8, license=buf(b"GPL\0"))
    if log_level:
        f.update(log_level=log_level, log_size=len(log), log_buf=ctypes.addressof(log))
    if fd_array is not None:
        f.update(fd_array=buf(b"".join(int(x).to_bytes(4, "little") for x in fd_array)))
    fd = proc.bpf(U.BPF_PROG_LOAD, U.make_attr(**f))
    return fd, log.value.decode()


def info(proc, fd):
    """(bpf_prog_info, [xlated insns as 5-tuples, helper call immediates zeroed])."""
    def get(i):
        proc.bpf(U.BPF_OBJ_GET_INFO_BY_FD, U.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(i),
                                                           "info.info": ctypes.addressof(i)}))
    first = U.bpf_prog_info()
    get(first)
    n = first.xlated_prog_len
    xl = ctypes.create_string_buffer(max(n, 1))
    second = U.bpf_prog_info()
    second.xlated_prog_len, second.xlated_prog_insns = n, ctypes.addressof(xl)
    get(second)
    out = []
    for c, d, s, o, imm in I.decode(xl.raw[:n]):
        out.append((c, d, s, o, 0 if c == 0x85 and s == 0 else imm))
    return first, out


def xlated(proc, insns, **kw):
    fd, _ = load(proc, insns, **kw)
    try:
        return info(proc, fd)[1]
    finally:
        proc.close(fd)


def T(insns):
    return [tuple(i) for i in insns]


CALL = (0x85, 0, 0, 0, 0)


def test_division_by_a_register_gets_its_guards(proc):
    prog = [I.BPF_EMIT_CALL(PRANDOM), I.BPF_MOV64_REG(1, 0), I.BPF_MOV64_IMM(0, 100),
            I.BPF_ALU64_REG(I.BPF_DIV, 0, 1), I.BPF_ALU32_REG(I.BPF_MOD, 0, 1), I.BPF_ALU64_REG(I.BPF_MOD, 0, 1),
            I.BPF_ALU32_REG(I.BPF_DIV, 0, 1), I.BPF_EXIT_INSN()]
    ja1 = tuple(I.BPF_JMP_A(1))
    want = [CALL] + T(prog[1:3]) + [
        # 64-bit division: x / 0 = 0
        tuple(I.BPF_JMP_IMM(I.BPF_JNE, 1, 0, 2)), tuple(I.BPF_ALU32_REG(I.BPF_XOR, 0, 0)), ja1, tuple(prog[3]),
        # 32-bit modulo: x % 0 = x, zero-extended
        tuple(I.BPF_JMP32_IMM(I.BPF_JEQ, 1, 0, 2)), tuple(prog[4]), ja1, tuple(I.BPF_MOV32_REG(0, 0)),
        # 64-bit modulo: x % 0 = x
        tuple(I.BPF_JMP_IMM(I.BPF_JEQ, 1, 0, 1)), tuple(prog[5]),
        # 32-bit division
        tuple(I.BPF_JMP32_IMM(I.BPF_JNE, 1, 0, 2)), tuple(I.BPF_ALU32_REG(I.BPF_XOR, 0, 0)), ja1, tuple(prog[6]),
        tuple(prog[7])]
    assert xlated(proc, prog) == want


def test_signed_division_guards_and_division_by_minus_one(proc, profile):
    need_insn(profile, "sdiv_smod")
    prog = [I.BPF_EMIT_CALL(PRANDOM), I.BPF_MOV64_REG(1, 0), I.BPF_ALU64_REG_OFF(I.BPF_DIV, 0, 1, 1),
            I.BPF_ALU32_REG_OFF(I.BPF_MOD, 0, 1, 1), I.BPF_ALU64_IMM_OFF(I.BPF_DIV, 0, -1, 1),
            I.BPF_ALU32_IMM_OFF(I.BPF_MOD, 0, -1, 1), I.BPF_EXIT_INSN()]
    got = xlated(proc, prog)
    ja1 = tuple(I.BPF_JMP_A(1))
    want = [CALL, tuple(prog[1]),
            # sdiv: x s/ 0 = 0, x s/ -1 = -x
            tuple(I.BPF_MOV64_REG(AX, 1)), tuple(I.BPF_ALU64_IMM(I.BPF_ADD, AX, 1)),
            tuple(I.BPF_JMP_IMM(I.BPF_JGT, AX, 1, 4)), tuple(I.BPF_JMP_IMM(I.BPF_JEQ, AX, 0, 1)),
            tuple(I.BPF_MOV64_IMM(0, 0)), tuple(I.BPF_ALU64_IMM(I.BPF_NEG, 0, 0)), ja1, tuple(prog[2]),
            # 32-bit smod: x s% 0 = x, x s% -1 = 0
            tuple(I.BPF_MOV64_REG(AX, 1)), tuple(I.BPF_ALU32_IMM(I.BPF_ADD, AX, 1)),
            tuple(I.BPF_JMP32_IMM(I.BPF_JGT, AX, 1, 3)), tuple(I.BPF_JMP32_IMM(I.BPF_JEQ, AX, 1, 4)),
            tuple(I.BPF_MOV32_IMM(0, 0)), ja1, tuple(prog[3]), ja1, tuple(I.BPF_MOV32_REG(0, 0)),
            # by the constant -1: a negation, a zero
            tuple(I.BPF_ALU64_IMM(I.BPF_NEG, 0, 0)), tuple(I.BPF_MOV32_IMM(0, 0)),
            tuple(prog[6])]
    assert got == want


def test_dead_code_goes_and_jumps_follow(proc):
    prog = [I.BPF_EMIT_CALL(PRANDOM), I.BPF_MOV64_REG(2, 0), I.BPF_MOV64_IMM(0, 0),
            I.BPF_JMP_IMM(I.BPF_JGT, 2, 10, 4),      # both ways
            I.BPF_JMP_IMM(I.BPF_JNE, 0, 0, 2),       # never taken: removed
            I.BPF_MOV64_IMM(0, 2),
            I.BPF_JMP_A(1),                         # to the exit: a goto +0 once the dead insn is gone
            I.BPF_MOV64_IMM(0, 3),                  # never reached
            I.BPF_EXIT_INSN()]
    assert xlated(proc, prog) == [CALL] + T(prog[1:3]) + [tuple(I.BPF_JMP_IMM(I.BPF_JGT, 2, 10, 1)),
                                                          tuple(prog[5]), tuple(prog[8])]


def test_a_branch_decided_by_the_verifier_becomes_a_goto(proc):
    prog = [I.BPF_EMIT_CALL(PRANDOM), I.BPF_MOV64_IMM(1, 7),
            I.BPF_JMP_IMM(I.BPF_JEQ, 1, 7, 2),      # always taken
            I.BPF_MOV64_IMM(0, 1), I.BPF_MOV64_IMM(0, 2),
            I.BPF_ALU64_REG(I.BPF_DIV, 0, 1),
            I.BPF_EXIT_INSN()]
    # the jeq becomes a goto +2 over the two dead moves; they go, and the goto +0 left with them
    assert xlated(proc, prog) == [CALL, tuple(prog[1]), tuple(I.BPF_JMP_IMM(I.BPF_JNE, 1, 0, 2)),
                                  tuple(I.BPF_ALU32_REG(I.BPF_XOR, 0, 0)), tuple(I.BPF_JMP_A(1)), tuple(prog[5]),
                                  tuple(prog[6])]


def test_a_backward_jump_over_a_patch(proc):
    # r0 = prandom & 3; loop: r0 /= r1 (guarded), r1 -= 1, if r1 != 0 goto loop
    prog = [I.BPF_EMIT_CALL(PRANDOM), I.BPF_ALU64_IMM(I.BPF_AND, 0, 3), I.BPF_MOV64_IMM(1, 2),
            I.BPF_ALU64_REG(I.BPF_DIV, 0, 1), I.BPF_ALU64_IMM(I.BPF_SUB, 1, 1), I.BPF_JMP_IMM(I.BPF_JNE, 1, 0, -3),
            I.BPF_EXIT_INSN()]
    got = xlated(proc, prog)
    assert got == [CALL] + T(prog[1:3]) + [
        tuple(I.BPF_JMP_IMM(I.BPF_JNE, 1, 0, 2)), tuple(I.BPF_ALU32_REG(I.BPF_XOR, 0, 0)), tuple(I.BPF_JMP_A(1)),
        tuple(prog[3]), tuple(prog[4]), tuple(I.BPF_JMP_IMM(I.BPF_JNE, 1, 0, -6)), tuple(prog[6])]


@pytest.mark.parametrize("form", ["fd", "value", "idx", "idx_value"])
def test_maps_are_named_by_id(proc, form):
    m = array_map(proc, value_size=8, max_entries=1)
    try:
        ld = {"fd": I.BPF_LD_IMM64_RAW_FULL(1, I.BPF_PSEUDO_MAP_FD, 0, 0, m, 0),
              "value": I.BPF_LD_IMM64_RAW_FULL(1, I.BPF_PSEUDO_MAP_VALUE, 0, 0, m, 4),
              "idx": I.BPF_LD_IMM64_RAW_FULL(1, I.BPF_PSEUDO_MAP_IDX, 0, 0, 0, 0),
              "idx_value": I.BPF_LD_IMM64_RAW_FULL(1, I.BPF_PSEUDO_MAP_IDX_VALUE, 0, 0, 0, 4)}[form]
        got = xlated(proc, list(ld) + [I.BPF_MOV64_IMM(0, 0), I.BPF_EXIT_INSN()], fd_array=[m])
        src = I.BPF_PSEUDO_MAP_VALUE if "value" in form else I.BPF_PSEUDO_MAP_FD
        assert got[:2] == [(0x18, 1, src, 0, map_id(proc, m)), (0, 0, 0, 0, 4 if "value" in form else 0)]
    finally:
        proc.close(m)


def test_verified_insns_is_what_the_statistics_log_counts(proc):
    # a bounded loop: the count depends on how the verifier explores and prunes it
    prog = [I.BPF_EMIT_CALL(PRANDOM), I.BPF_ALU64_IMM(I.BPF_AND, 0, 7), I.BPF_MOV64_IMM(1, 0),
            I.BPF_ALU64_IMM(I.BPF_ADD, 1, 1), I.BPF_JMP_REG(I.BPF_JLT, 1, 0, -2),
            I.BPF_JMP_IMM(I.BPF_JGT, 1, 100, 1), I.BPF_MOV64_IMM(0, 1), I.BPF_EXIT_INSN()]
    fd, log = load(proc, prog, log_level=4)
    try:
        vi = info(proc, fd)[0].verified_insns
    finally:
        proc.close(fd)
    processed = int(re.search(r"processed (\d+) insns", log).group(1))
    assert vi == processed > len(prog)


# -- context accesses, map lookups, LD_ABS: at the kernel's struct offsets (read from its BTF here) ------------
@pytest.fixture
def kernel_offset(profile):
    """offsetof(struct, field) in the BTF of a real kernel of the backend's version (the host's own, or the
    cached Debian kernel's: support.real_kernel_btf); the test skips without one."""
    from bpfemu.prog.fixups import kernel_member_offset
    btf = real_kernel_btf(profile.version)

    def offset(struct, field, optional=False):
        """The offset; with ``optional``, None for a field this version's struct lacks."""
        if btf is None:
            pytest.skip("no BTF of a %s kernel" % profile.version)
        off = kernel_member_offset(btf, struct, field)
        if off is None and not optional:
            pytest.skip("no BTF of a %s kernel with %s.%s" % (profile.version, struct, field))
        return off
    return offset


def ldx(size, dst, src, off):
    return tuple(I.BPF_LDX_MEM(size, dst, src, off))


SKB = {"len": 0, "pkt_type": 4, "mark": 8, "protocol": 16, "cb1": 52, "ifindex": 40, "data": 76, "data_end": 80}


def test_socket_filter_context_reads_become_sk_buff_reads(proc, kernel_offset):
    prog = [I.BPF_LDX_MEM(I.BPF_W, 0, 1, SKB["len"]), I.BPF_LDX_MEM(I.BPF_W, 2, 1, SKB["mark"]),
            I.BPF_LDX_MEM(I.BPF_W, 3, 1, SKB["protocol"]), I.BPF_LDX_MEM(I.BPF_W, 4, 1, SKB["cb1"]),
            I.BPF_LDX_MEM(I.BPF_W, 5, 1, SKB["pkt_type"]), I.BPF_LDX_MEM(I.BPF_W, 2, 1, SKB["ifindex"]),
            I.BPF_EXIT_INSN()]
    cb = kernel_offset("sk_buff", "cb") + kernel_offset("qdisc_skb_cb", "data")
    want = [ldx(I.BPF_W, 0, 1, kernel_offset("sk_buff", "len")), ldx(I.BPF_W, 2, 1, kernel_offset("sk_buff", "mark")),
            ldx(I.BPF_H, 3, 1, kernel_offset("sk_buff", "protocol")), ldx(I.BPF_W, 4, 1, cb + 4),
            ldx(I.BPF_B, 5, 1, kernel_offset("sk_buff", "__pkt_type_offset")), tuple(I.BPF_ALU32_IMM(I.BPF_AND, 5, 7)),
            # the device may be NULL outside tc
            ldx(I.BPF_DW, 2, 1, kernel_offset("sk_buff", "dev")), tuple(I.BPF_JMP_IMM(I.BPF_JEQ, 2, 0, 1)),
            ldx(I.BPF_W, 2, 2, kernel_offset("net_device", "ifindex")), tuple(prog[-1])]
    assert xlated(proc, prog) == want


def test_vlan_present_tests_vlan_all_or_its_bit(proc, kernel_offset):
    """__sk_buff.vlan_present: vlan_all != 0 (6.2 on), or the vlan_present bit of its own (6.1: bit 0 of a
    byte on a little-endian machine)."""
    prog = [I.BPF_LDX_MEM(I.BPF_W, 0, 1, 20), I.BPF_EXIT_INSN()]   # offsetof(struct __sk_buff, vlan_present)
    vlan_all = kernel_offset("sk_buff", "vlan_all", optional=True)
    if vlan_all is not None:
        want = [ldx(I.BPF_W, 0, 1, vlan_all), tuple(I.BPF_JMP_IMM(I.BPF_JEQ, 0, 0, 1)), tuple(I.BPF_MOV32_IMM(0, 1))]
    else:
        want = [ldx(I.BPF_B, 0, 1, kernel_offset("sk_buff", "__pkt_vlan_present_offset")),
                tuple(I.BPF_ALU32_IMM(I.BPF_AND, 0, 1))]
    assert xlated(proc, prog) == want + [tuple(prog[-1])]


def test_tc_packet_pointers_and_ifindex(proc, kernel_offset):
    prog = [I.BPF_LDX_MEM(I.BPF_W, 2, 1, SKB["data"]), I.BPF_LDX_MEM(I.BPF_W, 3, 1, SKB["data_end"]),
            I.BPF_LDX_MEM(I.BPF_W, 4, 1, SKB["ifindex"]), I.BPF_MOV64_IMM(0, 0), I.BPF_EXIT_INSN()]
    end = kernel_offset("sk_buff", "cb") + kernel_offset("bpf_skb_data_end", "data_end")
    want = [ldx(I.BPF_DW, 2, 1, kernel_offset("sk_buff", "data")), ldx(I.BPF_DW, 3, 1, end),
            ldx(I.BPF_DW, 4, 1, kernel_offset("sk_buff", "dev")), ldx(I.BPF_W, 4, 4, kernel_offset("net_device", "ifindex")),
            tuple(prog[3]), tuple(prog[4])]
    assert xlated(proc, prog, prog_type=U.BPF_PROG_TYPE_SCHED_CLS) == want


def test_xdp_context_reads_become_xdp_buff_reads(proc, kernel_offset):
    prog = [I.BPF_LDX_MEM(I.BPF_W, 2, 1, 0), I.BPF_LDX_MEM(I.BPF_W, 3, 1, 4), I.BPF_LDX_MEM(I.BPF_W, 4, 1, 12),
            I.BPF_MOV64_IMM(0, 2), I.BPF_EXIT_INSN()]
    want = [ldx(I.BPF_DW, 2, 1, kernel_offset("xdp_buff", "data")), ldx(I.BPF_DW, 3, 1, kernel_offset("xdp_buff", "data_end")),
            ldx(I.BPF_DW, 4, 1, kernel_offset("xdp_buff", "rxq")), ldx(I.BPF_DW, 4, 4, kernel_offset("xdp_rxq_info", "dev")),
            ldx(I.BPF_W, 4, 4, kernel_offset("net_device", "ifindex")), tuple(prog[3]), tuple(prog[4])]
    assert xlated(proc, prog, prog_type=U.BPF_PROG_TYPE_XDP) == want


def _lookup(fd):
    return [I.BPF_ST_MEM(I.BPF_W, 10, -4, 0), I.BPF_MOV64_REG(2, 10), I.BPF_ALU64_IMM(I.BPF_ADD, 2, -4),
            *I.BPF_LD_MAP_FD(1, fd), I.BPF_EMIT_CALL(1), I.BPF_MOV64_IMM(0, 0), I.BPF_EXIT_INSN()]


@pytest.mark.parametrize("value_size, max_entries", [(8, 4), (12, 5)])
def test_an_array_lookup_is_inlined(proc, value_size, max_entries, kernel_offset):
    m = array_map(proc, value_size=value_size, max_entries=max_entries)
    try:
        got = xlated(proc, _lookup(m))
        elem = (value_size + 7) // 8 * 8
        scale = (tuple(I.BPF_ALU64_IMM(I.BPF_LSH, 0, elem.bit_length() - 1)) if elem & (elem - 1) == 0
                 else tuple(I.BPF_ALU64_IMM(I.BPF_MUL, 0, elem)))
        # the creator (uid 0, every capability) bypasses Spectre v1: no index mask
        assert got[5:-2] == [tuple(I.BPF_ALU64_IMM(I.BPF_ADD, 1, kernel_offset("bpf_array", "value"))),
                             ldx(I.BPF_W, 0, 2, 0), tuple(I.BPF_JMP_IMM(I.BPF_JGE, 0, max_entries, 3)), scale,
                             tuple(I.BPF_ALU64_REG(I.BPF_ADD, 0, 1)), tuple(I.BPF_JMP_A(1)), tuple(I.BPF_MOV64_IMM(0, 0))]
    finally:
        proc.close(m)


def test_a_hash_lookup_calls_the_table_and_skips_the_element_header(proc, kernel_offset):
    from bpfemu.testing.support import create_map
    m = create_map(proc, U.BPF_MAP_TYPE_HASH, key_size=4, value_size=8, max_entries=4)
    try:
        got = xlated(proc, _lookup(m))
        assert got[5:-2] == [CALL, tuple(I.BPF_JMP_IMM(I.BPF_JEQ, 0, 0, 1)),
                             tuple(I.BPF_ALU64_IMM(I.BPF_ADD, 0, kernel_offset("htab_elem", "key") + 8))]
    finally:
        proc.close(m)


def test_ld_abs_becomes_a_call_and_a_check(proc):
    prog = [I.BPF_MOV64_REG(6, 1), I.BPF_LD_ABS(I.BPF_H, 12), I.BPF_LD_IND(I.BPF_B, 0, 3), I.BPF_EXIT_INSN()]
    tail = [(0x85, 0, 0, 0, 0), tuple(I.BPF_JMP_IMM(I.BPF_JSGE, 0, 0, 2)), tuple(I.BPF_ALU32_REG(I.BPF_XOR, 0, 0)),
            tuple(I.BPF_EXIT_INSN())]
    assert xlated(proc, prog) == [tuple(prog[0]), tuple(I.BPF_MOV64_IMM(2, 12)), tuple(I.BPF_MOV64_REG(1, 6))] + tail + \
        [tuple(I.BPF_MOV64_REG(2, 0)), tuple(I.BPF_ALU64_IMM(I.BPF_ADD, 2, 3)), tuple(I.BPF_MOV64_REG(1, 6))] + tail + \
        [tuple(prog[3])]


def test_a_tc_program_that_writes_packet_data_starts_with_the_unclone_prologue(proc, kernel_offset):
    # r2 = skb->data; r3 = skb->data_end; if r2 + 1 > r3 goto out; *(u8 *)r2 = 0; out: r0 = 0
    prog = [I.BPF_LDX_MEM(I.BPF_W, 2, 1, SKB["data"]), I.BPF_LDX_MEM(I.BPF_W, 3, 1, SKB["data_end"]),
            I.BPF_MOV64_REG(4, 2), I.BPF_ALU64_IMM(I.BPF_ADD, 4, 1), I.BPF_JMP_REG(I.BPF_JGT, 4, 3, 1),
            I.BPF_ST_MEM(I.BPF_B, 2, 0, 0), I.BPF_MOV64_IMM(0, 0), I.BPF_EXIT_INSN()]
    got = xlated(proc, prog, prog_type=U.BPF_PROG_TYPE_SCHED_CLS)
    prologue = [ldx(I.BPF_B, 6, 1, kernel_offset("sk_buff", "__cloned_offset")), tuple(I.BPF_ALU32_IMM(I.BPF_AND, 6, 1)),
                tuple(I.BPF_JMP_IMM(I.BPF_JEQ, 6, 0, 7)), tuple(I.BPF_MOV64_REG(6, 1)),
                tuple(I.BPF_ALU64_REG(I.BPF_XOR, 2, 2)), CALL, tuple(I.BPF_JMP_IMM(I.BPF_JEQ, 0, 0, 2)),
                tuple(I.BPF_MOV32_IMM(0, 2)), tuple(I.BPF_EXIT_INSN()), tuple(I.BPF_MOV64_REG(1, 6))]
    assert got[:10] == prologue
    assert got[10] == ldx(I.BPF_DW, 2, 1, kernel_offset("sk_buff", "data"))
    assert len(got) == 10 + len(prog)
    # reading the packet needs no prologue
    assert len(xlated(proc, prog[:5] + [I.BPF_LDX_MEM(I.BPF_B, 0, 2, 0)] + prog[6:],
                      prog_type=U.BPF_PROG_TYPE_SCHED_CLS)) == len(prog)


def test_a_bpf2bpf_call_shows_its_offset_and_the_callee_number(proc):
    # main calls sub2 (at 5) then sub1 (at 3): the dump numbers subprograms in address order
    prog = [I.BPF_CALL_REL(4), I.BPF_CALL_REL(1), I.BPF_EXIT_INSN(),
            I.BPF_MOV64_IMM(0, 1), I.BPF_EXIT_INSN(),
            I.BPF_MOV64_IMM(0, 2), I.BPF_EXIT_INSN()]
    got = xlated(proc, prog)
    assert got[:2] == [(0x85, 0, I.BPF_PSEUDO_CALL, 4, 2), (0x85, 0, I.BPF_PSEUDO_CALL, 1, 1)]
    assert got[2:] == T(prog[2:])
