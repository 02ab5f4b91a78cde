"""python -m bench.interp: how fast programs run, in BPF instructions per second.

    python -m bench.interp                 # both programs, every engine, the host for reference
    python -m bench.interp --smoke         # seconds (CI)
    python -m bench.interp --json out.json

Two XDP programs (``PROGRAMS``): a loop-heavy one (a xorshift hash over thousands of iterations, with stack
traffic) and a packet parser (Ethernet, VLAN, IPv4/IPv6, TCP/UDP, a flow hash; ~50-80 instructions per
packet). Each runs through BPF_PROG_TEST_RUN with ``repeat`` on:

- ``emu interp``: the emulator's reference interpreter (bpfemu.prog.core.interpret),
- ``emu jit``: the emulator's translator (bpfemu.prog.jit),
- ``host``: the host kernel (its JIT), for reference;

and, last, what one PROG_TEST_RUN call costs by itself (repeat 1, a two-instruction program), both sides
timed around the call;

insns/s = instructions one run executes (counted by the reference interpreter) / time per run. The emulator
is timed by this process's CPU time around the syscall (the call overhead included, as a user sees it), the
host by the duration PROG_TEST_RUN reports (so the host figure is the JIT alone, without the syscall).
"""
import argparse
import gc
import json
import statistics
import struct
import sys
import time

from bpfemu import uapi as u
from bpfemu.testing.backends import EmuBackend, host_status
from bpfemu.prog.core import Image, RunCtx, interpret
from bpfemu.prog.insn import *  # noqa: F401,F403 - builders read like the kernel's macros
from bpfemu.prog.memory import Memory, Region
from bpfemu.prog.test_run import XdpBuff

XDP_PASS = 2


def loop_prog(iterations):
    """A xorshift64 loop over a seed from the packet, its state spilled to the stack every iteration."""
    body = [
        BPF_LDX_MEM(BPF_W, BPF_REG_6, BPF_REG_1, 0),
        BPF_LDX_MEM(BPF_W, BPF_REG_7, BPF_REG_1, 4),
        BPF_MOV64_REG(BPF_REG_8, BPF_REG_6),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_8, 16),
        BPF_JMP_REG(BPF_JGT, BPF_REG_8, BPF_REG_7, 20),
        BPF_LDX_MEM(BPF_DW, BPF_REG_2, BPF_REG_6, 0),
        BPF_MOV64_IMM(BPF_REG_3, 0),
        BPF_MOV64_IMM(BPF_REG_4, 0),
        # loop:
        BPF_MOV64_REG(BPF_REG_5, BPF_REG_2),
        BPF_ALU64_IMM(BPF_LSH, BPF_REG_5, 13),
        BPF_ALU64_REG(BPF_XOR, BPF_REG_2, BPF_REG_5),
        BPF_MOV64_REG(BPF_REG_5, BPF_REG_2),
        BPF_ALU64_IMM(BPF_RSH, BPF_REG_5, 7),
        BPF_ALU64_REG(BPF_XOR, BPF_REG_2, BPF_REG_5),
        BPF_MOV64_REG(BPF_REG_5, BPF_REG_2),
        BPF_ALU64_IMM(BPF_LSH, BPF_REG_5, 17),
        BPF_ALU64_REG(BPF_XOR, BPF_REG_2, BPF_REG_5),
        BPF_ALU64_REG(BPF_ADD, BPF_REG_4, BPF_REG_2),
        BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_4, -8),
        BPF_LDX_MEM(BPF_DW, BPF_REG_4, BPF_REG_10, -8),
        BPF_ALU64_IMM(BPF_ADD, BPF_REG_3, 1),
        BPF_JMP_IMM(BPF_JLT, BPF_REG_3, iterations, -14),
        BPF_STX_MEM(BPF_DW, BPF_REG_6, BPF_REG_4, 8),
        BPF_MOV64_IMM(BPF_REG_0, XDP_PASS),
        BPF_EXIT_INSN(),
        BPF_MOV64_IMM(BPF_REG_0, 0),
        BPF_EXIT_INSN(),
    ]
    return body


def parser_prog():
    """Ethernet (+ one VLAN tag) -> IPv4 (options skipped by IHL) or IPv6 -> TCP/UDP ports; a flow hash of
    the addresses, protocol and ports is written over the Ethernet source address; returns XDP_PASS, or
    XDP_DROP for what it cannot parse."""
    L = []  # (label or None, insn or ('jmp', cond, label))
    lab = {}

    def emit(i):
        L.append(i)

    def label(name):
        lab[name] = len(L)

    def jmp(op, reg, imm, target):
        L.append(("jmp", op, reg, imm, target))

    def jmpr(op, a, b, target):
        L.append(("jmpr", op, a, b, target))

    emit(BPF_LDX_MEM(BPF_W, BPF_REG_6, BPF_REG_1, 0))     # data
    emit(BPF_LDX_MEM(BPF_W, BPF_REG_7, BPF_REG_1, 4))     # data_end
    emit(BPF_MOV64_REG(BPF_REG_8, BPF_REG_6))
    emit(BPF_ALU64_IMM(BPF_ADD, BPF_REG_8, 14))
    jmpr(BPF_JGT, BPF_REG_8, BPF_REG_7, "drop")
    emit(BPF_LDX_MEM(BPF_H, BPF_REG_2, BPF_REG_6, 12))    # h_proto (network order)
    emit(BPF_MOV64_IMM(BPF_REG_9, 14))                    # l3 offset
    jmp(BPF_JNE, BPF_REG_2, 0x0081, "l3")                 # htons(ETH_P_8021Q)
    emit(BPF_MOV64_REG(BPF_REG_8, BPF_REG_6))
    emit(BPF_ALU64_IMM(BPF_ADD, BPF_REG_8, 18))
    jmpr(BPF_JGT, BPF_REG_8, BPF_REG_7, "drop")
    emit(BPF_LDX_MEM(BPF_H, BPF_REG_2, BPF_REG_6, 16))
    emit(BPF_MOV64_IMM(BPF_REG_9, 18))
    label("l3")
    emit(BPF_MOV64_REG(BPF_REG_3, BPF_REG_6))
    emit(BPF_ALU64_REG(BPF_ADD, BPF_REG_3, BPF_REG_9))    # r3 = l3 header
    jmp(BPF_JEQ, BPF_REG_2, 0x0008, "ipv4")
    jmp(BPF_JEQ, BPF_REG_2, 0xdd86, "ipv6")
    jmp(BPF_JA, 0, 0, "drop")
    label("ipv4")
    emit(BPF_MOV64_REG(BPF_REG_8, BPF_REG_3))
    emit(BPF_ALU64_IMM(BPF_ADD, BPF_REG_8, 20))
    jmpr(BPF_JGT, BPF_REG_8, BPF_REG_7, "drop")
    emit(BPF_LDX_MEM(BPF_B, BPF_REG_4, BPF_REG_3, 0))     # version/ihl
    emit(BPF_ALU64_IMM(BPF_AND, BPF_REG_4, 0x0f))
    emit(BPF_ALU64_IMM(BPF_LSH, BPF_REG_4, 2))            # ihl * 4
    jmp(BPF_JLT, BPF_REG_4, 20, "drop")
    emit(BPF_LDX_MEM(BPF_B, BPF_REG_5, BPF_REG_3, 9))     # protocol
    emit(BPF_LDX_MEM(BPF_W, BPF_REG_0, BPF_REG_3, 12))    # saddr
    emit(BPF_LDX_MEM(BPF_W, BPF_REG_1, BPF_REG_3, 16))    # daddr
    emit(BPF_ALU64_REG(BPF_XOR, BPF_REG_0, BPF_REG_1))
    emit(BPF_ALU64_REG(BPF_ADD, BPF_REG_3, BPF_REG_4))    # l4 header
    jmp(BPF_JA, 0, 0, "l4")
    label("ipv6")
    emit(BPF_MOV64_REG(BPF_REG_8, BPF_REG_3))
    emit(BPF_ALU64_IMM(BPF_ADD, BPF_REG_8, 40))
    jmpr(BPF_JGT, BPF_REG_8, BPF_REG_7, "drop")
    emit(BPF_LDX_MEM(BPF_B, BPF_REG_5, BPF_REG_3, 6))     # next header
    emit(BPF_MOV64_IMM(BPF_REG_0, 0))
    for off in range(8, 40, 8):                           # both addresses, folded
        emit(BPF_LDX_MEM(BPF_DW, BPF_REG_1, BPF_REG_3, off))
        emit(BPF_ALU64_REG(BPF_XOR, BPF_REG_0, BPF_REG_1))
    emit(BPF_ALU64_IMM(BPF_ADD, BPF_REG_3, 40))
    label("l4")
    emit(BPF_ALU64_IMM(BPF_MUL, BPF_REG_0, 0x9e3779b1))
    emit(BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_5))
    jmp(BPF_JEQ, BPF_REG_5, 6, "ports")
    jmp(BPF_JNE, BPF_REG_5, 17, "out")
    label("ports")
    emit(BPF_MOV64_REG(BPF_REG_8, BPF_REG_3))
    emit(BPF_ALU64_IMM(BPF_ADD, BPF_REG_8, 4))
    jmpr(BPF_JGT, BPF_REG_8, BPF_REG_7, "drop")
    emit(BPF_LDX_MEM(BPF_H, BPF_REG_1, BPF_REG_3, 0))
    emit(BPF_ENDIAN(BPF_TO_BE, BPF_REG_1, 16))
    emit(BPF_ALU64_IMM(BPF_LSH, BPF_REG_1, 16))
    emit(BPF_LDX_MEM(BPF_H, BPF_REG_2, BPF_REG_3, 2))
    emit(BPF_ENDIAN(BPF_TO_BE, BPF_REG_2, 16))
    emit(BPF_ALU64_REG(BPF_OR, BPF_REG_1, BPF_REG_2))
    emit(BPF_ALU64_REG(BPF_XOR, BPF_REG_0, BPF_REG_1))
    emit(BPF_ALU64_IMM(BPF_MUL, BPF_REG_0, 0x85ebca6b))
    label("out")
    emit(BPF_MOV64_REG(BPF_REG_1, BPF_REG_0))
    emit(BPF_ALU64_IMM(BPF_RSH, BPF_REG_1, 32))
    emit(BPF_ALU64_REG(BPF_XOR, BPF_REG_0, BPF_REG_1))
    emit(BPF_STX_MEM(BPF_W, BPF_REG_6, BPF_REG_0, 6))     # over the source MAC
    emit(BPF_MOV64_IMM(BPF_REG_0, XDP_PASS))
    emit(BPF_EXIT_INSN())
    label("drop")
    emit(BPF_MOV64_IMM(BPF_REG_0, 1))                     # XDP_DROP
    emit(BPF_EXIT_INSN())
    out = []
    for k, item in enumerate(L):
        if isinstance(item, tuple) and item and item[0] in ("jmp", "jmpr"):
            kind, op, a, b, target = item
            off = lab[target] - k - 1
            if op == BPF_JA:
                out.append(BPF_JMP_A(off))
            elif kind == "jmp":
                out.append(BPF_JMP_IMM(op, a, b, off))
            else:
                out.append(BPF_JMP_REG(op, a, b, off))
        else:
            out.append(item)
    return out


def packets():
    """An IPv4/TCP frame (with a VLAN tag) and an IPv6/UDP frame."""
    eth_vlan = bytes(6) + bytes.fromhex("020000000001") + b"\x81\x00" + b"\x00\x05" + b"\x08\x00"
    ip4 = bytes.fromhex("45000028000100004006") + b"\x00\x00" + bytes([10, 0, 0, 1]) + bytes([10, 0, 0, 2])
    tcp = struct.pack(">HH", 12345, 80) + bytes(16)
    v4 = eth_vlan + ip4 + tcp
    eth6 = bytes(6) + bytes.fromhex("020000000002") + b"\x86\xdd"
    ip6 = bytes.fromhex("6000000000081140") + bytes(range(16)) + bytes(range(16, 32))
    udp = struct.pack(">HHHH", 5353, 53, 8, 0)
    return [v4.ljust(64, b"\0"), (eth6 + ip6 + udp).ljust(80, b"\0")]


def xdp_run(image, data, engine_run, run_kw=None):
    """One XDP invocation of ``image`` on ``data`` outside the syscall path; returns the RunCtx used."""
    mem = Memory()
    buf = bytearray(256 + len(data) + 320)
    buf[256:256 + len(data)] = data
    xdp = XdpBuff(buf, 256, 256, 256 + len(data), [])
    xdp.region = Region("packet", buf, obj=xdp)
    mem.add(xdp.region)
    xdp.sync_ctx()
    _, addr = mem.add_buffer("ctx", xdp.ctx)
    r = RunCtx(mem, **(run_kw or {}))
    engine_run(image, r, addr)
    return r


def count_insns(prog, data):
    """Instructions one run executes (the reference interpreter counts them)."""
    return xdp_run(Image(prog), data, interpret).insn_count


PROGRAMS = {
    "loop (xorshift, 5000 iterations)": (lambda: loop_prog(5000), lambda: [struct.pack("<QQ", 0x9e3779b97f4a7c15, 0)
                                                                          + bytes(48)]),
    "packet parser (eth/vlan/ip/ip6/l4)": (parser_prog, packets),
    # a helper call and a write through the pointer it returns: what most real programs do per packet
    "map counter (lookup + atomic add)": (lambda: map_counter_prog, lambda: [bytes(64)]),
}


def map_counter_prog(sys_):
    """XDP: value[0] of an array map (made here on ``sys_``) += 1 through bpf_map_lookup_elem's pointer."""
    from bpfemu.testing.support import array_map
    fd = array_map(sys_, value_size=8, max_entries=1)
    return [BPF_ST_MEM(BPF_W, BPF_REG_10, -4, 0), BPF_MOV64_REG(BPF_REG_2, BPF_REG_10),
            BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, -4), BPF_LD_MAP_FD(BPF_REG_1, fd),
            BPF_EMIT_CALL(u.BPF_FUNC_map_lookup_elem), BPF_JMP_IMM(BPF_JEQ, BPF_REG_0, 0, 2),
            BPF_MOV64_IMM(BPF_REG_1, 1), BPF_STX_XADD(BPF_DW, BPF_REG_0, BPF_REG_1, 0),
            BPF_MOV64_IMM(BPF_REG_0, XDP_PASS), BPF_EXIT_INSN()]


MAP_COUNTER_INSNS = 10  # executed per run (ld_imm64 counts once)


def _insns(prog, sys_):
    """A program, or a function making it on ``sys_`` (which creates the maps it uses)."""
    return prog(sys_) if callable(prog) else prog


def emu_rate(prog, datas, engine, repeat, reps, clock):
    """(insns per run, [seconds per run] per repetition) through PROG_TEST_RUN on the emulator."""
    from conformance import progrun
    b = EmuBackend()
    b.kernel.sysctl["net.core.bpf_jit_enable"] = 0 if engine == "interp" else 1
    sys_ = b.spawn()
    fd = progrun.load(sys_, _insns(prog, sys_), u.BPF_PROG_TYPE_XDP)
    out = []
    try:
        for _ in range(reps):
            gc.collect()
            gc.disable()
            try:
                t0 = clock()
                for d in datas:
                    r = progrun.test_run(sys_, fd, data=d, repeat=repeat)
                    assert r.errno == 0 and r.retval == XDP_PASS, r
                dt = clock() - t0
            finally:
                gc.enable()
            out.append(dt / (repeat * len(datas)) / 1e9)
    finally:
        b.close()
    return out


def host_rate(prog, datas, repeat, reps):
    """[seconds per run] per repetition on the host, from the durations PROG_TEST_RUN reports."""
    from conformance import progrun
    from conformance.isa import HostSys
    s = HostSys()
    fd = progrun.load(s, _insns(prog, s), u.BPF_PROG_TYPE_XDP)
    out = []
    try:
        for _ in range(reps):
            total = 0
            for d in datas:
                r = progrun.test_run(s, fd, data=d, repeat=repeat)
                assert r.errno == 0 and r.retval == XDP_PASS, r
                total += r.duration
            out.append(total / len(datas) / 1e9)
    finally:
        s.finish()
    return out


def host_call(prog, datas, reps, clock):
    """[seconds per PROG_TEST_RUN call] on the host, timed around the syscall (CPU time of this process)."""
    from conformance import progrun
    from conformance.isa import HostSys
    s = HostSys()
    fd = progrun.load(s, prog, u.BPF_PROG_TYPE_XDP)
    out = []
    try:
        for _ in range(reps):
            t0 = clock()
            for d in datas:
                progrun.test_run(s, fd, data=d, repeat=1)
            out.append((clock() - t0) / len(datas) / 1e9)
    finally:
        s.finish()
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.interp", description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny repeat counts: seconds, for CI")
    p.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 5, smoke 2)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = p.parse_args(argv)
    reps = args.reps or (2 if args.smoke else 5)
    clock = time.process_time_ns if args.clock == "cpu" else time.perf_counter_ns
    ok, why = host_status()
    rows = []
    print("%-36s %-11s %10s %16s %16s %9s" % ("program", "engine", "insns/run", "insns/s (median)",
                                             "[min - max]", "vs host"), flush=True)
    for name, (make, make_data) in PROGRAMS.items():
        prog, datas = make(), make_data()
        n = (MAP_COUNTER_INSNS if callable(prog) else
             sum(count_insns(prog, d) for d in datas) / len(datas))
        host = None
        if ok:
            host = host_rate(prog, datas, 1000 if not args.smoke else 10, reps)
        figures = {}
        for engine in ("interp", "jit"):
            big = "loop" in name
            # enough runs per call that the call's own cost (attr, copies: see the last row) is amortized
            repeat = (1 if big else (100 if engine == "interp" else 1000)) if args.smoke else (
                (2 if engine == "interp" else 20) if big else (500 if engine == "interp" else 5000))
            figures[engine] = emu_rate(prog, datas, engine, repeat, reps, clock)
        if host:
            figures["host"] = host
        for engine, secs in figures.items():
            rates = sorted(n / s_ for s_ in secs)
            med = statistics.median(rates)
            ratio = statistics.median(host) / statistics.median(secs) if host and engine != "host" else None
            row = {"program": name, "engine": engine, "insns_per_run": n, "insns_per_s": med,
                   "min": rates[0], "max": rates[-1], "seconds_per_run": statistics.median(secs),
                   "emu_per_host": (1 / ratio) if ratio else None}
            rows.append(row)
            print("%-36s %-11s %10.0f %16s %16s %9s" % (
                name, engine, n, "{:,.0f}".format(med), "[%s - %s]" % ("{:,.2g}".format(rates[0]),
                                                                       "{:,.2g}".format(rates[-1])),
                ("%.0fx" % (1 / ratio)) if ratio else ""), flush=True)
    # the fixed cost of one PROG_TEST_RUN call (repeat 1, a one-instruction program)
    # (50 calls per figure: one call timed alone right after a gc.collect() measures the cold caches instead)
    prog = [BPF_MOV64_IMM(BPF_REG_0, XDP_PASS), BPF_EXIT_INSN()]
    datas = [bytes(64)] * 50
    calls = {"emu": [s_ * 1e6 for s_ in emu_rate(prog, datas, "jit", 1, reps * 4, clock)]}
    if ok:
        calls["host"] = [s_ * 1e6 for s_ in host_call(prog, datas, reps * 4, clock)]
    for side, us in calls.items():
        med = statistics.median(us)
        rows.append({"program": "one PROG_TEST_RUN call (repeat 1)", "engine": side, "us_per_call": med,
                     "min": min(us), "max": max(us)})
        print("%-36s %-11s %10s %16s %16s" % ("one PROG_TEST_RUN call (repeat 1)", side, "",
                                             "%.1f us/call" % med, "[%.1f - %.1f]" % (min(us), max(us))))
    if not ok:
        print("host: unavailable (%s)" % why)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "smoke": args.smoke, "reps": reps, "clock": args.clock,
                       "host_available": ok, "host_note": why, "python": sys.version.split()[0]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
