"""What a running program sees of the emulated machine is the test's: the clock (standing still until the test
moves it), prandom (the same sequence for the same seed), the trace pipe, and run statistics only while a
BPF_ENABLE_STATS fd is open. Emulator-only: the host's clock, randomness and trace pipe are machine-wide."""
import struct

import pytest

import bpfemu
from bpfemu import Program, uapi as u
from bpfemu.prog.insn import *  # noqa: F401,F403 - builders read like the kernel's macros

FRAME = bytes(60)


def load(sys, insns, t="xdp"):
    return Program.load(sys, encode(insns), t)


def ktime_prog():
    """r0 = low 32 bits of bpf_ktime_get_ns()."""
    return [BPF_EMIT_CALL(u.BPF_FUNC_ktime_get_ns), BPF_EXIT_INSN()]


def test_clock_stands_still_until_the_test_moves_it():
    k = bpfemu.Kernel()
    s = k.spawn()
    with load(s, ktime_prog()) as p:
        a = p.test_run(data=FRAME).retval
        assert p.test_run(data=FRAME).retval == a
        k.clock.advance(1500)
        assert p.test_run(data=FRAME).retval == (a + 1500) & 0xFFFFFFFF


def prandom_seq(seed):
    k = bpfemu.Kernel(seed=seed)
    s = k.spawn()
    with load(s, [BPF_EMIT_CALL(u.BPF_FUNC_get_prandom_u32), BPF_EXIT_INSN()]) as p:
        return [p.test_run(data=FRAME).retval for _ in range(5)]


def test_prandom_is_a_function_of_the_seed():
    assert prandom_seq(7) == prandom_seq(7)
    assert prandom_seq(7) != prandom_seq(8)
    assert len(set(prandom_seq(7))) > 1


def test_trace_printk_reaches_the_trace_pipe():
    k = bpfemu.Kernel()
    s = k.spawn()
    fmt = b"n=%d\0\0\0\0"
    prog = [BPF_ST_MEM(BPF_DW, BPF_REG_10, -8, struct.unpack("<q", fmt[:8])[0]),
            BPF_MOV64_REG(BPF_REG_1, BPF_REG_10), BPF_ALU64_IMM(BPF_ADD, BPF_REG_1, -8),
            BPF_MOV64_IMM(BPF_REG_2, 5), BPF_MOV64_IMM(BPF_REG_3, 42),
            BPF_EMIT_CALL(u.BPF_FUNC_trace_printk), BPF_EXIT_INSN()]
    with load(s, prog) as p:
        r = p.test_run(data=FRAME, repeat=2)
    assert r.retval == len("n=42")
    lines = k.read_trace_pipe()
    assert len(lines) == 2 and all(line.endswith("bpf_trace_printk: n=42") for line in lines)
    assert k.read_trace_pipe() == []


def test_stats_only_while_an_fd_is_open():
    k = bpfemu.Kernel()
    s = k.spawn()
    with load(s, [BPF_MOV64_IMM(BPF_REG_0, 2), BPF_EXIT_INSN()]) as p:
        p.test_run(data=FRAME, repeat=3)
        assert (p.info().run_cnt, p.info().run_time_ns) == (0, 0)
        fd1 = s.bpf(u.BPF_ENABLE_STATS, u.make_attr(**{"enable_stats.type": 0}))
        fd2 = s.bpf(u.BPF_ENABLE_STATS, u.make_attr(**{"enable_stats.type": 0}))
        p.test_run(data=FRAME, repeat=3)
        s.close(fd1)
        p.test_run(data=FRAME, repeat=2)      # fd2 still holds the key
        assert p.info().run_cnt == 5
        s.close(fd2)
        p.test_run(data=FRAME, repeat=2)
        assert p.info().run_cnt == 5


def test_enable_stats_needs_cap_sys_admin():
    k = bpfemu.Kernel()
    s = k.spawn(uid=1000, caps=())
    with pytest.raises(OSError) as e:
        s.bpf(u.BPF_ENABLE_STATS, u.make_attr(**{"enable_stats.type": 0}))
    assert e.value.errno == 1
