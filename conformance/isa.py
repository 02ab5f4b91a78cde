"""Shared pieces of the instruction-level conformance suite (``test_isa*.py``).

Every case is a small program that computes one opcode on edge-case operands and leaves the results in
the packet of an XDP test run (or, for ld_abs/ld_ind, in the return value of a socket filter). Operands
come from the packet, so the verifier cannot fold them and the instruction itself runs.

The ``isa_sys`` fixture (in each test module) is a backend's bpf(): the host kernel, or the emulator with
either engine (``emu-interp``: the reference interpreter, ``emu-jit``: the translator).
"""
import os
import struct

import pytest

import bpfemu
from bpfemu import uapi as u
from bpfemu.testing.backends import EmuBackend, host_status, real_kernel, real_profile
from bpfemu.prog.insn import (BPF_DW, BPF_EXIT_INSN, BPF_JGT, BPF_JMP_REG, BPF_LDX_MEM, BPF_MOV64_IMM,
                              BPF_MOV64_REG, BPF_ALU64_IMM, BPF_ADD, BPF_REG_0, BPF_REG_1, BPF_REG_6,
                              BPF_REG_7, BPF_REG_8, BPF_STX_MEM, BPF_W, insn_count)

from . import progrun

XDP_PASS = 2
XDP_MAX_DATA = 3520   # PAGE_SIZE - XDP_PACKET_HEADROOM - SKB_DATA_ALIGN(sizeof(struct skb_shared_info))

# 64-bit operands at every boundary an ALU, shift, compare or sign extension cares about
VALUES = [
    0, 1, 2, 3, 7, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
    0x100000000, 0x100000001, 0x17fffffff, 0x180000000, 0x7fffffffffffffff, 0x8000000000000000,
    0x8000000000000001, 0xffffffffffffffff, 0xfffffffffffffffe, 0xffffffff80000000, 0xffffffff7fffffff,
    0xffffffff00000000, 0x123456789abcdef0, 0xfedcba9876543210, 31, 32, 33, 63, 64, 65, 0xfffffffffffffff9,
]
# immediates (s32) with the same intent; each case drops those the verifier refuses for its opcode
IMMS = [0, 1, -1, 2, 7, -7, 31, 32, 63, 0x7fffffff, -0x80000000, 0x12345678, -2, 0x8000]


def host_required():
    return os.environ.get("BPFEMU_REQUIRE_HOST") == "1"


class HostSys:
    """The session's real kernel (bpfemu.Host(), or the VM's) closing the fds it handed out."""

    def __init__(self):
        self.h = real_kernel()
        self.profile = real_profile()
        self.fds = []

    def bpf(self, cmd, attr, size=None):
        r = self.h.bpf(cmd, attr, size)
        if cmd == u.BPF_PROG_LOAD:
            self.fds.append(r)
        return r

    def close(self, fd):
        if fd in self.fds:
            self.fds.remove(fd)
        self.h.close(fd)

    def finish(self):
        for fd in self.fds:
            try:
                self.h.close(fd)
            except OSError:
                pass


BACKENDS = ["host", "emu-interp", "emu-jit"]


def make_sys(name, version=None):
    """(sys, cleanup) for a backend name of BACKENDS: the host, or a task of an emulated kernel (of ``version``,
    else the session's) that runs its programs interpreted (``emu-interp``: net.core.bpf_jit_enable=0) or
    translated (``emu-jit``); skips (or fails under BPFEMU_REQUIRE_HOST) when the host cannot be used."""
    if name == "host":
        ok, why = host_status()
        if not ok:
            if host_required():
                pytest.fail("BPFEMU_REQUIRE_HOST=1 but the host kernel backend is unusable: %s" % why)
            pytest.skip("host kernel backend unusable: %s" % why)
        s = HostSys()
        return s, s.finish
    b = EmuBackend(version=version)
    b.kernel.sysctl["net.core.bpf_jit_enable"] = 0 if name == "emu-interp" else 1
    t = b.spawn()
    t.profile = b.profile
    return t, b.close


def xdp_prog(nbytes, body):
    """An XDP program: r6 = data, r7 = data_end; returns 0 unless the packet holds ``nbytes``; then runs
    ``body`` (which may use every register but r6 and r10) and returns XDP_PASS."""
    return [
        BPF_LDX_MEM(BPF_W, BPF_REG_6, BPF_REG_1, 0),
        BPF_LDX_MEM(BPF_W, BPF_REG_7, BPF_REG_1, 4),
        BPF_MOV64_REG(BPF_REG_8, BPF_REG_6),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_8, nbytes),
        BPF_JMP_REG(BPF_JGT, BPF_REG_8, BPF_REG_7, insn_count(body) + 2),
        *body,
        BPF_MOV64_IMM(BPF_REG_0, XDP_PASS),
        BPF_EXIT_INSN(),
        BPF_MOV64_IMM(BPF_REG_0, 0),
        BPF_EXIT_INSN(),
    ]


def run_xdp(sys, body, data):
    """Load and run an XDP program on ``data``; returns data_out (asserting retval XDP_PASS)."""
    n = len(data)
    data = bytes(data) + bytes(max(0, 16 - n))  # an XDP test run needs at least an Ethernet header
    assert len(data) <= XDP_MAX_DATA
    prog = xdp_prog(len(data), body)
    try:
        fd = progrun.load(sys, prog, u.BPF_PROG_TYPE_XDP)
    except OSError as e:
        raise AssertionError("load failed: %s\n%s" % (e, getattr(e, "log", "")[-3000:]))
    try:
        r = progrun.test_run(sys, fd, data=data, repeat=1)
    finally:
        sys.close(fd)
    assert r.errno == 0, r
    assert r.retval == XDP_PASS, r
    assert r.data_size_out == len(data)
    return r.data_out[:n]


def refused_without(sys, insn, body, log_line, ndata=16):
    """When the kernel version of ``sys`` (its profile's ``instructions``) does not know the instruction
    ``insn`` (a name of bpfemu.profiles.profile.INSTRUCTIONS), check that an XDP program with ``body``
    is refused at load with EINVAL and ``log_line`` in the verifier log (the check that meets it first:
    "unknown opcode NN" for a new opcode, the reserved-fields line of its class for a new use of an old
    opcode), and return True: the test has nothing more to run. False when the version knows it."""
    if sys.profile.knows_insn(insn):
        return False
    try:
        fd = progrun.load(sys, xdp_prog(ndata, body), u.BPF_PROG_TYPE_XDP)
    except OSError as e:
        log = getattr(e, "log", "")
        assert e.errno == 22, (e, log[-2000:])
        assert log_line + "\n" in log, (log_line, log[-2000:])
        return True
    sys.close(fd)
    raise AssertionError("%s %s: the program loaded" % (sys.profile, insn))


def ld64(reg, off):
    return BPF_LDX_MEM(BPF_DW, reg, BPF_REG_6, off)


def st64(reg, off):
    return BPF_STX_MEM(BPF_DW, BPF_REG_6, reg, off)


def pack(values):
    return b"".join(struct.pack("<Q", v & ((1 << 64) - 1)) for v in values)


def unpack(data):
    return [v for (v,) in struct.iter_unpack("<Q", data)]


def chunks(seq, n):
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


__all__ = ["VALUES", "IMMS", "BACKENDS", "make_sys", "run_xdp", "refused_without", "ld64", "st64", "pack", "unpack", "chunks",
           "BPF_REG_0", "BPF_REG_1", "BPF_REG_6", "BPF_REG_7", "BPF_REG_8", "XDP_PASS"]
