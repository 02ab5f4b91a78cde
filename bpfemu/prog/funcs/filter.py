"""Helpers of net/core/filter.c that the test-run program types use: packet bytes, checksums, the head and
tail of skbs and xdp buffers, vlan tags, hashes, redirects, socket lookups and event output.

The packet model is the test run's (:class:`bpfemu.prog.test_run.SkBuff`, :class:`~bpfemu.prog.test_run.
XdpBuff`), found behind the context pointer. A helper that changes where the packet lies (a new head, a
longer tail) calls the model's ``resync(run)``: the packet region is mapped again and the context's
data/data_end pointers rewritten (``bpf_compute_data_pointers``); the verifier makes the program re-check
every packet pointer after such a call.

Checksums follow include/net/checksum.h and the x86-64 ``csum_partial``: a ``__wsum`` is a 32-bit
one's-complement partial sum, a ``__sum16`` the folded, inverted 16 bits as they sit in the packet (values
are read little-endian, as the kernel's loads on x86 read them).
"""
import errno
import struct

from ... import uapi
from ...errors import ENOTSUPP
from ..helpers import helper_impl
from ..memory import M32, M64
from .common import ctx_obj, map_at, neg

ETH_HLEN = 14
ETH_ALEN = 6
VLAN_HLEN = 4
XDP_FRAME_SIZE = 40              # sizeof(struct xdp_frame): what xdp_adjust_head/meta keep free
BPF_SKB_MAX_LEN = 4 * 4096 - 320  # SKB_MAX_ALLOC: what change_head/change_tail may grow an skb to
CHECKSUM_NONE, CHECKSUM_UNNECESSARY, CHECKSUM_COMPLETE, CHECKSUM_PARTIAL = 0, 1, 2, 3
SKB_MAX_CSUM_LEVEL = 3

# helper flags (#defines and enums of include/uapi/linux/bpf.h)
BPF_F_RECOMPUTE_CSUM, BPF_F_INVALIDATE_HASH = 1, 2
BPF_F_HDR_FIELD_MASK = 0xF
BPF_F_PSEUDO_HDR, BPF_F_MARK_MANGLED_0, BPF_F_MARK_ENFORCE, BPF_F_IPV6 = 1 << 4, 1 << 5, 1 << 6, 1 << 7
CSUM_MANGLED_0 = 0xFFFF
BPF_HDR_START_MAC, BPF_HDR_START_NET = 0, 1
BPF_CSUM_LEVEL_QUERY, BPF_CSUM_LEVEL_INC, BPF_CSUM_LEVEL_DEC, BPF_CSUM_LEVEL_RESET = 0, 1, 2, 3
BPF_F_INGRESS = 1
BPF_F_REDIRECT_INTERNAL = 1 << 31   # kernel-internal, refused from programs
TC_ACT_SHOT, TC_ACT_REDIRECT = 2, 7
XDP_ABORTED, XDP_REDIRECT = 0, 4
BPF_F_BROADCAST, BPF_F_EXCLUDE_INGRESS = 1 << 3, 1 << 4
BPF_F_ACTION_MASK = 3
BPF_F_INDEX_MASK = 0xFFFFFFFF
BPF_F_CURRENT_CPU = BPF_F_INDEX_MASK
BPF_F_CTXLEN_MASK = 0xFFFFF << 32
ETH_P_8021Q, ETH_P_8021AD = 0x0081, 0xA888   # htons(0x8100), htons(0x88A8): as a program passes them
U16 = struct.Struct("<H")


# ---- checksums (include/net/checksum.h, arch/x86/lib/csum-partial_64.c) ---------------------------------

def csum_partial(data, seed):
    """x86-64 csum_partial of an aligned buffer: little-endian u64 words added with end-around carry
    (trailing bytes zero-padded), folded to 32 bits with carry."""
    s = seed & M32
    n = len(data)
    full = n & ~7
    for (w,) in struct.iter_unpack("<Q", data[:full]):
        s += w
        s = (s & M64) + (s >> 64)
    if n & 7:
        s += int.from_bytes(bytes(data[full:]), "little")
        s = (s & M64) + (s >> 64)
    t = (s & M32) + (s >> 32)
    return (t & M32) + (t >> 32)


def csum_add(a, b):
    r = (a + b) & M32
    return (r + (r < (b & M32))) & M32


def csum_sub(a, b):
    return csum_add(a, ~b & M32)


def csum_fold(csum):
    s = (csum & 0xFFFF) + (csum >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def csum16_add(csum, addend):
    r = (csum + addend) & 0xFFFF
    return (r + (r < (addend & 0xFFFF))) & 0xFFFF


def csum_replace_by_diff(old, diff):
    return csum_fold(csum_add(diff, ~old & M32))


def csum_replace4(old, frm, to):
    tmp = csum_sub(~old & M32, frm & M32)
    return csum_fold(csum_add(tmp, to & M32))


def csum_replace2(old, frm, to):
    return ~csum16_add(csum16_add(~old & 0xFFFF, ~frm & 0xFFFF), to & 0xFFFF) & 0xFFFF


def skb_checksum(skb, off, n):
    return csum_partial(bytes(skb.buf[skb.data + off:skb.data + off + n]), 0)


# ---- skb data --------------------------------------------------------------------------------------------

def _skb(run, r1):
    return ctx_obj(run, r1)


@helper_impl("skb_load_bytes", "sk_reuseport_load_bytes")
def bpf_skb_load_bytes(run, r1, r2, r3, r4, r5):
    """r4 bytes at offset r2 from skb->data into r3; -EFAULT (and zeroes) past the packet."""
    skb = _skb(run, r1)
    off, n = r2 & M32, r4 & M32
    if off > 0x7FFFFFFF or off + n > skb.len:
        run.mem.write(r3, bytes(n))
        return neg(errno.EFAULT)
    run.mem.write(r3, bytes(skb.buf[skb.data + off:skb.data + off + n]))
    return 0


@helper_impl("skb_load_bytes_relative", "sk_reuseport_load_bytes_relative")
def bpf_skb_load_bytes_relative(run, r1, r2, r3, r4, r5):
    skb = _skb(run, r1)
    off, n = r2 & M32, r4 & M32
    start = None
    if off <= 0xFFFF:
        if r5 & M32 == BPF_HDR_START_MAC:
            start = skb.mac_header
        elif r5 & M32 == BPF_HDR_START_NET:
            start = skb.network_header
    if start is None or start + off + n > skb.tail:
        run.mem.write(r3, bytes(n))
        return neg(errno.EFAULT)
    run.mem.write(r3, bytes(skb.buf[start + off:start + off + n]))
    return 0


@helper_impl("flow_dissector_load_bytes")
def bpf_flow_dissector_load_bytes(run, r1, r2, r3, r4, r5):
    """Bytes of the frame a flow dissector runs on (its __sk_buff's data .. data_end)."""
    off, n = r2 & M32, r4 & M32
    c = run.mem.read(r1, 84)
    data, data_end = struct.unpack_from("<II", c, 76)
    if off > 0xFFFF or data + off + n > data_end:
        run.mem.write(r3, bytes(n))
        return neg(errno.EFAULT)
    run.mem.write(r3, run.mem.read(data + off, n))
    return 0


def _writable(skb, n):
    """bpf_try_make_writable (skb_ensure_writable): the first n bytes must lie in the packet."""
    return n <= skb.len


def _postpull_rcsum(skb, off, n):
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = csum_sub(skb.csum, csum_partial(bytes(skb.buf[skb.data + off:skb.data + off + n]), 0))


def _postpush_rcsum(skb, off, n):
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = csum_add(skb.csum, csum_partial(bytes(skb.buf[skb.data + off:skb.data + off + n]), 0))


@helper_impl("skb_store_bytes")
def bpf_skb_store_bytes(run, r1, r2, r3, r4, r5):
    """r4 bytes from r3 at offset r2 of the packet; BPF_F_RECOMPUTE_CSUM keeps a CHECKSUM_COMPLETE sum,
    BPF_F_INVALIDATE_HASH clears the hash."""
    skb = _skb(run, r1)
    off, n = r2 & M32, r4 & M32
    if r5 & ~(BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH):
        return neg(errno.EINVAL)
    if off > 0x7FFFFFFF:
        return neg(errno.EFAULT)
    if not _writable(skb, (off + n) & M32):
        return neg(errno.EFAULT)
    data = run.mem.read(r3, n)
    if r5 & BPF_F_RECOMPUTE_CSUM:
        _postpull_rcsum(skb, off, n)
    skb.buf[skb.data + off:skb.data + off + n] = data
    if r5 & BPF_F_RECOMPUTE_CSUM:
        _postpush_rcsum(skb, off, n)
    if r5 & BPF_F_INVALIDATE_HASH:
        skb.hash = 0
        skb.sw_hash = skb.l4_hash = 0
    skb.resync(run)
    return 0


@helper_impl("l3_csum_replace")
def bpf_l3_csum_replace(run, r1, r2, r3, r4, r5):
    skb = _skb(run, r1)
    off = r2 & M32
    if r5 & ~BPF_F_HDR_FIELD_MASK:
        return neg(errno.EINVAL)
    if off > 0xFFFF or off & 1:
        return neg(errno.EFAULT)
    if not _writable(skb, off + 2):
        return neg(errno.EFAULT)
    at = skb.data + off
    old = U16.unpack_from(skb.buf, at)[0]
    kind = r5 & BPF_F_HDR_FIELD_MASK
    if kind == 0:
        if r3:
            return neg(errno.EINVAL)
        new = csum_replace_by_diff(old, r4 & M32)
    elif kind == 2:
        new = csum_replace2(old, r3 & 0xFFFF, r4 & 0xFFFF)
    elif kind == 4:
        new = csum_replace4(old, r3 & M32, r4 & M32)
    else:
        return neg(errno.EINVAL)
    U16.pack_into(skb.buf, at, new)
    skb.resync(run)
    return 0


@helper_impl("l4_csum_replace")
def bpf_l4_csum_replace(run, r1, r2, r3, r4, r5):
    skb = _skb(run, r1)
    off = r2 & M32
    pseudo, mmzero = bool(r5 & BPF_F_PSEUDO_HDR), bool(r5 & BPF_F_MARK_MANGLED_0)
    mforce, ipv6 = bool(r5 & BPF_F_MARK_ENFORCE), bool(r5 & BPF_F_IPV6)
    if r5 & ~(BPF_F_MARK_MANGLED_0 | BPF_F_MARK_ENFORCE | BPF_F_PSEUDO_HDR | BPF_F_HDR_FIELD_MASK | BPF_F_IPV6):
        return neg(errno.EINVAL)
    if off > 0xFFFF or off & 1:
        return neg(errno.EFAULT)
    if not _writable(skb, off + 2):
        return neg(errno.EFAULT)
    at = skb.data + off
    old = U16.unpack_from(skb.buf, at)[0]
    if mmzero and not mforce and not old:
        return 0
    kind = r5 & BPF_F_HDR_FIELD_MASK
    partial = skb.ip_summed == CHECKSUM_PARTIAL
    complete = skb.ip_summed == CHECKSUM_COMPLETE
    if kind == 0:
        if r3:
            return neg(errno.EINVAL)
        diff = r4 & M32
        if not partial:
            new = csum_replace_by_diff(old, diff)
            if complete and pseudo and not ipv6:
                skb.csum = ~csum_sub(diff, skb.csum) & M32
        elif pseudo:
            new = ~csum_fold(csum_add(diff, old)) & 0xFFFF
        else:
            new = old
    elif kind in (2, 4):
        mask = 0xFFFF if kind == 2 else M32
        frm, to = r3 & mask, r4 & mask
        if not partial:
            new = csum_replace4(old, frm, to)
            if complete and pseudo:
                skb.csum = ~csum_add(csum_sub(~skb.csum & M32, frm), to) & M32
        elif pseudo:
            new = ~csum_fold(csum_add(csum_sub(old, frm), to)) & 0xFFFF
        else:
            new = old
    else:
        return neg(errno.EINVAL)
    if mmzero and not new:
        new = CSUM_MANGLED_0
    U16.pack_into(skb.buf, at, new)
    skb.resync(run)
    return 0


CSUM_DIFF_SCRATCH = 512   # struct bpf_scratchpad's diff: MAX_BPF_STACK bytes of __be32


@helper_impl("csum_diff")
def bpf_csum_diff(run, r1, r2, r3, r4, r5):
    """The checksum difference of 'from' (r1, r2 bytes) and 'to' (r3, r4 bytes) from the seed r5, as the
    kernel version's profile says (``csum_diff``). "folded" (6.13 and later, every architecture): 'to' summed
    from the seed less 'from' summed (only 'to': its sum from the seed; only 'from': the complement of its sum
    from the complemented seed), folded to 16 bits (not complemented), any sizes (the verifier bounds them by
    the memory passed). "csum_partial" (6.1, 6.12): -EINVAL unless both sizes are multiples of 4 and 512 bytes
    or fewer in all, else the raw 32-bit x86-64 csum_partial, from the seed, of the complemented 'from' words
    followed by the 'to' words (see docs/kernel-notes.md)."""
    fsz, tsz = r2 & M32, r4 & M32
    seed = r5 & M32
    if run.kernel.profile.csum_diff == "csum_partial":
        if (fsz | tsz) & 3 or fsz + tsz > CSUM_DIFF_SCRATCH:
            return neg(errno.EINVAL)
        frm = run.mem.read(r1, fsz) if fsz else b""
        to = run.mem.read(r3, tsz) if tsz else b""
        diff = b"".join(struct.pack("<I", ~w & M32) for (w,) in struct.iter_unpack("<I", frm)) + bytes(to)
        return csum_partial(diff, seed)
    frm = run.mem.read(r1, fsz) if fsz else b""
    to = run.mem.read(r3, tsz) if tsz else b""
    if fsz and tsz:
        ret = csum_sub(csum_partial(to, seed), csum_partial(frm, 0))
    elif tsz:
        ret = csum_partial(to, seed)
    elif fsz:
        ret = ~csum_partial(frm, ~seed & M32) & M32
    else:
        ret = seed
    return csum_from32to16(ret)


def csum_from32to16(x):
    """Fold a 32-bit ones' complement sum to 16 bits (no complement)."""
    x = (x & 0xFFFF) + (x >> 16)
    return (x & 0xFFFF) + (x >> 16)


@helper_impl("csum_update")
def bpf_csum_update(run, r1, r2, r3, r4, r5):
    skb = _skb(run, r1)
    if skb.ip_summed == CHECKSUM_COMPLETE:
        skb.csum = csum_add(skb.csum, r2 & M32)
        return skb.csum
    return neg(ENOTSUPP)


@helper_impl("csum_level")
def bpf_csum_level(run, r1, r2, r3, r4, r5):
    skb = _skb(run, r1)
    if r2 == BPF_CSUM_LEVEL_INC:
        if skb.ip_summed == CHECKSUM_UNNECESSARY:
            if skb.csum_level < SKB_MAX_CSUM_LEVEL:
                skb.csum_level += 1
        elif skb.ip_summed == CHECKSUM_NONE:
            skb.ip_summed = CHECKSUM_UNNECESSARY
            skb.csum_level = 0
    elif r2 == BPF_CSUM_LEVEL_DEC:
        if skb.ip_summed == CHECKSUM_UNNECESSARY:
            if skb.csum_level == 0:
                skb.ip_summed = CHECKSUM_NONE
            else:
                skb.csum_level -= 1
    elif r2 == BPF_CSUM_LEVEL_RESET:
        if skb.ip_summed == CHECKSUM_UNNECESSARY:
            skb.ip_summed = CHECKSUM_NONE
            skb.csum_level = 0
    elif r2 == BPF_CSUM_LEVEL_QUERY:
        return skb.csum_level if skb.ip_summed == CHECKSUM_UNNECESSARY else neg(errno.EACCES)
    else:
        return neg(errno.EINVAL)
    return 0


# ---- the skb's head and tail -----------------------------------------------------------------------------

@helper_impl("skb_change_head", "sk_skb_change_head")
def bpf_skb_change_head(run, r1, r2, r3, r4, r5):
    """Push r2 zeroed bytes in front of the packet (a new mac header there)."""
    skb = _skb(run, r1)
    room = r2 & M32
    new_len = skb.len + room
    if r3 or new_len > BPF_SKB_MAX_LEN or new_len & M32 < skb.len:
        skb.resync(run)
        return neg(errno.EINVAL)
    skb.expand(room, 0)
    skb.data -= room
    skb.buf[skb.data:skb.data + room] = bytes(room)
    skb.mac_header = skb.data
    skb.resync(run)
    return 0


def _min_len(skb):
    off = skb.network_header - skb.data if skb.network_header is not None else 0
    return max(off, 0)


@helper_impl("skb_change_tail", "sk_skb_change_tail")
def bpf_skb_change_tail(run, r1, r2, r3, r4, r5):
    """Trim the packet to r2 bytes or grow it with zeroes."""
    skb = _skb(run, r1)
    new_len = r2 & M32
    if r3 or new_len > BPF_SKB_MAX_LEN or new_len < _min_len(skb):
        skb.resync(run)
        return neg(errno.EINVAL)
    if new_len > skb.len:
        grow = new_len - skb.len
        skb.expand(0, grow)
        start = skb.tail
        skb.buf[start:start + grow] = bytes(grow)
        if skb.ip_summed == CHECKSUM_COMPLETE:
            pass  # zeroes add nothing to the sum
        skb.tail += grow
    elif new_len < skb.len:
        if skb.ip_summed == CHECKSUM_COMPLETE:
            skb.csum = csum_sub(skb.csum, csum_partial(bytes(skb.buf[skb.data + new_len:skb.tail]), 0))
        skb.tail = skb.data + new_len
    skb.resync(run)
    return 0


@helper_impl("skb_pull_data", "sk_skb_pull_data")
def bpf_skb_pull_data(run, r1, r2, r3, r4, r5):
    """Make the first r2 bytes linear (they are: the emulated skb is linear); -ENOMEM past the packet."""
    skb = _skb(run, r1)
    n = r2 & M32
    ret = 0 if n <= skb.len or not n else neg(errno.ENOMEM)
    skb.resync(run)
    return ret


@helper_impl("skb_vlan_push")
def bpf_skb_vlan_push(run, r1, r2, r3, r4, r5):
    skb = _skb(run, r1)
    proto = r2 & 0xFFFF
    if proto not in (ETH_P_8021Q, ETH_P_8021AD):
        proto = ETH_P_8021Q
    if skb.vlan_present:
        if skb.data != skb.mac_header:
            return neg(errno.EINVAL)
        skb.expand(VLAN_HLEN, 0)
        d = skb.data
        skb.buf[d - VLAN_HLEN:d + 2 * ETH_ALEN - VLAN_HLEN] = skb.buf[d:d + 2 * ETH_ALEN]
        skb.data -= VLAN_HLEN
        d = skb.data
        U16.pack_into(skb.buf, d + 2 * ETH_ALEN, skb.vlan_proto)
        struct.pack_into(">H", skb.buf, d + 2 * ETH_ALEN + 2, skb.vlan_tci)
        skb.mac_header -= VLAN_HLEN
        skb.protocol = skb.vlan_proto
        if skb.network_header is not None:
            skb.network_header -= VLAN_HLEN
    skb.vlan_present, skb.vlan_proto, skb.vlan_tci = 1, proto, r3 & 0xFFFF
    skb.resync(run)
    return 0


@helper_impl("skb_vlan_pop")
def bpf_skb_vlan_pop(run, r1, r2, r3, r4, r5):
    """skb_vlan_pop: clear the offloaded tag, or take the outer tag out of the packet when there is none;
    then a tag left in the packet becomes the offloaded one."""
    skb = _skb(run, r1)
    if skb.vlan_present:
        skb.vlan_present = skb.vlan_tci = skb.vlan_proto = 0
    elif skb.protocol in (ETH_P_8021Q, ETH_P_8021AD):
        tci = _vlan_pop_tag(skb)
        if tci < 0:
            skb.resync(run)
            return neg(-tci)
    if skb.protocol in (ETH_P_8021Q, ETH_P_8021AD):
        proto = skb.protocol
        tci = _vlan_pop_tag(skb)
        if tci < 0:
            skb.resync(run)
            return neg(-tci)
        skb.vlan_present, skb.vlan_proto, skb.vlan_tci = 1, proto, tci
    skb.resync(run)
    return 0


def _vlan_pop_tag(skb):
    """__skb_vlan_pop: remove the tag after the MAC addresses (the mac header must be at data: -EINVAL; the
    frame must hold it: -ENOMEM); skb->protocol becomes the encapsulated one. Returns the tag's TCI."""
    if skb.data != skb.mac_header:
        return -errno.EINVAL
    if skb.len < ETH_HLEN + VLAN_HLEN:
        return -errno.ENOMEM
    d = skb.data
    tci = struct.unpack_from(">H", skb.buf, d + 2 * ETH_ALEN + 2)[0]
    encap = U16.unpack_from(skb.buf, d + 2 * ETH_ALEN + 4)[0]
    skb.buf[d + VLAN_HLEN:d + VLAN_HLEN + 2 * ETH_ALEN] = skb.buf[d:d + 2 * ETH_ALEN]
    skb.data += VLAN_HLEN
    skb.mac_header += VLAN_HLEN
    if ((encap & 0xFF) << 8 | encap >> 8) >= 0x600:   # ETH_P_802_3_MIN: an ethertype, not a length
        skb.protocol = encap
    if skb.network_header is not None and skb.network_header - skb.mac_header < ETH_HLEN:
        skb.network_header = skb.mac_header + ETH_HLEN
    return tci


# ---- hashes, classids, cookies -----------------------------------------------------------------------------

@helper_impl("get_hash_recalc")
def bpf_get_hash_recalc(run, r1, r2, r3, r4, r5):
    """skb->hash, computed from the packet's flow when unset (a jhash of the frame's addresses and ports
    with the kernel's seed: stable within a kernel, not the host's value)."""
    skb = _skb(run, r1)
    if not skb.l4_hash and not skb.sw_hash:
        from ...jhash import jhash
        keys = bytes(skb.buf[skb.network_header or skb.data:(skb.network_header or skb.data) + 40])
        h = jhash(keys, run.kernel.seed & M32) or 1
        skb.hash, skb.l4_hash = h, 1
        skb.resync(run)
    return skb.hash


@helper_impl("set_hash")
def bpf_set_hash(run, r1, r2, r3, r4, r5):
    skb = _skb(run, r1)
    skb.hash, skb.sw_hash, skb.l4_hash = r2 & M32, 1, 0
    skb.resync(run)
    return 0


@helper_impl("set_hash_invalid")
def bpf_set_hash_invalid(run, r1, r2, r3, r4, r5):
    skb = _skb(run, r1)
    skb.hash = skb.sw_hash = skb.l4_hash = 0
    skb.resync(run)
    return 0


@helper_impl("get_cgroup_classid", "get_route_realm", "skb_cgroup_classid")
def bpf_get_cgroup_classid(run, r1, r2, r3, r4, r5):
    """No net_cls class and no route: 0 for a test run's skb."""
    return 0


@helper_impl("get_socket_uid")
def bpf_get_socket_uid(run, r1, r2, r3, r4, r5):
    """The test run's dummy socket belongs to no file: the overflow uid (65534)."""
    return 65534


@helper_impl("get_socket_cookie")
def bpf_get_socket_cookie(run, r1, r2, r3, r4, r5):
    """The test run's socket has no cookie yet; the kernel hands out the next one (1 and up per boot)."""
    skb = _skb(run, r1)
    if not skb.sk_cookie:
        run.kernel.socket_cookies = getattr(run.kernel, "socket_cookies", 0) + 1
        skb.sk_cookie = run.kernel.socket_cookies
    return skb.sk_cookie


# ---- socket lookups: the emulated network namespace has no sockets -------------------------------------

@helper_impl("sk_lookup_tcp", "sk_lookup_udp", "skc_lookup_tcp", "tc_sk_lookup_tcp", "tc_sk_lookup_udp",
             "tc_skc_lookup_tcp", "xdp_sk_lookup_tcp", "xdp_sk_lookup_udp", "xdp_skc_lookup_tcp",
             "sock_addr_sk_lookup_tcp", "sock_addr_sk_lookup_udp", "sock_addr_skc_lookup_tcp")
def bpf_sk_lookup(run, r1, r2, r3, r4, r5):
    """No socket of the namespace matches (the emulator models none): NULL."""
    return 0


@helper_impl("sk_release")
def bpf_sk_release(run, r1, r2, r3, r4, r5):
    return 0


# ---- redirects ------------------------------------------------------------------------------------------

@helper_impl("redirect")
def bpf_redirect(run, r1, r2, r3, r4, r5):
    """tc: remember the target, TC_ACT_REDIRECT (TC_ACT_SHOT for flags other than BPF_F_INGRESS)."""
    if r2 & (~BPF_F_INGRESS | BPF_F_REDIRECT_INTERNAL) & M64:
        return TC_ACT_SHOT
    run.redirect = (r1 & M32, r2)
    return TC_ACT_REDIRECT


@helper_impl("xdp_redirect")
def bpf_xdp_redirect(run, r1, r2, r3, r4, r5):
    if r2:
        return XDP_ABORTED
    run.redirect = (r1 & M32, 0)
    return XDP_REDIRECT


@helper_impl("xdp_redirect_map")
def bpf_xdp_redirect_map(run, r1, r2, r3, r4, r5):
    """XDP_REDIRECT when the map has an entry at r2 (or BPF_F_BROADCAST), else the action in flags' low
    bits; XDP_ABORTED for unknown flags."""
    m = map_at(run, r1)
    if r3 & ~(BPF_F_ACTION_MASK | BPF_F_BROADCAST | BPF_F_EXCLUDE_INGRESS):
        return XDP_ABORTED
    target = m.slots.get(r2 & M32) if hasattr(m, "slots") else None
    if target is None and not r3 & BPF_F_BROADCAST:
        return r3 & BPF_F_ACTION_MASK
    run.redirect = (m, r2 & M32)
    return XDP_REDIRECT


# ---- event output to a PERF_EVENT_ARRAY ----------------------------------------------------------------

def _perf_event_output(run, m, flags):
    index = flags & BPF_F_INDEX_MASK
    if index == BPF_F_CURRENT_CPU:
        index = run.cpu
    if index >= m.max_entries:
        return neg(errno.E2BIG)
    if m.slots.get(index) is None:  # no perf event there (the emulator models none)
        return neg(errno.ENOENT)
    return neg(errno.EOPNOTSUPP)  # pragma: no cover - perf events are not modelled


@helper_impl("skb_event_output")
def bpf_skb_event_output(run, r1, r2, r3, r4, r5):
    skb = _skb(run, r1)
    if r3 & ~(BPF_F_CTXLEN_MASK | BPF_F_INDEX_MASK):
        return neg(errno.EINVAL)
    if (r3 & BPF_F_CTXLEN_MASK) >> 32 > skb.len:
        return neg(errno.EFAULT)
    return _perf_event_output(run, map_at(run, r2), r3)


@helper_impl("xdp_event_output")
def bpf_xdp_event_output(run, r1, r2, r3, r4, r5):
    xdp = ctx_obj(run, r1)
    if r3 & ~(BPF_F_CTXLEN_MASK | BPF_F_INDEX_MASK):
        return neg(errno.EINVAL)
    if (r3 & BPF_F_CTXLEN_MASK) >> 32 > xdp.buff_len:
        return neg(errno.EFAULT)
    return _perf_event_output(run, map_at(run, r2), r3)


@helper_impl("perf_event_output", "perf_event_output_proto_raw_tp", "perf_event_output_proto_tp",
             "event_output_data")
def bpf_perf_event_output(run, r1, r2, r3, r4, r5):
    if r3 & ~BPF_F_INDEX_MASK:
        return neg(errno.EINVAL)
    return _perf_event_output(run, map_at(run, r2), r3)


# ---- xdp -------------------------------------------------------------------------------------------------

def _xdp(run, r1):
    return ctx_obj(run, r1)


def _s32(v):
    v &= M32
    return v - (1 << 32) if v >> 31 else v


@helper_impl("xdp_adjust_head")
def bpf_xdp_adjust_head(run, r1, r2, r3, r4, r5):
    xdp = _xdp(run, r1)
    off = _s32(r2)
    metalen = xdp.data - xdp.data_meta
    data = xdp.data + off
    if data < XDP_FRAME_SIZE + metalen or data > xdp.data_end - ETH_HLEN:
        return neg(errno.EINVAL)
    if metalen:
        meta = bytes(xdp.buf[xdp.data_meta:xdp.data])
        xdp.buf[xdp.data_meta + off:xdp.data_meta + off + metalen] = meta
    xdp.data_meta += off
    xdp.data = data
    xdp.resync(run)
    return 0


@helper_impl("xdp_adjust_meta")
def bpf_xdp_adjust_meta(run, r1, r2, r3, r4, r5):
    xdp = _xdp(run, r1)
    meta = xdp.data_meta + _s32(r2)
    metalen = xdp.data - meta
    if meta < XDP_FRAME_SIZE or meta > xdp.data:
        return neg(errno.EINVAL)
    if metalen & 3 or metalen > 0xFF:
        return neg(errno.EACCES)
    xdp.data_meta = meta
    xdp.resync(run)
    return 0


@helper_impl("xdp_adjust_tail")
def bpf_xdp_adjust_tail(run, r1, r2, r3, r4, r5):
    xdp = _xdp(run, r1)
    off = _s32(r2)
    if xdp.frags:
        return neg(errno.EOPNOTSUPP)
    data_end = xdp.data_end + off
    if data_end > xdp.data_hard_end or data_end < xdp.data + ETH_HLEN:
        return neg(errno.EINVAL)
    if off > 0:
        xdp.buf[xdp.data_end:data_end] = bytes(off)
    xdp.data_end = data_end
    xdp.resync(run)
    return 0


@helper_impl("xdp_get_buff_len")
def bpf_xdp_get_buff_len(run, r1, r2, r3, r4, r5):
    return _xdp(run, r1).buff_len


def _xdp_span(xdp, off, n):
    """bpf_xdp_pointer's checks: -EFAULT for offsets or lengths above 0xffff, -EINVAL past the frame."""
    if off > 0xFFFF or n > 0xFFFF:
        return -errno.EFAULT
    if off + n > xdp.buff_len:
        return -errno.EINVAL
    return 0


@helper_impl("xdp_load_bytes")
def bpf_xdp_load_bytes(run, r1, r2, r3, r4, r5):
    xdp = _xdp(run, r1)
    off, n = r2 & M32, r4 & M32
    err = _xdp_span(xdp, off, n)
    if err:
        return err & M64
    run.mem.write(r3, xdp.read(off, n))
    return 0


@helper_impl("xdp_store_bytes")
def bpf_xdp_store_bytes(run, r1, r2, r3, r4, r5):
    xdp = _xdp(run, r1)
    off, n = r2 & M32, r4 & M32
    err = _xdp_span(xdp, off, n)
    if err:
        return err & M64
    xdp.write(off, run.mem.read(r3, n))
    return 0


__all__ = ["csum_partial", "csum_fold", "skb_checksum", "uapi"]


# ---- bpf_fib_lookup ------------------------------------------------------------------------------------------

BPF_FIB_LOOKUP_FLAGS = 0x3F      # DIRECT, OUTPUT, SKIP_NEIGH, TBID, SRC, MARK
BPF_FIB_LKUP_RET_FWD_DISABLED = 5
FIB_PARAMS_SIZE = 64             # sizeof(struct bpf_fib_lookup)
AF_INET, AF_INET6 = 2, 10
LOOPBACK_IFINDEX = 1


@helper_impl("xdp_fib_lookup", "skb_fib_lookup")
def bpf_fib_lookup(run, r1, r2, r3, r4, r5):
    """The FIB lookup of a test run's netns, which has only the loopback device with forwarding off:
    -EINVAL for a short params struct (plen < 64) or unknown flags, -EAFNOSUPPORT for a family other than
    AF_INET/AF_INET6, -ENODEV for another ifindex, else BPF_FIB_LKUP_RET_FWD_DISABLED."""
    plen = r3 & M32
    if plen < FIB_PARAMS_SIZE:
        return neg(errno.EINVAL)
    if r4 & M32 & ~BPF_FIB_LOOKUP_FLAGS:
        return neg(errno.EINVAL)
    params = run.mem.read(r2, FIB_PARAMS_SIZE)
    family = params[0]
    if family not in (AF_INET, AF_INET6):
        return neg(errno.EAFNOSUPPORT)
    ifindex = struct.unpack_from("<I", params, 8)[0]
    if ifindex != LOOPBACK_IFINDEX:
        return neg(errno.ENODEV)
    return BPF_FIB_LKUP_RET_FWD_DISABLED
