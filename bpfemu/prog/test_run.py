"""BPF_PROG_TEST_RUN: run a loaded program once or ``repeat`` times on a given input (net/bpf/test_run.c).

:func:`bpf_prog_test_run` is what the BPF_PROG_TEST_RUN command calls once it has checked ``attr`` the way
``kernel/bpf/syscall.c`` does (CHECK_ATTR, then the ctx_in/ctx_out pointer-and-size pairs, then the prog fd):
it picks the program type's runner (:data:`TEST_RUN`), or fails with ENOTSUPP (524) for a type the kernel
version (its profile's ``test_run_types``) has no ``test_run`` for. A runner builds the context and packet exactly as the host does (what is prepended,
which ctx fields may be set, what is zeroed), runs the program, and copies results back: ``data_out`` (with
ENOSPC and a partial copy when ``data_size_out`` is too small), ``data_size_out``, ``retval``, ``duration``,
``ctx_out``.

The arguments:

- ``prog``: the loaded program. Runners read ``prog.type``, ``prog.expected_attach_type``, ``prog.image``
  (a :class:`bpfemu.prog.core.Image`), ``prog.helpers`` (``{func_id: fn}``, what its calls dispatch to),
  ``prog.max_ctx_offset`` (the verifier's ``aux->max_ctx_offset``) and ``prog.xdp_has_frags``.
- ``ctx``: the syscall in flight, as ``bpfemu.syscall.Ctx`` gives it: ``attr`` (the copied-in
  ``union bpf_attr``), ``read(addr, n)``/``write(addr, data)`` (copy_from_user/copy_to_user, EFAULT on a bad
  pointer), ``put(field, value)`` (put_user into the caller's attr) and ``kernel`` (``ncpus``; ``clock_ns()``
  when it has a clock).

Duration: the kernel reports the mean wall time of one run in ns. The emulator reads the kernel's clock
(time the test controls), so it is 0 unless a helper or the test moves that clock during the run.
"""
import ctypes
import errno
import struct

from .. import uapi
from ..errors import ENOTSUPP, bpf_error
from .core import RunCtx, bpf_prog_run
from .funcs.filter import csum_fold, csum_partial
from .memory import M32, Memory, Region

PAGE_SIZE = 4096
ETH_HLEN = 14
ETH_P_802_3_MIN = 0x0600
NET_SKB_PAD = 64            # max(32, L1_CACHE_BYTES) on x86_64
NET_IP_ALIGN = 0            # x86_64
SMP_CACHE_BYTES = 64
SKB_SHARED_INFO_SIZE = 320  # sizeof(struct skb_shared_info), x86_64
XDP_PACKET_HEADROOM = 256
XDP_FRAME_SIZE = 40         # sizeof(struct xdp_frame), x86_64
MAX_SKB_FRAGS = 17
GSO_LEGACY_MAX_SIZE = 65536
GSO_MAX_SEGS = 65535
QDISC_CB_PRIV_LEN = 20
MAX_BPF_FUNC_ARGS = 12
U16_MAX = 0xffff
TEST_XDP_MAX_BATCH = 256

LOOPBACK_IFINDEX = 1
LOOPBACK_ADDR = bytes(6)       # the loopback device's dev_addr and broadcast address: all zero, so
LOOPBACK_BROADCAST = bytes(6)  # ff:ff:ff:ff:ff:ff is only multicast to it

# BPF_PROG_TEST_RUN flags (#defines of include/uapi/linux/bpf.h, which BTF does not carry)
BPF_F_TEST_RUN_ON_CPU = 1 << 0
BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1
BPF_F_TEST_SKB_CHECKSUM_COMPLETE = 1 << 2

PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 1, 2, 3
CHECKSUM_NONE, CHECKSUM_UNNECESSARY, CHECKSUM_COMPLETE, CHECKSUM_PARTIAL = 0, 1, 2, 3


def skb_data_align(n):
    return (n + SMP_CACHE_BYTES - 1) & ~(SMP_CACHE_BYTES - 1)


TAILROOM = skb_data_align(SKB_SHARED_INFO_SIZE)


# ---- struct __sk_buff and struct xdp_md (include/uapi/linux/bpf.h): offsets of the fields the model serves
SK_BUFF_FIELDS = {  # name: (offset, size)
    "len": (0, 4), "pkt_type": (4, 4), "mark": (8, 4), "queue_mapping": (12, 4), "protocol": (16, 4),
    "vlan_present": (20, 4), "vlan_tci": (24, 4), "vlan_proto": (28, 4), "priority": (32, 4),
    "ingress_ifindex": (36, 4), "ifindex": (40, 4), "tc_index": (44, 4), "cb": (48, 20), "hash": (68, 4),
    "tc_classid": (72, 4), "data": (76, 4), "data_end": (80, 4), "napi_id": (84, 4), "family": (88, 4),
    "remote_ip4": (92, 4), "local_ip4": (96, 4), "remote_ip6": (100, 16), "local_ip6": (116, 16),
    "remote_port": (132, 4), "local_port": (136, 4), "data_meta": (140, 4), "flow_keys": (144, 8),
    "tstamp": (152, 8), "wire_len": (160, 4), "gso_segs": (164, 4), "sk": (168, 8), "gso_size": (176, 4),
    "tstamp_type": (180, 1), "hwtstamp": (184, 8),
}
SK_BUFF_SIZE = 192
XDP_MD_FIELDS = {"data": (0, 4), "data_end": (4, 4), "data_meta": (8, 4), "ingress_ifindex": (12, 4),
                 "rx_queue_index": (16, 4), "egress_ifindex": (20, 4)}
XDP_MD_SIZE = 24


def _off(fields, name):
    return fields[name][0]


def _end(fields, name):
    o, n = fields[name]
    return o + n


# ---- the attr side ---------------------------------------------------------------------------------------

class TestAttr:
    """The ``test`` member of the copied-in attr, as plain ints."""

    __slots__ = ("prog_fd", "retval", "data_size_in", "data_size_out", "data_in", "data_out", "repeat",
                 "duration", "ctx_size_in", "ctx_size_out", "ctx_in", "ctx_out", "flags", "cpu", "batch_size")

    _LAYOUT = struct.Struct("<IIIIQQIIIIQQIII")   # struct bpf_attr's test member, in __slots__ order

    def __init__(self, attr):
        t = attr.test
        vals = self._LAYOUT.unpack(bytes(t)[:self._LAYOUT.size]) if isinstance(t, ctypes.Structure) else [
            int(getattr(t, name)) for name in self.__slots__]
        for name, v in zip(self.__slots__, vals):
            setattr(self, name, v)


def bpf_prog_test_run(prog, ctx):
    """The prog_ops->test_run of ``prog``'s type, run on the syscall ``ctx``; returns 0 or raises OSError."""
    runner = TEST_RUN.get(prog.type)
    if runner is None or prog.type not in ctx.kernel.profile.test_run_types:
        raise bpf_error(ENOTSUPP, "program type %d has no test_run" % prog.type)
    return runner(prog, TestAttr(ctx.attr), ctx)


def check_test_run_attr(attr):
    """What syscall.c's bpf_prog_test_run checks after CHECK_ATTR and before the fd: a ctx pointer and its
    size come together."""
    t = attr.test
    if bool(t.ctx_size_in) != bool(t.ctx_in) or bool(t.ctx_size_out) != bool(t.ctx_out):
        raise bpf_error(errno.EINVAL, "ctx_in/ctx_out and their sizes must be given together")


def bpf_test_init(ctx, ta, user_size, size, headroom, tailroom):
    """A zeroed buffer of headroom + SKB_DATA_ALIGN(size) + tailroom bytes with ``user_size`` bytes of
    ``data_in`` copied after the headroom."""
    if user_size > PAGE_SIZE - headroom - tailroom:
        raise bpf_error(errno.EINVAL, "data_size_in larger than a page allows")
    data = bytearray(skb_data_align(size) + headroom + tailroom)
    if user_size:
        data[headroom:headroom + user_size] = ctx.read(ta.data_in, user_size)
    return data


def bpf_ctx_init(ctx, ta, max_size):
    """The ctx buffer of ``max_size`` zeroed bytes with ``ctx_in`` copied in (None when neither ctx_in nor
    ctx_out is given); a longer ctx_in must be zero past max_size (E2BIG)."""
    if not ta.ctx_in and not ta.ctx_out:
        return None
    data = bytearray(max_size)
    if ta.ctx_in:
        size = ta.ctx_size_in
        if size > max_size:
            if size > PAGE_SIZE:
                raise bpf_error(errno.E2BIG, "ctx_size_in larger than a page")
            if any(ctx.read(ta.ctx_in + max_size, size - max_size)):
                raise bpf_error(errno.E2BIG, "nonzero ctx_in bytes past the context")
        size = min(size, max_size)
        data[:size] = ctx.read(ta.ctx_in, size)
    return data


def bpf_test_finish(ctx, ta, data, size, retval, duration, frags=()):
    """Copy ``size`` bytes of output (``data`` then the frags) to data_out, clamped to data_size_out when
    that is set (ENOSPC after the partial copy); then data_size_out (the full size), retval, duration."""
    err = 0
    copy_size = size
    if ta.data_size_out and copy_size > ta.data_size_out:
        copy_size = ta.data_size_out
        err = errno.ENOSPC
    if ta.data_out:
        frags_size = sum(len(f) for f in frags)
        n = copy_size - frags_size if frags else copy_size
        if n < 0:
            raise bpf_error(errno.ENOSPC, "data_size_out smaller than the frags")
        ctx.write(ta.data_out, bytes(data[:n]))
        offset = n
        for f in frags:
            if offset >= copy_size:
                err = errno.ENOSPC
                break
            k = min(copy_size - offset, len(f))
            ctx.write(ta.data_out + offset, bytes(f[:k]))
            offset += k
    ctx.put("test.data_size_out", size & M32)
    ctx.put("test.retval", retval & M32)
    ctx.put("test.duration", duration & M32)
    if err:
        raise bpf_error(err, "data_out too small: %d bytes copied of %d" % (copy_size, size))
    return 0


def bpf_ctx_finish(ctx, ta, data, size):
    """Copy the ctx back to ctx_out (clamped to ctx_size_out, then ENOSPC) and set ctx_size_out."""
    if data is None or not ta.ctx_out:
        return 0
    copy_size = size
    err = 0
    if copy_size > ta.ctx_size_out:
        copy_size = ta.ctx_size_out
        err = errno.ENOSPC
    ctx.write(ta.ctx_out, bytes(data[:copy_size]))
    ctx.put("test.ctx_size_out", size & M32)
    if err:
        raise bpf_error(err, "ctx_out too small")
    return 0


def _clock(ctx):
    kernel = ctx.kernel
    clock = getattr(kernel, "clock_ns", None) if kernel is not None else None
    return clock() if clock is not None else 0


def current_cpu(ctx):
    """The CPU the calling task runs on (a test run of most types stays there: migrate_disable)."""
    return getattr(ctx.task, "cpu", 0)


def new_run(prog, ctx, mem, cpu=None, skb=None):
    """The RunCtx of one invocation of ``prog`` inside a test run, for the calling task on its CPU (or
    ``cpu``)."""
    return RunCtx(mem, helpers=prog.helpers, cpu=current_cpu(ctx) if cpu is None else cpu, skb=skb,
                  kernel=ctx.kernel, prog=prog, task=ctx.task)


def prog_run(prog, ctx, run, ctx_addr):
    """bpf_prog_run: one run of the program, counted in run_cnt/run_time_ns while BPF_ENABLE_STATS is on
    (the time from the kernel's clock); returns R0."""
    kernel = ctx.kernel
    if not kernel.stats_enabled:
        run.tail_call_cnt = 0
        return bpf_prog_run(prog.image, run, ctx_addr)
    t0 = kernel.clock.mono
    run.tail_call_cnt = 0
    r0 = bpf_prog_run(prog.image, run, ctx_addr)
    prog.run_cnt += 1
    prog.run_time_ns += kernel.clock.mono - t0
    return r0


def bpf_test_run(prog, ctx, ta, mem, ctx_addr, skb=None, cpu=None):
    """Run the program ``repeat`` times (at least once) on the same context; (retval of the last run as u32,
    mean duration in ns)."""
    repeat = ta.repeat or 1
    t0 = _clock(ctx)
    retval = 0
    run = new_run(prog, ctx, mem, cpu=cpu, skb=skb)
    for _ in range(repeat):
        retval = prog_run(prog, ctx, run, ctx_addr) & M32
    dt = _clock(ctx) - t0
    return retval, (dt // repeat) & M32


# ---- the skb types -----------------------------------------------------------------------------------------

class SkBuff:
    """The parts of ``struct sk_buff`` the test run and the programs see; offsets index ``buf`` (head = 0).

    Linear only (the emulator builds no paged skbs): ``len == tail - data``.
    """

    def __init__(self, buf, data, tail):
        self.buf = buf
        self.data = data
        self.tail = tail
        self.mac_header = None
        self.network_header = None
        self.transport_header = None
        self.protocol = 0          # __be16 as it sits in memory, read as a little-endian u16
        self.pkt_type = PACKET_HOST
        self.mark = 0
        self.priority = 0
        self.skb_iif = 0
        self.ifindex = LOOPBACK_IFINDEX
        self.tc_index = 0
        self.cb = bytearray(QDISC_CB_PRIV_LEN)
        self.pkt_len = 0           # qdisc_skb_cb.pkt_len (wire_len)
        self.hash = 0
        self.tc_classid = 0
        self.queue_mapping = 0
        self.vlan_present = 0
        self.vlan_tci = 0
        self.vlan_proto = 0
        self.napi_id = 0
        self.tstamp = 0
        self.tstamp_type = 0
        self.gso_segs = 0
        self.gso_size = 0
        self.hwtstamp = 0
        self.meta_len = 0
        self.data_end = None       # bpf_compute_data_pointers: set for direct packet access types
        self.region = None         # the packet: the whole buffer, head at region.base
        self.sk_family = 0
        self.csum = 0              # __wsum, meaningful with ip_summed CHECKSUM_COMPLETE
        self.ip_summed = CHECKSUM_NONE
        self.csum_level = 0
        self.sw_hash = self.l4_hash = 0
        self.sk_cookie = 0
        self.ctx = bytearray(SK_BUFF_SIZE)  # struct __sk_buff as the program sees it

    @property
    def len(self):
        return self.tail - self.data

    # the fields of struct __sk_buff the model fills, and those a program may write back
    _CTX_U32 = ("len", "pkt_type", "mark", "queue_mapping", "protocol", "vlan_present", "vlan_tci", "vlan_proto",
                "priority", "ingress_ifindex", "ifindex", "tc_index", "hash", "tc_classid", "napi_id",
                "family", "wire_len", "gso_segs", "gso_size")
    _ATTR = {"ingress_ifindex": "skb_iif", "family": "sk_family", "wire_len": "pkt_len"}
    _WRITABLE = ("mark", "priority", "tc_index", "queue_mapping", "tc_classid")

    def sync_ctx(self):
        """Write the skb's state into the __sk_buff the program reads (before a run, after a helper changed
        the skb): data/data_end/data_meta hold packet addresses."""
        c = self.ctx
        F = SK_BUFF_FIELDS
        for name in self._CTX_U32:
            v = self.len if name == "len" else getattr(self, self._ATTR.get(name, name))
            struct.pack_into("<I", c, F[name][0], v & M32)
        c[48:68] = self.cb
        base = self.region.base
        struct.pack_into("<I", c, F["data"][0], base + self.data)
        struct.pack_into("<I", c, F["data_end"][0],
                         base + (self.data_end if self.data_end is not None else self.tail))
        struct.pack_into("<I", c, F["data_meta"][0], base + self.data - self.meta_len)
        struct.pack_into("<Q", c, F["tstamp"][0], self.tstamp)
        c[F["tstamp_type"][0]] = self.tstamp_type
        struct.pack_into("<Q", c, F["hwtstamp"][0], self.hwtstamp)

    def read_ctx(self):
        """Take back what the program may have written into its __sk_buff."""
        c = self.ctx
        F = SK_BUFF_FIELDS
        for name in self._WRITABLE:
            setattr(self, name, struct.unpack_from("<I", c, F[name][0])[0])
        self.cb[:] = c[48:68]
        self.tstamp = struct.unpack_from("<Q", c, F["tstamp"][0])[0]

    def push(self, n):
        self.data -= n

    def pull(self, n):
        self.data += n

    def expand(self, head, tail):
        """pskb_expand_head: make room for ``head`` bytes before data and ``tail`` after the tail (a new,
        larger buffer when the current one is short; offsets move with it)."""
        nhead = max(0, head - self.data)
        end = len(self.buf) - TAILROOM
        ntail = max(0, tail - (end - self.tail))
        if not nhead and not ntail:
            return
        nhead = (nhead + NET_SKB_PAD - 1) // NET_SKB_PAD * NET_SKB_PAD if nhead else 0
        buf = bytearray(nhead) + self.buf[:end] + bytearray(ntail) + self.buf[end:]
        self.buf = buf
        for name in ("data", "tail", "mac_header", "network_header", "transport_header"):
            v = getattr(self, name)
            if v is not None:
                setattr(self, name, v + nhead)
        if self.data_end is not None:
            self.data_end = self.tail

    def resync(self, run):
        """After a helper changed the skb: take back what the program wrote into its __sk_buff, map the
        packet again if its buffer moved, and rewrite the context (bpf_compute_data_pointers)."""
        self.read_ctx()
        if self.data_end is not None:
            self.data_end = self.tail
        if self.region.buf is not self.buf:
            run.mem.remove(self.region)
            self.region = Region("packet", self.buf, obj=self, name="skb")
            run.mem.add(self.region)
        self.sync_ctx()


def eth_type_trans(skb):
    """Reset the mac header, pull the Ethernet header, set pkt_type; returns skb->protocol (raw be16)."""
    buf = skb.buf
    skb.mac_header = skb.data
    eth = bytes(buf[skb.data:skb.data + ETH_HLEN])
    skb.pull(ETH_HLEN)
    dst = eth[:6]
    if dst != LOOPBACK_ADDR:  # eth_skb_pkt_type against the loopback device
        if dst[0] & 1:
            skb.pkt_type = PACKET_BROADCAST if dst == LOOPBACK_BROADCAST else PACKET_MULTICAST
        else:
            skb.pkt_type = PACKET_OTHERHOST
    proto = struct.unpack(">H", eth[12:14])[0]
    if proto >= ETH_P_802_3_MIN:
        return struct.unpack("<H", eth[12:14])[0]
    if bytes(buf[skb.data:skb.data + 2]) == b"\xff\xff":
        return 0x0100  # htons(ETH_P_802_3)
    return 0x0400      # htons(ETH_P_802_2)


def _range_is_zero(buf, lo, hi):
    return not any(buf[lo:hi])


def convert___skb_to_skb(skb, c):
    """Apply a user __sk_buff: only mark, priority, ingress_ifindex, ifindex, cb, tstamp, wire_len,
    gso_segs, gso_size and hwtstamp may be nonzero (EINVAL otherwise)."""
    if c is None:
        return
    F = SK_BUFF_FIELDS
    allowed = [("mark", "mark"), ("priority", "ifindex"), ("cb", "cb"), ("tstamp", "gso_segs"),
               ("gso_size", "gso_size"), ("hwtstamp", "hwtstamp")]
    lo = 0
    for first, last in allowed:
        if not _range_is_zero(c, lo, _off(F, first)):
            raise bpf_error(errno.EINVAL, "__sk_buff field before %s must be zero" % first)
        lo = _end(F, last)
    if not _range_is_zero(c, lo, SK_BUFF_SIZE):
        raise bpf_error(errno.EINVAL, "__sk_buff field after hwtstamp must be zero")

    def u32(name):
        return struct.unpack_from("<I", c, _off(F, name))[0]

    skb.mark = u32("mark")
    skb.priority = u32("priority")
    skb.skb_iif = u32("ingress_ifindex")
    skb.tstamp = struct.unpack_from("<Q", c, _off(F, "tstamp"))[0]
    skb.cb[:] = c[48:68]
    wire_len = u32("wire_len")
    if wire_len == 0:
        skb.pkt_len = skb.len
    else:
        if wire_len < skb.len or wire_len > GSO_LEGACY_MAX_SIZE:
            raise bpf_error(errno.EINVAL, "wire_len out of range")
        skb.pkt_len = wire_len
    if u32("gso_segs") > GSO_MAX_SEGS:
        raise bpf_error(errno.EINVAL, "gso_segs out of range")
    skb.gso_segs = u32("gso_segs")
    skb.gso_size = u32("gso_size")
    skb.hwtstamp = struct.unpack_from("<Q", c, _off(F, "hwtstamp"))[0]


def convert_skb_to___skb(skb, c):
    if c is None:
        return
    F = SK_BUFF_FIELDS
    for name, v in (("mark", skb.mark), ("priority", skb.priority), ("ingress_ifindex", skb.skb_iif),
                    ("ifindex", skb.ifindex), ("wire_len", skb.pkt_len), ("gso_segs", skb.gso_segs)):
        struct.pack_into("<I", c, _off(F, name), v & M32)
    struct.pack_into("<Q", c, _off(F, "tstamp"), skb.tstamp)
    struct.pack_into("<Q", c, _off(F, "hwtstamp"), skb.hwtstamp)
    c[48:68] = skb.cb


L2_TYPES = frozenset((uapi.BPF_PROG_TYPE_SCHED_CLS, uapi.BPF_PROG_TYPE_SCHED_ACT))
DIRECT_PKT_TYPES = L2_TYPES | {uapi.BPF_PROG_TYPE_LWT_IN, uapi.BPF_PROG_TYPE_LWT_OUT, uapi.BPF_PROG_TYPE_LWT_XMIT}


def bpf_prog_test_run_skb(prog, ta, ctx):
    """Socket filter, tc (sched_cls/sched_act), cgroup_skb and lwt: data_in is an Ethernet frame.

    The skb's data starts past the Ethernet header (eth_type_trans) except for tc, which sees the frame
    from the mac header; data_out is the frame with the Ethernet header zeroed for the types that did not
    see it.
    """
    if ta.flags & ~BPF_F_TEST_SKB_CHECKSUM_COMPLETE or ta.cpu or ta.batch_size:
        raise bpf_error(errno.EINVAL, "flags/cpu/batch_size not supported for skb programs")
    size = ta.data_size_in
    if size < ETH_HLEN:
        raise bpf_error(errno.EINVAL, "data_size_in smaller than an Ethernet header")
    headroom = NET_SKB_PAD + NET_IP_ALIGN
    data = bpf_test_init(ctx, ta, size, size, headroom, TAILROOM)
    c = bpf_ctx_init(ctx, ta, SK_BUFF_SIZE)
    is_l2 = prog.type in L2_TYPES
    skb = SkBuff(data, headroom, headroom + size)
    if c is not None:
        ifindex = struct.unpack_from("<I", c, _off(SK_BUFF_FIELDS, "ifindex"))[0]
        if ifindex > LOOPBACK_IFINDEX:
            raise bpf_error(errno.ENODEV, "no device with ifindex %d in the emulator" % ifindex)
    skb.protocol = eth_type_trans(skb)
    skb.network_header = skb.data
    if skb.protocol == 0x0008:  # ETH_P_IP
        if skb.len < 20:
            raise bpf_error(errno.EINVAL, "IPv4 frame shorter than an IP header")
        skb.sk_family = 2
    elif skb.protocol == 0xdd86:  # ETH_P_IPV6
        if skb.len < 40:
            raise bpf_error(errno.EINVAL, "IPv6 frame shorter than an IPv6 header")
        skb.sk_family = 10
    if is_l2:
        skb.push(ETH_HLEN)
    if prog.type in DIRECT_PKT_TYPES:
        skb.data_end = skb.tail
    convert___skb_to_skb(skb, c)
    if ta.flags & BPF_F_TEST_SKB_CHECKSUM_COMPLETE:
        skb.csum = csum_partial(bytes(data[skb.network_header:skb.tail]), 0)   # skb_checksum from the L3 header
        skb.ip_summed = CHECKSUM_COMPLETE
    mem = Memory()
    skb.region = Region("packet", data, obj=skb, name="skb")
    mem.add(skb.region)
    skb.sync_ctx()
    _, ctx_addr = mem.add_buffer("ctx", skb.ctx, obj=skb, name="__sk_buff")
    retval, duration = bpf_test_run(prog, ctx, ta, mem, ctx_addr, skb=skb)
    skb.read_ctx()
    if not is_l2:
        if skb.data < ETH_HLEN:
            skb.expand(ETH_HLEN, 0)
        skb.push(ETH_HLEN)
        skb.buf[skb.data:skb.data + ETH_HLEN] = bytes(ETH_HLEN)
    if ta.flags & BPF_F_TEST_SKB_CHECKSUM_COMPLETE:
        now = csum_partial(bytes(skb.buf[skb.network_header:skb.tail]), 0)
        if csum_fold(skb.csum) != csum_fold(now):
            raise bpf_error(errno.EBADMSG, "the program left skb->csum out of step with the packet")
    convert_skb_to___skb(skb, c)
    out = skb.buf[skb.data:skb.tail]
    bpf_test_finish(ctx, ta, out, len(out), retval, duration)
    return bpf_ctx_finish(ctx, ta, c, SK_BUFF_SIZE)


# ---- xdp ---------------------------------------------------------------------------------------------------

class XdpBuff:
    """``struct xdp_buff``: offsets into ``buf`` for data_meta, data and data_end, plus the frags."""

    def __init__(self, buf, data_meta, data, data_end, frags, data_hard_end=None):
        self.buf = buf
        self.data_meta = data_meta
        self.data = data
        self.data_end = data_end
        self.frags = frags
        self.data_hard_end = len(buf) - TAILROOM if data_hard_end is None else data_hard_end
        self.ingress_ifindex = LOOPBACK_IFINDEX
        self.rx_queue_index = 0
        self.region = None         # the packet: the whole buffer, data_hard_start at region.base
        self.ctx = bytearray(XDP_MD_SIZE)  # struct xdp_md as the program sees it

    def sync_ctx(self):
        """Write data/data_end/data_meta (packet addresses) and the rx queue into the xdp_md."""
        base = self.region.base
        struct.pack_into("<IIIIII", self.ctx, 0, base + self.data, base + self.data_end, base + self.data_meta,
                         self.ingress_ifindex, self.rx_queue_index, 0)

    def resync(self, run):
        """After a helper moved data, data_meta or data_end: rewrite the xdp_md."""
        self.sync_ctx()

    @property
    def buff_len(self):
        """xdp_get_buff_len: the linear part and the frags."""
        return self.data_end - self.data + sum(len(f) for f in self.frags)

    def _pieces(self):
        yield self.buf, self.data, self.data_end
        for f in self.frags:
            yield f, 0, len(f)

    def read(self, off, n):
        """n bytes at offset off of the frame (linear part, then frags)."""
        out = bytearray()
        for b, lo, hi in self._pieces():
            size = hi - lo
            if off < size and n:
                k = min(n, size - off)
                out += b[lo + off:lo + off + k]
                n -= k
                off = 0
            else:
                off -= size
        return bytes(out)

    def write(self, off, data):
        pos = 0
        for b, lo, hi in self._pieces():
            size = hi - lo
            if off < size and pos < len(data):
                k = min(len(data) - pos, size - off)
                b[lo + off:lo + off + k] = data[pos:pos + k]
                pos += k
                off = 0
            else:
                off -= size


def bpf_test_run_xdp_live(prog, ctx, ta, xdp):
    """Live frames: each of ``repeat`` runs sees a fresh copy of the frame (as the kernel's page pool gives
    it); what the program returns sends the copy on (the emulator has no network stack: it is dropped).
    The call's retval stays 0 and data_out is the frame as given. Returns the mean duration."""
    repeat = ta.repeat or 1
    t0 = _clock(ctx)
    for _ in range(repeat):
        buf = bytearray(xdp.buf)
        copy = XdpBuff(buf, xdp.data_meta, xdp.data, xdp.data_end, [], xdp.data_hard_end)
        copy.ingress_ifindex, copy.rx_queue_index = xdp.ingress_ifindex, xdp.rx_queue_index
        mem = Memory()
        copy.region = Region("packet", buf, obj=copy, name="xdp")
        mem.add(copy.region)
        copy.sync_ctx()
        _, ctx_addr = mem.add_buffer("ctx", copy.ctx, obj=copy, name="xdp_md", readonly=True)
        prog_run(prog, ctx, new_run(prog, ctx, mem), ctx_addr)
    return ((_clock(ctx) - t0) // repeat) & M32


def xdp_metalen_invalid(n, meta_max=0xff):
    """Metadata not a multiple of 4 bytes, or more than the kernel version's most (its profile's
    ``xdp_meta_max``)."""
    return n & 3 or n > meta_max


def bpf_prog_test_run_xdp(prog, ta, ctx):
    """XDP: data_in (after ctx_in.data bytes of metadata) is the frame; data_out starts at data_meta."""
    if prog.expected_attach_type in (uapi.BPF_XDP_DEVMAP, uapi.BPF_XDP_CPUMAP):
        raise bpf_error(errno.EINVAL, "devmap/cpumap programs have no test run")
    if ta.flags & ~BPF_F_TEST_XDP_LIVE_FRAMES:
        raise bpf_error(errno.EINVAL, "unknown flags")
    do_live = bool(ta.flags & BPF_F_TEST_XDP_LIVE_FRAMES)
    if do_live:
        if ta.batch_size > TEST_XDP_MAX_BATCH:
            raise bpf_error(errno.E2BIG, "batch_size too large")
    elif ta.batch_size:
        raise bpf_error(errno.EINVAL, "batch_size without live frames")
    headroom = XDP_PACKET_HEADROOM
    meta_sz = 0
    linear_sz = ta.data_size_in
    profile = ctx.kernel.profile
    c = bpf_ctx_init(ctx, ta, XDP_MD_SIZE)
    if c is not None:
        md_data, md_data_end, md_data_meta = struct.unpack_from("<III", c, 0)
        if (md_data_meta or md_data_end > ta.data_size_in or md_data > md_data_end
                or (do_live and (ta.data_out or ta.ctx_out))):
            raise bpf_error(errno.EINVAL, "bad xdp_md data/data_end/data_meta (or outputs with live frames)")
        meta_sz = md_data
        if xdp_metalen_invalid(meta_sz, profile.xdp_meta_max) or meta_sz > headroom - XDP_FRAME_SIZE:
            raise bpf_error(errno.EINVAL, "bad metadata size")
        headroom -= meta_sz
        linear_sz = md_data_end
    if do_live:
        headroom += profile.size("xdp_page_head")
    max_linear_sz = PAGE_SIZE - headroom - TAILROOM
    linear_sz = min(linear_sz, max_linear_sz)
    if do_live and ta.data_size_in > linear_sz:
        raise bpf_error(errno.EINVAL, "no jumbo frames in live mode")
    if ta.data_size_in - meta_sz < ETH_HLEN:
        raise bpf_error(errno.EINVAL, "frame shorter than an Ethernet header")
    data = bpf_test_init(ctx, ta, linear_sz, max_linear_sz, headroom, TAILROOM)
    xdp = XdpBuff(data, headroom, headroom, headroom + linear_sz, [], headroom + max_linear_sz)
    if c is not None:
        ingress_ifindex, rx_queue_index, egress_ifindex = struct.unpack_from("<III", c, 12)
        if egress_ifindex:
            raise bpf_error(errno.EINVAL, "egress_ifindex must be 0")
        if not ingress_ifindex and rx_queue_index:
            raise bpf_error(errno.EINVAL, "rx_queue_index without ingress_ifindex")
        if ingress_ifindex:
            if ingress_ifindex != LOOPBACK_IFINDEX:
                raise bpf_error(errno.ENODEV, "no device with ifindex %d in the emulator" % ingress_ifindex)
            if rx_queue_index >= 1:
                raise bpf_error(errno.EINVAL, "rx_queue_index past the device's queues")
            xdp.ingress_ifindex, xdp.rx_queue_index = ingress_ifindex, rx_queue_index
        xdp.data = xdp.data_meta + meta_sz
    size = linear_sz
    while size < ta.data_size_in:
        if len(xdp.frags) == MAX_SKB_FRAGS:
            raise bpf_error(errno.ENOMEM, "too many frags")
        n = min(ta.data_size_in - size, PAGE_SIZE)
        xdp.frags.append(bytearray(ctx.read(ta.data_in + size, n)))
        size += n
    if do_live:
        retval, duration = 0, bpf_test_run_xdp_live(prog, ctx, ta, xdp)
    else:
        mem = Memory()
        xdp.region = Region("packet", data, obj=xdp, name="xdp")
        mem.add(xdp.region)
        xdp.sync_ctx()
        _, ctx_addr = mem.add_buffer("ctx", xdp.ctx, obj=xdp, name="xdp_md", readonly=True)
        retval, duration = bpf_test_run(prog, ctx, ta, mem, ctx_addr)
    if c is not None:
        struct.pack_into("<II", c, 0, xdp.data - xdp.data_meta, xdp.data_end - xdp.data_meta)
    frags_size = sum(len(f) for f in xdp.frags)
    size = xdp.data_end - xdp.data_meta + frags_size
    bpf_test_finish(ctx, ta, data[xdp.data_meta:xdp.data_end], size, retval, duration, xdp.frags)
    return bpf_ctx_finish(ctx, ta, c, XDP_MD_SIZE)


# ---- raw tracepoints and syscall programs ------------------------------------------------------------------

def bpf_prog_test_run_raw_tp(prog, ta, ctx):
    """raw_tracepoint: ctx_in is the tracepoint's u64 arguments; only retval comes back."""
    if ta.data_in or ta.data_out or ta.ctx_out or ta.duration or ta.repeat or ta.batch_size:
        raise bpf_error(errno.EINVAL, "raw_tp test runs take only ctx_in, flags and cpu")
    if ta.ctx_size_in < prog.max_ctx_offset or ta.ctx_size_in > MAX_BPF_FUNC_ARGS * 8:
        raise bpf_error(errno.EINVAL, "ctx_size_in out of range")
    on_cpu = bool(ta.flags & BPF_F_TEST_RUN_ON_CPU)
    if not on_cpu and ta.cpu != 0:
        raise bpf_error(errno.EINVAL, "cpu without BPF_F_TEST_RUN_ON_CPU")
    args = bytearray(ctx.read(ta.ctx_in, ta.ctx_size_in)) if ta.ctx_size_in else None
    cpu = None  # the calling task's CPU
    if on_cpu:
        ncpus = ctx.kernel.ncpus if ctx.kernel is not None else 1
        if ta.cpu >= ncpus:
            raise bpf_error(errno.ENXIO, "cpu %d is not online" % ta.cpu)
        cpu = ta.cpu
    mem = Memory()
    ctx_addr = 0
    if args is not None:
        _, ctx_addr = mem.add_buffer("ctx", args, name="raw_tp args")
    run = new_run(prog, ctx, mem, cpu=cpu)
    retval = prog_run(prog, ctx, run, ctx_addr) & M32
    ctx.put("test.retval", retval)
    return 0


def bpf_prog_test_run_syscall(prog, ta, ctx):
    """syscall programs: ctx_in is the program's context, copied back to ctx_in after the run."""
    if (ta.data_in or ta.data_out or ta.ctx_out or ta.duration or ta.repeat or ta.flags
            or ta.batch_size):
        raise bpf_error(errno.EINVAL, "syscall test runs take only ctx_in")
    if ta.ctx_size_in < prog.max_ctx_offset or ta.ctx_size_in > U16_MAX:
        raise bpf_error(errno.EINVAL, "ctx_size_in out of range")
    mem = Memory()
    ctx_addr = 0
    c = None
    if ta.ctx_size_in:
        c = bytearray(ctx.read(ta.ctx_in, ta.ctx_size_in))
        _, ctx_addr = mem.add_buffer("ctx", c, name="syscall ctx")
    run = new_run(prog, ctx, mem)
    retval = prog_run(prog, ctx, run, ctx_addr) & M32
    ctx.put("test.retval", retval)
    if c is not None:
        ctx.write(ta.ctx_in, bytes(c))
    return 0


# ---- flow dissector and sk_lookup ------------------------------------------------------------------------

FLOW_KEYS_SIZE = 56           # sizeof(struct bpf_flow_keys)
FLOW_KEYS_FLAGS = 48          # offsetof(struct bpf_flow_keys, flags)
SK_LOOKUP_SIZE = 72           # sizeof(struct bpf_sk_lookup)
SK_LOOKUP_LOCAL_PORT_END = 64
AF_INET, AF_INET6 = 2, 10
SK_DROP, SK_PASS = 0, 1


def bpf_prog_test_run_flow_dissector(prog, ta, ctx):
    """flow_dissector: data_in is the frame (up to a page, no headroom); the program's __sk_buff has only
    data, data_end and flow_keys; the keys start zeroed with n_proto, nhoff and thoff (14) and the ctx_in
    flags; after the run nhoff and thoff are clamped into [14, len] and [nhoff, len]; data_out is the keys,
    ctx_out the ctx_in unchanged."""
    if ta.flags or ta.cpu or ta.batch_size:
        raise bpf_error(errno.EINVAL, "flags/cpu/batch_size not supported for flow dissectors")
    size = ta.data_size_in
    if size < ETH_HLEN:
        raise bpf_error(errno.EINVAL, "data_size_in smaller than an Ethernet header")
    data = bpf_test_init(ctx, ta, size, size, 0, 0)
    c = bpf_ctx_init(ctx, ta, FLOW_KEYS_SIZE)
    flags = 0
    if c is not None:
        if any(c[:FLOW_KEYS_FLAGS]) or any(c[FLOW_KEYS_FLAGS + 4:]):
            raise bpf_error(errno.EINVAL, "only flags may be set in bpf_flow_keys")
        flags = struct.unpack_from("<I", c, FLOW_KEYS_FLAGS)[0]
    mem = Memory()
    _, data_addr = mem.add_buffer("packet", data, name="flow dissector data")
    keys = bytearray(FLOW_KEYS_SIZE)
    _, keys_addr = mem.add_buffer("flow_keys", keys, name="bpf_flow_keys")
    skb_ctx = bytearray(SK_BUFF_SIZE)
    struct.pack_into("<II", skb_ctx, SK_BUFF_FIELDS["data"][0], data_addr, data_addr + size)
    struct.pack_into("<Q", skb_ctx, SK_BUFF_FIELDS["flow_keys"][0], keys_addr)
    _, ctx_addr = mem.add_buffer("ctx", skb_ctx, name="__sk_buff (flow dissector)", readonly=True)
    proto = bytes(data[12:14])
    hlen = min(size, U16_MAX)
    repeat = ta.repeat or 1
    t0 = _clock(ctx)
    retval = 0
    run = new_run(prog, ctx, mem)
    for _ in range(repeat):
        keys[:] = bytes(FLOW_KEYS_SIZE)
        keys[10:12] = proto                              # n_proto (network order, as stored)
        struct.pack_into("<HH", keys, 0, ETH_HLEN, ETH_HLEN)  # nhoff, thoff
        struct.pack_into("<I", keys, FLOW_KEYS_FLAGS, flags)
        retval = prog_run(prog, ctx, run, ctx_addr) & M32
        nhoff, thoff = struct.unpack_from("<HH", keys, 0)
        nhoff = min(max(nhoff, ETH_HLEN), hlen)
        thoff = min(max(thoff, nhoff), hlen)
        struct.pack_into("<HH", keys, 0, nhoff, thoff)
    duration = ((_clock(ctx) - t0) // repeat) & M32
    bpf_test_finish(ctx, ta, keys, FLOW_KEYS_SIZE, retval, duration)
    return bpf_ctx_finish(ctx, ta, c, FLOW_KEYS_SIZE)


def bpf_prog_test_run_sk_lookup(prog, ta, ctx):
    """sk_lookup: ctx_in (struct bpf_sk_lookup) is required and is the lookup: family (AF_INET or AF_INET6,
    else EAFNOSUPPORT), protocol, remote and local address and port (local_port at most 65535, ERANGE); sk
    and everything after local_port must be zero; no data. retval is SK_PASS unless the program dropped;
    ctx_out is the ctx with cookie 0 (no socket can be selected: the emulator has none)."""
    if ta.flags or ta.cpu or ta.batch_size:
        raise bpf_error(errno.EINVAL, "flags/cpu/batch_size not supported for sk_lookup")
    if ta.data_in or ta.data_size_in or ta.data_out or ta.data_size_out:
        raise bpf_error(errno.EINVAL, "sk_lookup test runs take no data")
    c = bpf_ctx_init(ctx, ta, SK_LOOKUP_SIZE)
    if c is None:
        raise bpf_error(errno.EINVAL, "sk_lookup needs ctx_in")
    if any(c[:8]) or any(c[SK_LOOKUP_LOCAL_PORT_END:]):
        raise bpf_error(errno.EINVAL, "sk and the fields after local_port must be zero")
    family, protocol, remote_ip4 = struct.unpack_from("<III", c, 8)
    remote_ip6 = bytes(c[20:36])
    remote_port = bytes(c[36:38])
    local_ip4 = struct.unpack_from("<I", c, 40)[0]
    local_ip6 = bytes(c[44:60])
    local_port = struct.unpack_from("<I", c, 60)[0]
    if local_port > U16_MAX:
        raise bpf_error(errno.ERANGE, "local_port past 65535")
    family &= 0xffff
    if family not in (AF_INET, AF_INET6):
        raise bpf_error(errno.EAFNOSUPPORT, "family must be AF_INET or AF_INET6")
    view = bytearray(SK_LOOKUP_SIZE)  # what the program reads (bpf_sk_lookup_kern through its accessors)
    struct.pack_into("<II", view, 8, family, protocol & 0xffff)
    view[36:38] = remote_port
    struct.pack_into("<I", view, 60, local_port)
    if family == AF_INET:
        struct.pack_into("<I", view, 16, remote_ip4)
        struct.pack_into("<I", view, 40, local_ip4)
    else:
        view[20:36] = remote_ip6
        view[44:60] = local_ip6
    mem = Memory()
    _, ctx_addr = mem.add_buffer("ctx", view, name="bpf_sk_lookup", readonly=True)
    repeat = ta.repeat or 1
    t0 = _clock(ctx)
    run = new_run(prog, ctx, mem)
    retval = SK_PASS
    for _ in range(repeat):
        retval = SK_DROP if prog_run(prog, ctx, run, ctx_addr) & M32 == SK_DROP else SK_PASS
    duration = ((_clock(ctx) - t0) // repeat) & M32
    c[:8] = bytes(8)  # cookie: no socket selected
    bpf_test_finish(ctx, ta, b"", 0, retval, duration)
    return bpf_ctx_finish(ctx, ta, c, SK_LOOKUP_SIZE)


def not_emulated(prog, ta, ctx):
    """Types the host can test-run but the emulator cannot yet (their contexts are kernel structures
    reached through BTF): EINVAL, saying so."""
    raise bpf_error(errno.EINVAL, "test_run of program type %d is not implemented by bpfemu" % prog.type)


TEST_RUN = {
    uapi.BPF_PROG_TYPE_SOCKET_FILTER: bpf_prog_test_run_skb,
    uapi.BPF_PROG_TYPE_SCHED_CLS: bpf_prog_test_run_skb,
    uapi.BPF_PROG_TYPE_SCHED_ACT: bpf_prog_test_run_skb,
    uapi.BPF_PROG_TYPE_CGROUP_SKB: bpf_prog_test_run_skb,
    uapi.BPF_PROG_TYPE_LWT_IN: bpf_prog_test_run_skb,
    uapi.BPF_PROG_TYPE_LWT_OUT: bpf_prog_test_run_skb,
    uapi.BPF_PROG_TYPE_LWT_XMIT: bpf_prog_test_run_skb,
    uapi.BPF_PROG_TYPE_LWT_SEG6LOCAL: bpf_prog_test_run_skb,  # where the version has it (test_run_types)
    uapi.BPF_PROG_TYPE_XDP: bpf_prog_test_run_xdp,
    uapi.BPF_PROG_TYPE_RAW_TRACEPOINT: bpf_prog_test_run_raw_tp,
    uapi.BPF_PROG_TYPE_SYSCALL: bpf_prog_test_run_syscall,
    uapi.BPF_PROG_TYPE_FLOW_DISSECTOR: bpf_prog_test_run_flow_dissector,
    uapi.BPF_PROG_TYPE_SK_LOOKUP: bpf_prog_test_run_sk_lookup,
    uapi.BPF_PROG_TYPE_TRACING: not_emulated,        # fentry/fexit/fmod_ret: bpf_fentry_test*()
    uapi.BPF_PROG_TYPE_NETFILTER: not_emulated,      # struct bpf_nf_ctx: pointers to sk_buff, nf_hook_state
    uapi.BPF_PROG_TYPE_STRUCT_OPS: not_emulated,     # bpf_struct_ops_test_run
}
