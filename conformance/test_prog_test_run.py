"""BPF_PROG_TEST_RUN: what each program type takes and gives back, and the errno of every bad combination
(net/bpf/test_run.c), on the host and on the emulator.

Covered: the skb types (socket filter, tc, cgroup_skb, lwt: the Ethernet header rules, data_out, the
__sk_buff fields that may be set and what comes back in ctx_out), XDP (data_meta through ctx_in, frags past
the linear part, ingress queues, live frames, partial copies), raw tracepoints (args, cpu), syscall programs
(ctx copied back), and ENOTSUPP (524) for the types the kernel runs no test for.
"""
import os
import struct

import pytest

from bpfemu import uapi as u
from bpfemu.prog.insn import *  # noqa: F401,F403 - builders read like the kernel's macros

from bpfemu.testing.support import possible_cpus

from . import progrun
from .isa import make_sys

EINVAL, ENOSPC, E2BIG, EFAULT, ENODEV, ENXIO, ENOMEM = 22, 28, 7, 14, 19, 6, 12
ENOTSUPP = 524
BPF_F_TEST_RUN_ON_CPU = 1
BPF_F_TEST_XDP_LIVE_FRAMES = 2
BPF_F_TEST_SKB_CHECKSUM_COMPLETE = 4
BPF_F_SLEEPABLE = 1 << 4
BPF_F_XDP_HAS_FRAGS = 1 << 5


@pytest.fixture(params=["host", "emu"])
def tsys(request):
    s, done = make_sys("host" if request.param == "host" else "emu-jit")
    yield s
    done()


def load(tsys, prog, ptype, **kw):
    try:
        return progrun.load(tsys, prog, ptype, **kw)
    except OSError as e:
        raise AssertionError("load failed: %s\n%s" % (e, getattr(e, "log", "")[-2000:]))


RET1 = [BPF_MOV64_IMM(BPF_REG_0, 1), BPF_EXIT_INSN()]
FRAME = bytes(range(1, 61))           # an Ethernet frame of 60 bytes: type 0x0d0e (802.3 length field)
SKB_TYPES = {"socket_filter": (u.BPF_PROG_TYPE_SOCKET_FILTER, 0), "sched_cls": (u.BPF_PROG_TYPE_SCHED_CLS, 0),
             "sched_act": (u.BPF_PROG_TYPE_SCHED_ACT, 0),
             "cgroup_skb": (u.BPF_PROG_TYPE_CGROUP_SKB, u.BPF_CGROUP_INET_INGRESS),
             "lwt_in": (u.BPF_PROG_TYPE_LWT_IN, 0), "lwt_out": (u.BPF_PROG_TYPE_LWT_OUT, 0)}
L2 = ("sched_cls", "sched_act")
SK_BUFF = 192   # sizeof(struct __sk_buff)
XDP_MD = 24     # sizeof(struct xdp_md)


def skb_prog(tsys, name, prog=RET1):
    t, eat = SKB_TYPES[name]
    return load(tsys, prog, t, expected_attach_type=eat)


@pytest.mark.parametrize("name", sorted(SKB_TYPES))
def test_skb_data_out(tsys, name):
    """data_out is the frame; the types that do not see the Ethernet header get it back zeroed."""
    fd = skb_prog(tsys, name)
    r = progrun.test_run(tsys, fd, data=FRAME)
    assert (r.errno, r.retval, r.data_size_out) == (0, 1, len(FRAME))
    want = FRAME if name in L2 else bytes(14) + FRAME[14:]
    assert r.data_out[:len(FRAME)] == want


@pytest.mark.parametrize("name", sorted(SKB_TYPES))
def test_skb_sizes_and_flags(tsys, name):
    """At least an Ethernet header, at most a page minus the skb's headroom and shared info; only the
    CHECKSUM_COMPLETE flag; no cpu or batch_size."""
    fd = skb_prog(tsys, name)
    got = {n: progrun.test_run(tsys, fd, data=bytes(n), data_out_len=n + 8).errno for n in (13, 14, 3712, 3713)}
    assert got == {13: EINVAL, 14: 0, 3712: 0, 3713: EINVAL}
    assert progrun.test_run(tsys, fd, data=FRAME, flags=BPF_F_TEST_RUN_ON_CPU).errno == EINVAL
    assert progrun.test_run(tsys, fd, data=FRAME, flags=BPF_F_TEST_SKB_CHECKSUM_COMPLETE).errno == 0
    assert progrun.test_run(tsys, fd, data=FRAME, cpu=1).errno == EINVAL
    assert progrun.test_run(tsys, fd, data=FRAME, batch_size=1).errno == EINVAL
    assert progrun.test_run(tsys, fd, data=None, data_size_in=60).errno == EFAULT


@pytest.mark.parametrize("name", ["socket_filter", "sched_cls"])
def test_skb_short_ip_headers(tsys, name):
    """An IPv4 frame needs 20 bytes after the Ethernet header, an IPv6 one 40."""
    fd = skb_prog(tsys, name)
    ip4, ip6 = bytes(12) + b"\x08\x00", bytes(12) + b"\x86\xdd"
    assert progrun.test_run(tsys, fd, data=ip4 + bytes(19)).errno == EINVAL
    assert progrun.test_run(tsys, fd, data=ip4 + bytes(20)).errno == 0
    assert progrun.test_run(tsys, fd, data=ip6 + bytes(39)).errno == EINVAL
    assert progrun.test_run(tsys, fd, data=ip6 + bytes(40)).errno == 0


@pytest.mark.parametrize("name", ["socket_filter", "sched_cls"])
def test_skb_partial_copies(tsys, name):
    """data_size_out smaller than the frame: ENOSPC after copying that much, data_size_out says the full
    size; 0 means 'no limit'; a NULL data_out copies nothing but still reports."""
    fd = skb_prog(tsys, name)
    r = progrun.test_run(tsys, fd, data=FRAME, data_size_out=20)
    assert (r.errno, r.data_size_out, r.retval) == (ENOSPC, 60, 1)
    want = FRAME if name in L2 else bytes(14) + FRAME[14:]
    assert r.data_out[:20] == want[:20] and r.data_out[20:24] == b"\xee" * 4
    r = progrun.test_run(tsys, fd, data=FRAME, data_size_out=0, data_out_len=100)
    assert (r.errno, r.data_size_out) == (0, 60) and r.data_out[:60] == want
    r = progrun.test_run(tsys, fd, data=FRAME, no_data_out=True)
    assert (r.errno, r.data_size_out, r.retval) == (0, 60, 1)


def sk_buff(**fields):
    """A struct __sk_buff with the given u32 fields (cb: 5 words; tstamp, hwtstamp: u64)."""
    offs = {"len": 0, "mark": 8, "priority": 32, "ingress_ifindex": 36, "ifindex": 40, "tc_index": 44,
            "wire_len": 160, "gso_segs": 164, "gso_size": 176, "pkt_type": 4, "data": 76, "hash": 68}
    c = bytearray(SK_BUFF)
    for k, v in fields.items():
        if k == "cb":
            struct.pack_into("<5I", c, 48, *v)
        elif k in ("tstamp", "hwtstamp"):
            struct.pack_into("<Q", c, 152 if k == "tstamp" else 184, v)
        elif k == "tstamp_type":
            c[180] = v
        else:
            struct.pack_into("<I", c, offs[k], v)
    return bytes(c)


@pytest.mark.parametrize("name", ["socket_filter", "sched_cls", "cgroup_skb"])
def test_skb_ctx_in_and_out(tsys, name):
    """Only mark, priority, ingress_ifindex, ifindex (of an existing device), cb, tstamp, wire_len (not below
    the skb's length), gso_segs, gso_size and hwtstamp may be set; ctx_out comes back with ifindex the
    device's (loopback, 1) and wire_len the skb length when it was 0."""
    fd = skb_prog(tsys, name)
    skb_len = 60 if name in L2 else 46
    ok = sk_buff(mark=5, priority=6, ingress_ifindex=7, ifindex=1, cb=(1, 2, 3, 4, 5), tstamp=99,
                 gso_segs=3, gso_size=1400, hwtstamp=123)
    r = progrun.test_run(tsys, fd, data=FRAME, ctx=ok)
    assert (r.errno, r.ctx_size_out) == (0, SK_BUFF)
    want = bytearray(ok)
    struct.pack_into("<I", want, 160, skb_len)  # wire_len
    assert r.ctx_out[:SK_BUFF] == bytes(want)
    r = progrun.test_run(tsys, fd, data=FRAME, ctx=sk_buff(wire_len=skb_len + 5))
    assert r.errno == 0 and struct.unpack_from("<I", r.ctx_out, 160)[0] == skb_len + 5
    for bad in (dict(len=1), dict(pkt_type=1), dict(tc_index=1), dict(hash=1), dict(data=1), dict(tstamp_type=1),
                dict(wire_len=skb_len - 1), dict(wire_len=70000), dict(gso_segs=70000)):
        assert progrun.test_run(tsys, fd, data=FRAME, ctx=sk_buff(**bad)).errno == EINVAL, bad
    assert progrun.test_run(tsys, fd, data=FRAME, ctx=sk_buff(ifindex=0xfffff)).errno == ENODEV


@pytest.mark.parametrize("name", ["socket_filter", "sched_cls"])
def test_skb_ctx_sizes(tsys, name):
    """A short ctx_in is zero-extended; a long one must be zero past __sk_buff (E2BIG); ctx_out too small:
    ENOSPC after a partial copy, ctx_size_out says the full size."""
    fd = skb_prog(tsys, name)
    r = progrun.test_run(tsys, fd, data=FRAME, ctx=sk_buff(mark=9)[:12], ctx_out_len=SK_BUFF)
    assert (r.errno, r.ctx_size_out) == (0, SK_BUFF) and r.ctx_out[8:12] == struct.pack("<I", 9)
    assert progrun.test_run(tsys, fd, data=FRAME, ctx=sk_buff() + bytes(8)).errno == 0
    assert progrun.test_run(tsys, fd, data=FRAME, ctx=sk_buff() + b"\0\1").errno == E2BIG
    r = progrun.test_run(tsys, fd, data=FRAME, ctx=sk_buff(mark=3), ctx_size_out=16)
    assert (r.errno, r.ctx_size_out, r.retval, r.data_size_out) == (ENOSPC, SK_BUFF, 1, 60)
    assert r.ctx_out[:16] == sk_buff(mark=3)[:16] and r.ctx_out[16:20] == b"\xee" * 4
    # data_out too small: ENOSPC there, and ctx_out is never written
    r = progrun.test_run(tsys, fd, data=FRAME, ctx=sk_buff(mark=3), data_size_out=10)
    assert r.errno == ENOSPC and r.ctx_out[:4] == b"\xee" * 4


def test_ctx_pointer_and_size_come_together(tsys):
    fd = skb_prog(tsys, "sched_cls")
    assert progrun.test_run(tsys, fd, data=FRAME, ctx=sk_buff(), ctx_size_in=0).errno == EINVAL
    assert progrun.test_run(tsys, fd, data=FRAME, ctx=sk_buff(), ctx_size_out=0).errno == EINVAL
    assert progrun.test_run(tsys, fd, data=FRAME, ctx_size_in=8).errno == EINVAL


def skb_field_reader(offsets):
    """A tc program copying the u32 __sk_buff fields at ``offsets`` into the packet (8 bytes apart)."""
    body = [BPF_MOV64_REG(BPF_REG_9, BPF_REG_1),
            BPF_LDX_MEM(BPF_W, BPF_REG_6, BPF_REG_9, 76), BPF_LDX_MEM(BPF_W, BPF_REG_7, BPF_REG_9, 80),
            BPF_MOV64_REG(BPF_REG_8, BPF_REG_6), BPF_ALU64_IMM(BPF_ADD, BPF_REG_8, 8 * len(offsets)),
            BPF_JMP_REG(BPF_JGT, BPF_REG_8, BPF_REG_7, 2 * len(offsets))]
    for k, off in enumerate(offsets):
        body += [BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_9, off), BPF_STX_MEM(BPF_DW, BPF_REG_6, BPF_REG_2, 8 * k)]
    return body + [BPF_MOV64_IMM(BPF_REG_0, 0), BPF_EXIT_INSN()]


READABLE = {"len": 0, "pkt_type": 4, "mark": 8, "queue_mapping": 12, "protocol": 16, "vlan_present": 20,
            "priority": 32, "ingress_ifindex": 36, "ifindex": 40, "tc_index": 44, "cb0": 48, "cb4": 64,
            "hash": 68, "tc_classid": 72, "napi_id": 84, "wire_len": 160, "gso_segs": 164, "gso_size": 176}


@pytest.mark.parametrize("dst_mac, proto", [(bytes(6), b"\x08\x00"), (b"\xff" * 6, b"\x86\xdd"),
                                           (b"\x01\x00\x5e\x00\x00\x01", b"\x08\x06"),
                                           (b"\x02" + bytes(5), b"\x00\x40")])
def test_skb_fields_a_tc_program_reads(tsys, dst_mac, proto):
    """len, pkt_type (from the destination MAC against the loopback's all-zero address), protocol (as stored,
    network order), ifindex and the fields set through ctx_in, as a tc program reads them."""
    names = sorted(READABLE)
    fd = load(tsys, skb_field_reader([READABLE[n] for n in names]), u.BPF_PROG_TYPE_SCHED_CLS)
    frame = dst_mac + b"\x02" * 6 + proto + bytes(range(100, 250))
    ctx = sk_buff(mark=0x11, priority=0x22, ingress_ifindex=1, cb=(7, 0, 0, 0, 9), gso_segs=4, gso_size=900,
                  wire_len=len(frame) + 2)
    r = progrun.test_run(tsys, fd, data=frame, ctx=ctx)
    assert r.errno == 0, r
    got = dict(zip(names, struct.unpack("<%dQ" % len(names), r.data_out[:8 * len(names)])))
    # the loopback device's address and broadcast address are all zero: ff:ff:ff:ff:ff:ff is only multicast
    pkt_type = 0 if dst_mac == bytes(6) else 2 if dst_mac[0] & 1 else 3
    ptype = struct.unpack(">H", proto)[0]
    protocol = proto if ptype >= 0x600 else (b"\x00\x04")  # 802.3 length: ETH_P_802_2 (no 0xffff after it)
    want = {"len": len(frame), "pkt_type": pkt_type, "mark": 0x11, "queue_mapping": 0,
            "protocol": struct.unpack("<H", protocol)[0], "vlan_present": 0, "priority": 0x22,
            "ingress_ifindex": 1, "ifindex": 1, "tc_index": 0, "cb0": 7, "cb4": 9, "hash": 0, "tc_classid": 0,
            "napi_id": 0, "wire_len": len(frame) + 2, "gso_segs": 4, "gso_size": 900}
    assert got == want


# ---- XDP ---------------------------------------------------------------------------------------------------

def xdp_reporter():
    """An XDP program returning (data_end - data) << 8 | (data - data_meta) | ingress_ifindex << 20 |
    rx_queue_index << 28."""
    return [BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_1, 0), BPF_LDX_MEM(BPF_W, BPF_REG_3, BPF_REG_1, 4),
            BPF_LDX_MEM(BPF_W, BPF_REG_4, BPF_REG_1, 8), BPF_LDX_MEM(BPF_W, BPF_REG_5, BPF_REG_1, 12),
            BPF_LDX_MEM(BPF_W, BPF_REG_6, BPF_REG_1, 16),
            BPF_MOV64_REG(BPF_REG_0, BPF_REG_3), BPF_ALU64_REG(BPF_SUB, BPF_REG_0, BPF_REG_2),
            BPF_ALU64_IMM(BPF_LSH, BPF_REG_0, 8),
            BPF_MOV64_REG(BPF_REG_7, BPF_REG_2), BPF_ALU64_REG(BPF_SUB, BPF_REG_7, BPF_REG_4),
            BPF_ALU64_REG(BPF_OR, BPF_REG_0, BPF_REG_7),
            BPF_ALU64_IMM(BPF_LSH, BPF_REG_5, 20), BPF_ALU64_REG(BPF_OR, BPF_REG_0, BPF_REG_5),
            BPF_ALU64_IMM(BPF_LSH, BPF_REG_6, 28), BPF_ALU64_REG(BPF_OR, BPF_REG_0, BPF_REG_6),
            BPF_EXIT_INSN()]


def xdp_md(data=0, data_end=0, data_meta=0, ingress_ifindex=0, rx_queue_index=0, egress_ifindex=0):
    return struct.pack("<6I", data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex)


def reported(linear, meta=0, ifindex=1, rxq=0):
    return linear << 8 | meta | ifindex << 20 | rxq << 28


def test_xdp_plain(tsys):
    fd = load(tsys, xdp_reporter(), u.BPF_PROG_TYPE_XDP)
    r = progrun.test_run(tsys, fd, data=FRAME)
    assert (r.errno, r.retval, r.data_size_out) == (0, reported(60), 60) and r.data_out[:60] == FRAME
    r = progrun.test_run(tsys, fd, data=FRAME, repeat=3)
    assert (r.errno, r.retval) == (0, reported(60))


@pytest.mark.parametrize("frags_flag", [0, BPF_F_XDP_HAS_FRAGS])
def test_xdp_sizes_and_frags(tsys, frags_flag):
    """Up to a page minus headroom and shared info is linear; more goes into page-sized frags (whether or
    not the program was loaded with BPF_F_XDP_HAS_FRAGS), at most 17 of them (ENOMEM past that)."""
    fd = load(tsys, xdp_reporter(), u.BPF_PROG_TYPE_XDP, prog_flags=frags_flag)
    for n, want in ((13, EINVAL), (14, 0), (3520, 0), (3521, 0), (3520 + 17 * 4096, 0), (3520 + 17 * 4096 + 1, ENOMEM)):
        r = progrun.test_run(tsys, fd, data=bytes(n), data_out_len=n + 8)
        assert r.errno == want, n
        if want == 0:
            assert r.retval == reported(min(n, 3520)) and r.data_size_out == n
    data = bytes(range(256)) * 20
    r = progrun.test_run(tsys, fd, data=data, data_out_len=6000)
    assert (r.errno, r.data_size_out, r.retval) == (0, len(data), reported(3520)) and r.data_out[:len(data)] == data


def test_xdp_frags_partial_copy(tsys):
    """With frags, a short data_size_out copies (size_out - frags size) linear bytes and then the frags from
    there: the kernel's arithmetic, gaps and all; below the frags' size nothing at all (and no sizes)."""
    fd = load(tsys, xdp_reporter(), u.BPF_PROG_TYPE_XDP)
    data = bytes(range(256)) * 20  # 3520 linear + 1600 in a frag
    r = progrun.test_run(tsys, fd, data=data, data_out_len=6000, data_size_out=4000)
    assert (r.errno, r.data_size_out) == (ENOSPC, len(data))
    assert r.data_out[:2400] == data[:2400] and r.data_out[2400:4000] == data[3520:] and \
        r.data_out[4000:4004] == b"\xee" * 4
    r = progrun.test_run(tsys, fd, data=data, data_out_len=6000, data_size_out=1000)
    assert r.errno == ENOSPC and r.data_size_out == 1000 and r.data_out[:4] == b"\xee" * 4


@pytest.mark.parametrize("md, errno_, linear, meta", [
    (dict(data_end=60), 0, 60, 0),
    (dict(data=4, data_end=60), 0, 56, 4),
    (dict(data=216, data_end=240), 0, 24, 216),
    (dict(data=220, data_end=240), EINVAL, 0, 0),      # more metadata than the headroom leaves
    (dict(data=3, data_end=60), EINVAL, 0, 0),         # metadata not a multiple of 4
    (dict(data=10, data_end=8), EINVAL, 0, 0),
    (dict(data_meta=4, data_end=60), EINVAL, 0, 0),    # no user data before the metadata
    (dict(data_end=361), EINVAL, 0, 0),                # past data_size_in
    (dict(data_end=30), 0, 30, 0),                     # the rest goes into a frag
    (dict(data_end=0), 0, 0, 0),
    (dict(data=4, data_end=17), 0, 13, 4),             # the frame size check counts data_size_in
    (dict(data_end=60, egress_ifindex=1), EINVAL, 0, 0),
    (dict(data_end=60, rx_queue_index=1), EINVAL, 0, 0),
    (dict(data_end=60, ingress_ifindex=1), 0, 60, 0),
    (dict(data_end=60, ingress_ifindex=1, rx_queue_index=1), EINVAL, 0, 0),
    (dict(data_end=60, ingress_ifindex=0xfffff), ENODEV, 0, 0),
])
def test_xdp_ctx(tsys, md, errno_, linear, meta):
    """xdp_md in: data is the metadata size, data_end the linear size, both counted from the start of
    data_in; out: the same after the run."""
    if md.get("data", 0) > tsys.profile.xdp_meta_max:  # more metadata than the version takes (6.1: 32 bytes)
        errno_ = EINVAL
    fd = load(tsys, xdp_reporter(), u.BPF_PROG_TYPE_XDP)
    data = bytes(range(1, 61)) + bytes(300)
    r = progrun.test_run(tsys, fd, data=data, ctx=xdp_md(**md))
    assert r.errno == errno_, r
    if errno_:
        return
    assert r.retval == reported(linear, meta, md.get("ingress_ifindex") or 1)
    assert (r.data_size_out, r.data_out[:len(data)]) == (len(data), data)
    assert (r.ctx_size_out, r.ctx_out[:XDP_MD]) == (XDP_MD, xdp_md(**dict(md, data=meta, data_end=meta + linear)))


def test_xdp_ctx_sizes(tsys):
    fd = load(tsys, xdp_reporter(), u.BPF_PROG_TYPE_XDP)
    assert progrun.test_run(tsys, fd, data=FRAME, ctx=xdp_md(data_end=60) + bytes(4)).errno == 0
    assert progrun.test_run(tsys, fd, data=FRAME, ctx=xdp_md(data_end=60) + b"\1\0\0\0").errno == E2BIG
    r = progrun.test_run(tsys, fd, data=FRAME, ctx=xdp_md(data_end=60)[:8])
    assert (r.errno, r.retval, r.ctx_size_out) == (0, reported(60), XDP_MD)


def test_xdp_flags(tsys):
    """Only BPF_F_TEST_XDP_LIVE_FRAMES; batch_size only with it; cpu is ignored; devmap/cpumap programs have
    no test run."""
    fd = load(tsys, xdp_reporter(), u.BPF_PROG_TYPE_XDP)
    assert progrun.test_run(tsys, fd, data=FRAME, flags=BPF_F_TEST_RUN_ON_CPU).errno == EINVAL
    assert progrun.test_run(tsys, fd, data=FRAME, flags=BPF_F_TEST_SKB_CHECKSUM_COMPLETE).errno == EINVAL
    assert progrun.test_run(tsys, fd, data=FRAME, batch_size=1).errno == EINVAL
    r = progrun.test_run(tsys, fd, data=FRAME, cpu=1)
    assert (r.errno, r.retval) == (0, reported(60))
    for eat in (u.BPF_XDP_DEVMAP, u.BPF_XDP_CPUMAP):
        fd2 = load(tsys, [BPF_MOV64_IMM(BPF_REG_0, 2), BPF_EXIT_INSN()], u.BPF_PROG_TYPE_XDP,
                   expected_attach_type=eat)
        assert progrun.test_run(tsys, fd2, data=FRAME).errno == EINVAL


def test_xdp_live_frames(tsys):
    """Live frames: the program runs on copies that go on to the stack; the call reports retval 0 and the
    frame as it was given; no ctx_out/data_out with a ctx; batch_size at most 256."""
    fd = load(tsys, [BPF_MOV64_IMM(BPF_REG_0, 1), BPF_EXIT_INSN()], u.BPF_PROG_TYPE_XDP)  # XDP_DROP
    r = progrun.test_run(tsys, fd, data=FRAME, flags=BPF_F_TEST_XDP_LIVE_FRAMES)
    assert (r.errno, r.retval, r.data_size_out) == (0, 0, 60) and r.data_out[:60] == FRAME
    r = progrun.test_run(tsys, fd, data=FRAME, flags=BPF_F_TEST_XDP_LIVE_FRAMES, repeat=5, batch_size=2)
    assert (r.errno, r.retval) == (0, 0)
    assert progrun.test_run(tsys, fd, data=FRAME, flags=BPF_F_TEST_XDP_LIVE_FRAMES, batch_size=257).errno == E2BIG
    assert progrun.test_run(tsys, fd, data=FRAME, ctx=xdp_md(data_end=60),
                            flags=BPF_F_TEST_XDP_LIVE_FRAMES).errno == EINVAL
    # live frames carry a page head (struct xdp_page_head: 112 bytes, 152 on 6.1) that leaves less room; no
    # jumbo frames
    room = 3520 - tsys.profile.size("xdp_page_head")
    assert progrun.test_run(tsys, fd, data=bytes(room), flags=BPF_F_TEST_XDP_LIVE_FRAMES,
                            data_out_len=3500).errno == 0
    assert progrun.test_run(tsys, fd, data=bytes(room + 1), flags=BPF_F_TEST_XDP_LIVE_FRAMES,
                            data_out_len=3500).errno == EINVAL


def test_xdp_program_changes_reach_data_out(tsys):
    """What the program writes into the packet is what data_out holds (after repeat runs on the same
    buffer: each run sees the previous one's change)."""
    prog = [BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_1, 0), BPF_LDX_MEM(BPF_W, BPF_REG_3, BPF_REG_1, 4),
            BPF_MOV64_REG(BPF_REG_4, BPF_REG_2), BPF_ALU64_IMM(BPF_ADD, BPF_REG_4, 8),
            BPF_JMP_REG(BPF_JGT, BPF_REG_4, BPF_REG_3, 3),
            BPF_LDX_MEM(BPF_DW, BPF_REG_5, BPF_REG_2, 0), BPF_ALU64_IMM(BPF_ADD, BPF_REG_5, 1),
            BPF_STX_MEM(BPF_DW, BPF_REG_2, BPF_REG_5, 0),
            BPF_MOV64_IMM(BPF_REG_0, 2), BPF_EXIT_INSN()]
    fd = load(tsys, prog, u.BPF_PROG_TYPE_XDP)
    r = progrun.test_run(tsys, fd, data=bytes(60), repeat=7)
    assert (r.errno, r.retval) == (0, 2) and struct.unpack_from("<Q", r.data_out)[0] == 7


# ---- raw tracepoints and syscall programs --------------------------------------------------------------

ARGS_READER = [BPF_LDX_MEM(BPF_DW, BPF_REG_0, BPF_REG_1, 16), BPF_LDX_MEM(BPF_DW, BPF_REG_2, BPF_REG_1, 0),
               BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_2), BPF_EXIT_INSN()]


def run_args(tsys, fd, **kw):
    kw.setdefault("no_data_out", True)
    kw.setdefault("no_ctx_out", True)
    return progrun.test_run(tsys, fd, **kw)


def test_raw_tp(tsys):
    """ctx_in is the arguments (u64s): at least what the program reads, at most 12; nothing else but flags
    and cpu; a cpu needs BPF_F_TEST_RUN_ON_CPU and must be online (ENXIO); unknown flag bits are ignored."""
    fd = load(tsys, ARGS_READER, u.BPF_PROG_TYPE_RAW_TRACEPOINT)
    args = struct.pack("<3Q", 5, 7, 0x100000009)
    assert (run_args(tsys, fd, ctx=args).errno, run_args(tsys, fd, ctx=args).retval) == (0, 14)
    sizes = {n: run_args(tsys, fd, ctx=(args + bytes(96))[:n]).errno for n in (16, 23, 24, 96, 97, 104)}
    assert sizes == {16: EINVAL, 23: EINVAL, 24: 0, 96: 0, 97: EINVAL, 104: EINVAL}
    assert run_args(tsys, fd).errno == EINVAL
    for bad in (dict(data=bytes(8)), dict(no_data_out=False), dict(no_ctx_out=False), dict(repeat=1),
                dict(cpu=1), dict(batch_size=1)):
        assert run_args(tsys, fd, ctx=args, **bad).errno == EINVAL, bad
    assert run_args(tsys, fd, ctx=args, cpu=1, flags=BPF_F_TEST_RUN_ON_CPU).retval == 14
    assert run_args(tsys, fd, ctx=args, cpu=4096, flags=BPF_F_TEST_RUN_ON_CPU).errno == ENXIO
    assert run_args(tsys, fd, ctx=args, flags=2).errno == 0
    fd2 = load(tsys, [BPF_MOV64_IMM(BPF_REG_0, 3), BPF_EXIT_INSN()], u.BPF_PROG_TYPE_RAW_TRACEPOINT)
    r = run_args(tsys, fd2)
    assert (r.errno, r.retval) == (0, 3)


def test_raw_tp_cpu_past_the_online_ones(tsys):
    fd = load(tsys, ARGS_READER, u.BPF_PROG_TYPE_RAW_TRACEPOINT)
    ncpus = possible_cpus(tsys)
    args = bytes(24)
    assert run_args(tsys, fd, ctx=args, cpu=ncpus - 1, flags=BPF_F_TEST_RUN_ON_CPU).errno == 0
    assert run_args(tsys, fd, ctx=args, cpu=ncpus, flags=BPF_F_TEST_RUN_ON_CPU).errno == ENXIO


def test_syscall_prog(tsys):
    """A syscall program's ctx_in is its context, written back to ctx_in after the run; no data, no
    ctx_out, no repeat or flags; ctx_size_in from what it reads up to 65535. A version whose verifier
    refuses BPF_ST into the context (``st_to_ctx``, 6.3) gets the store as BPF_STX."""
    prog = [BPF_LDX_MEM(BPF_W, BPF_REG_0, BPF_REG_1, 4), BPF_ST_MEM(BPF_W, BPF_REG_1, 0, 77), BPF_EXIT_INSN()]
    if not tsys.profile.st_to_ctx:
        with pytest.raises(OSError) as e:
            progrun.load(tsys, prog, u.BPF_PROG_TYPE_SYSCALL, prog_flags=BPF_F_SLEEPABLE)
        assert e.value.errno == 13 and "BPF_ST stores into R1 ctx is not allowed\n" in e.value.log, e.value.log
        prog = [BPF_LDX_MEM(BPF_W, BPF_REG_0, BPF_REG_1, 4), BPF_MOV64_IMM(BPF_REG_2, 77),
                BPF_STX_MEM(BPF_W, BPF_REG_1, BPF_REG_2, 0), BPF_EXIT_INSN()]
    fd = load(tsys, prog, u.BPF_PROG_TYPE_SYSCALL, prog_flags=BPF_F_SLEEPABLE)
    import ctypes
    c = ctypes.create_string_buffer(struct.pack("<II", 1, 9), 8)
    a = u.make_attr(**{"test.prog_fd": fd, "test.ctx_in": ctypes.addressof(c), "test.ctx_size_in": 8})
    tsys.bpf(u.BPF_PROG_TEST_RUN, a)
    assert a.test.retval == 9 and c.raw == struct.pack("<II", 77, 9)
    sizes = {n: run_args(tsys, fd, ctx=struct.pack("<II", 1, 9).ljust(n, b"\0")[:n] if n else None).errno
             for n in (0, 4, 8, 65535, 65536)}
    assert sizes == {0: EINVAL, 4: EINVAL, 8: 0, 65535: 0, 65536: EINVAL}
    for bad in (dict(data=bytes(8)), dict(no_data_out=False), dict(no_ctx_out=False), dict(repeat=1),
                dict(flags=1), dict(batch_size=1)):
        assert run_args(tsys, fd, ctx=bytes(8), **bad).errno == EINVAL, bad


NO_TEST_RUN = [("KPROBE", 0), ("TRACEPOINT", 0), ("PERF_EVENT", 0), ("CGROUP_SOCK", "BPF_CGROUP_INET_SOCK_CREATE"),
               ("SOCK_OPS", 0), ("SK_SKB", 0), ("SK_MSG", 0), ("CGROUP_DEVICE", 0), ("CGROUP_SYSCTL", 0),
               ("CGROUP_SOCKOPT", "BPF_CGROUP_GETSOCKOPT"), ("SK_REUSEPORT", 0),
               ("CGROUP_SOCK_ADDR", "BPF_CGROUP_INET4_BIND"), ("RAW_TRACEPOINT_WRITABLE", 0), ("LWT_SEG6LOCAL", 0)]


@pytest.mark.parametrize("name, eat", NO_TEST_RUN)
def test_types_without_test_run(tsys, name, eat):
    """ENOTSUPP (524) from the types whose prog_ops have no test_run, whatever the attr says; a version that
    has a test run for one (its profile's ``test_run_types``: LWT_SEG6LOCAL on 6.1) runs it as an skb
    program that does not see the Ethernet header."""
    ptype = getattr(u, "BPF_PROG_TYPE_" + name)
    fd = load(tsys, [BPF_MOV64_IMM(BPF_REG_0, 0), BPF_EXIT_INSN()], ptype,
              expected_attach_type=getattr(u, eat) if eat else 0)
    if ptype in tsys.profile.test_run_types:
        r = progrun.test_run(tsys, fd, data=FRAME)
        assert (r.errno, r.retval, r.data_size_out) == (0, 0, len(FRAME)), r
        assert r.data_out[:len(FRAME)] == bytes(14) + FRAME[14:]
        return
    assert progrun.test_run(tsys, fd, data=FRAME).errno == ENOTSUPP
    assert run_args(tsys, fd).errno == ENOTSUPP


def _flat_members(btf, type_id, base=0):
    """{member name: (byte offset, size)} of a struct, anonymous struct/union members flattened."""
    from bpfemu.btf import uapi as B
    t, _ = btf.skip_modifiers(type_id)
    out = {}
    for m in t.members:
        off = base + btf.member_bit_offset(t, m) // 8
        name = btf.str_by_offset(m[0]).decode() if m[0] else ""
        mt, _ = btf.skip_modifiers(m[1])
        if not name and mt.kind in (B.BTF_KIND_STRUCT, B.BTF_KIND_UNION):
            out.update(_flat_members(btf, m[1], off))
        elif name:
            out[name] = (off, btf.size_of(m[1]))
    return out


@pytest.mark.bpf_needs_linux("comparing with the host's kernel BTF")
def test_ctx_layouts_match_the_host_btf():
    """The offsets bpfemu.prog.test_run serves for struct __sk_buff and struct xdp_md are the kernel's."""
    from bpfemu.btf import uapi as B
    from bpfemu.btf.vmlinux import vmlinux_btf
    from bpfemu.prog import test_run as T
    path = "/sys/kernel/btf/vmlinux"
    if not os.path.exists(path):
        pytest.skip("no kernel BTF here")
    b = vmlinux_btf(path, fallback=False)
    for name, fields, size in (("__sk_buff", T.SK_BUFF_FIELDS, T.SK_BUFF_SIZE), ("xdp_md", T.XDP_MD_FIELDS,
                                                                               T.XDP_MD_SIZE)):
        tid = b.find_by_name_kind(name, B.BTF_KIND_STRUCT)
        assert b.size_of(tid) == size
        got = _flat_members(b, tid)
        for field, (off, n) in fields.items():
            assert got[field] == (off, n), (name, field)


# ---- flow dissector and sk_lookup ------------------------------------------------------------------------

FLOW_KEYS = 56
FD_PROG = [  # keys->sport = data_end - data; keys->dport = nhoff as given; flow_label = flags;
             # addr_proto = n_proto; nhoff = 1000 and thoff = 5 (both clamped afterwards); return BPF_OK
    BPF_LDX_MEM(BPF_DW, BPF_REG_2, BPF_REG_1, 144), BPF_LDX_MEM(BPF_W, BPF_REG_3, BPF_REG_1, 76),
    BPF_LDX_MEM(BPF_W, BPF_REG_4, BPF_REG_1, 80),
    BPF_ALU64_REG(BPF_SUB, BPF_REG_4, BPF_REG_3), BPF_STX_MEM(BPF_H, BPF_REG_2, BPF_REG_4, 12),
    BPF_LDX_MEM(BPF_H, BPF_REG_5, BPF_REG_2, 0), BPF_STX_MEM(BPF_H, BPF_REG_2, BPF_REG_5, 14),
    BPF_LDX_MEM(BPF_W, BPF_REG_5, BPF_REG_2, 48), BPF_STX_MEM(BPF_W, BPF_REG_2, BPF_REG_5, 52),
    BPF_LDX_MEM(BPF_H, BPF_REG_5, BPF_REG_2, 10), BPF_STX_MEM(BPF_H, BPF_REG_2, BPF_REG_5, 4),
    BPF_LDX_MEM(BPF_W, BPF_REG_7, BPF_REG_1, 80), BPF_MOV64_REG(BPF_REG_6, BPF_REG_3),
    BPF_ALU64_IMM(BPF_ADD, BPF_REG_6, 15), BPF_JMP_REG(BPF_JGT, BPF_REG_6, BPF_REG_7, 2),
    BPF_LDX_MEM(BPF_B, BPF_REG_5, BPF_REG_3, 14), BPF_STX_MEM(BPF_B, BPF_REG_2, BPF_REG_5, 9),  # ip_proto
    BPF_ST_MEM(BPF_H, BPF_REG_2, 0, 1000), BPF_ST_MEM(BPF_H, BPF_REG_2, 2, 5),
    BPF_MOV64_IMM(BPF_REG_0, 0), BPF_EXIT_INSN()]


def flow_keys(nhoff=0, thoff=0, addr_proto=0, ip_proto=0, n_proto=0, sport=0, dport=0, flags=0, label=0):
    k = bytearray(FLOW_KEYS)
    struct.pack_into("<HHH", k, 0, nhoff, thoff, addr_proto)
    k[9] = ip_proto
    struct.pack_into("<HHH", k, 10, n_proto, sport, dport)
    struct.pack_into("<II", k, 48, flags, label)
    return bytes(k)


def test_flow_dissector(tsys):
    """The keys come back as data_out: nhoff/thoff set by the program are clamped into [14, data size] and
    [nhoff, data size]; n_proto is the frame's ethertype as stored; ctx_in may set only flags."""
    fd = load(tsys, FD_PROG, u.BPF_PROG_TYPE_FLOW_DISSECTOR)
    frame = bytes(12) + b"\x08\x00" + bytes(range(0x33, 0x33 + 46))
    r = progrun.test_run(tsys, fd, data=frame)
    assert (r.errno, r.retval, r.data_size_out) == (0, 0, FLOW_KEYS)
    want = flow_keys(60, 60, 0x0008, 0x33, 0x0008, 60, 14)
    assert r.data_out[:FLOW_KEYS] == want
    ctx = flow_keys(flags=7)
    r = progrun.test_run(tsys, fd, data=frame, ctx=ctx, repeat=3)
    assert r.errno == 0 and r.data_out[:FLOW_KEYS] == flow_keys(60, 60, 0x0008, 0x33, 0x0008, 60, 14, 7, 7)
    assert (r.ctx_size_out, r.ctx_out[:FLOW_KEYS]) == (FLOW_KEYS, ctx)
    assert progrun.test_run(tsys, fd, data=frame, ctx=flow_keys(nhoff=3)).errno == EINVAL
    assert progrun.test_run(tsys, fd, data=frame, ctx=flow_keys(label=3)).errno == EINVAL
    sizes = {n: progrun.test_run(tsys, fd, data=bytes(n)).errno for n in (13, 14, 4096, 4097)}
    assert sizes == {13: EINVAL, 14: 0, 4096: 0, 4097: EINVAL}
    r = progrun.test_run(tsys, fd, data=bytes(4096))
    assert r.data_out[:4] == struct.pack("<HH", 1000, 1000)  # inside the frame now: kept
    for bad in (dict(flags=1), dict(cpu=1), dict(batch_size=1)):
        assert progrun.test_run(tsys, fd, data=frame, **bad).errno == EINVAL
    r = progrun.test_run(tsys, fd, data=frame, data_size_out=10)
    assert (r.errno, r.data_size_out) == (ENOSPC, FLOW_KEYS) and r.data_out[:10] == want[:10]


def sk_lookup_ctx(family=2, protocol=6, remote_ip4=0, remote_port=0, local_ip4=0, local_port=0, sk=0,
                  ingress_ifindex=0, remote_ip6=bytes(16), local_ip6=bytes(16)):
    return struct.pack("<QIII16sHHI16sII", sk, family, protocol, remote_ip4, remote_ip6, remote_port, 0,
                       local_ip4, local_ip6, local_port, ingress_ifindex) + bytes(4)


SK_LOOKUP_PROG = [  # SK_PASS when (local_port + remote_port + remote_ip4 + local_ip6[3] + protocol) is odd
    BPF_LDX_MEM(BPF_W, BPF_REG_0, BPF_REG_1, 60), BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_1, 36),
    BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_2), BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_1, 16),
    BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_2), BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_1, 56),
    BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_2), BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_1, 12),
    BPF_ALU64_REG(BPF_ADD, BPF_REG_0, BPF_REG_2),
    BPF_ALU64_IMM(BPF_AND, BPF_REG_0, 1), BPF_EXIT_INSN()]


def test_sk_lookup(tsys):
    """sk_lookup: the ctx is required and is the lookup; the program sees the v4 or the v6 addresses by
    family; retval SK_PASS/SK_DROP; ctx_out with cookie 0; no data at all."""
    fd = load(tsys, SK_LOOKUP_PROG, u.BPF_PROG_TYPE_SK_LOOKUP, expected_attach_type=u.BPF_SK_LOOKUP)

    def run(**kw):
        kw.setdefault("no_data_out", True)
        return progrun.test_run(tsys, fd, **kw)
    cases = [(dict(local_port=81), 1), (dict(local_port=80), 0), (dict(local_port=80, remote_port=1), 1),
             (dict(local_port=80, remote_ip4=3, protocol=17), 0),
             (dict(family=10, local_port=80, remote_ip4=1, local_ip6=bytes(12) + b"\x01\0\0\0"), 1)]  # no ip4 in v6
    for fields, want in cases:
        ctx = sk_lookup_ctx(**fields)
        r = run(ctx=ctx)
        assert (r.errno, r.retval, r.data_size_out) == (0, want, 0), fields
        assert r.ctx_out[:72] == ctx and r.ctx_size_out == 72
    assert run(ctx=sk_lookup_ctx(local_port=81), repeat=3).retval == 1
    assert run(ctx=sk_lookup_ctx(local_port=81)[:64]).errno == 0
    errs = [run(ctx=sk_lookup_ctx(family=1)).errno, run(ctx=sk_lookup_ctx(local_port=70000)).errno,
            run(ctx=sk_lookup_ctx(sk=1)).errno, run(ctx=sk_lookup_ctx(ingress_ifindex=1)).errno, run().errno,
            run(ctx=sk_lookup_ctx(), data=bytes(20)).errno, run(ctx=sk_lookup_ctx(), no_data_out=False).errno,
            run(ctx=sk_lookup_ctx(), flags=1).errno]
    assert errs == [97, 34, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL, EINVAL]  # EAFNOSUPPORT, ERANGE, ...


def test_command_checks_and_their_order(tsys):
    """The command's own checks: nonzero bytes after test.batch_size, then the ctx pointer/size pairs (both
    before the fd is looked at), then the fd: EBADF when nothing is open, EINVAL for an fd that is not a
    program."""
    import ctypes
    from bpfemu.testing.support import array_map
    m = array_map(tsys)
    assert progrun.test_run(tsys, 9999, data=FRAME).errno == 9
    assert progrun.test_run(tsys, m, data=FRAME).errno == EINVAL
    assert progrun.test_run(tsys, 9999, data=FRAME, ctx_size_in=8).errno == EINVAL
    fd = skb_prog(tsys, "socket_filter")
    raw = bytearray(bytes(u.make_attr(**{"test.prog_fd": fd})))
    raw[u.offsetofend("test.batch_size")] = 1
    buf = ctypes.create_string_buffer(bytes(raw), len(raw))
    try:
        tsys.bpf(u.BPF_PROG_TEST_RUN, buf, len(raw))
        e = 0
    except OSError as ex:
        e = ex.errno
    assert e == EINVAL
    tsys.close(m)


@pytest.mark.parametrize("bad", ["data_in", "data_out", "ctx_in", "ctx_out"])
def test_bad_user_pointers_fault(tsys, bad):
    """A pointer to unmapped memory for the packet or the context, in or out: EFAULT (after the run for the
    outputs, which the kernel writes last)."""
    import ctypes
    fd = skb_prog(tsys, "sched_cls")
    din = ctypes.create_string_buffer(FRAME, len(FRAME))
    dout = ctypes.create_string_buffer(len(FRAME) + 64)
    cin = ctypes.create_string_buffer(SK_BUFF)
    cout = ctypes.create_string_buffer(SK_BUFF)
    ptrs = {"data_in": ctypes.addressof(din), "data_out": ctypes.addressof(dout),
            "ctx_in": ctypes.addressof(cin), "ctx_out": ctypes.addressof(cout)}
    ptrs[bad] = 8   # the first page is never mapped
    a = u.make_attr(**{"test.prog_fd": fd, "test.data_in": ptrs["data_in"], "test.data_size_in": len(FRAME),
                       "test.data_out": ptrs["data_out"], "test.data_size_out": len(FRAME) + 64,
                       "test.ctx_in": ptrs["ctx_in"], "test.ctx_size_in": SK_BUFF,
                       "test.ctx_out": ptrs["ctx_out"], "test.ctx_size_out": SK_BUFF})
    with pytest.raises(OSError) as e:
        tsys.bpf(u.BPF_PROG_TEST_RUN, a)
    assert e.value.errno == EFAULT
