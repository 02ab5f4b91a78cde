"""What the helper implementations share: errno returns, argument decoding, maps behind pointers."""
import struct

from ..memory import M64

U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")


def neg(errno_):
    """``-errno`` as the u64 a helper returns."""
    return -errno_ & M64


def s64(v):
    v &= M64
    return v - (1 << 64) if v >> 63 else v


def map_at(run, addr):
    """The map behind a map pointer argument (ARG_CONST_MAP_PTR)."""
    return run.mem.object_at(addr, "map")


def ctx_obj(run, addr):
    """What the context pointer of the running program stands for (its skb or xdp buffer)."""
    r, _off = run.mem.resolve(addr, 1)
    return r.obj


def value_ptr(run, m, where):
    """A map value pointer for the program, or 0 (NULL) when ``where`` is None."""
    return 0 if where is None else run.map_value_addr(m, where)
