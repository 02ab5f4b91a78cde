"""The memory a running program sees: regions behind tagged addresses, every access bounds-checked.

A BPF program only ever touches memory the verifier proved it may: its stack frames, its context, the packet,
map values, ringbuf records. The emulator models each of those as a :class:`Region` (a bytearray, a
memoryview into a map's own storage, or an object that computes its bytes, such as a context whose
``data`` field reads as a packet pointer). A pointer is a plain 64-bit integer, a *tagged address*:

    address = (key << 32) | offset        key = REGION_KEY_BASE + region number, offset < 2**32

so a register holds the same kind of value as in the kernel, pointer arithmetic is integer arithmetic (packet
bounds checks such as ``data + 14 > data_end`` compare as they do on the host), and a load or store finds its
region with one dict lookup of ``address >> 32``. Addresses look like kernel ones (0xffff...). No region lies
at or near 0, so a NULL dereference, an address that is not a pointer, or an offset past a region's end is a
:class:`Fault`: an internal error of the emulator (the verifier rejects programs that could do that), never
an access to Python memory outside the program's regions, never a crash.

A :class:`Memory` is the address space of one program invocation (``bpf_prog_run`` and everything it calls:
bpf2bpf frames, tail calls, helpers, callbacks). Regions are added and removed as the run creates and
drops them (stack frames per call depth, a map value a helper returned).

Each region carries accessors the interpreter and the translated code call directly: ``ld[n](off)``
returns a 1-tuple holding the zero-extended n-byte little-endian value (n in 1, 2, 4, 8), ``lds[n](off)`` the
sign-extended one, ``st[n](off, value)`` stores the low n bytes of a value already masked to n bytes. For a
plain buffer they are ``struct`` methods bound to the buffer, so a bounds or write-protection violation
surfaces as ``struct.error``/``TypeError`` from C, which the engines turn into :class:`Fault`.
"""
import functools
import struct

REGION_KEY_BASE = 0xffff0000      # address >> 32 of region 0; region n lives at (REGION_KEY_BASE + n) << 32
MAX_REGIONS = 0x10000             # regions alive at once in one invocation
MAX_REGION_SIZE = 1 << 32         # offsets are the low 32 bits of an address
STACK_SIZE = 512                  # MAX_BPF_STACK: each call frame gets its own region of this size
MAX_CALL_FRAMES = 8               # kernel MAX_CALL_FRAMES

ZERO_STACK = bytes(STACK_SIZE)
M64 = (1 << 64) - 1
M32 = 0xffffffff

U = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"), 8: struct.Struct("<Q")}
S = {1: struct.Struct("<b"), 2: struct.Struct("<h"), 4: struct.Struct("<i"), 8: struct.Struct("<q")}
SIZES = (1, 2, 4, 8)

# what a bad access raises in C before the engines turn it into a Fault
ACCESS_ERRORS = (KeyError, struct.error, TypeError, IndexError, ValueError)


class Fault(RuntimeError):
    """A program touched memory outside its regions (or wrote a read-only one).

    An internal error: the verifier rejects every program that could do this, so it means an emulator bug or
    a program run without verification. ``addr`` is the tagged address when known.
    """

    def __init__(self, msg, addr=None, pc=None):
        super().__init__(msg)
        self.addr = addr
        self.pc = pc


def _no_access(*_):
    raise TypeError("region not accessible this way")


class Region:
    """A contiguous range of bytes a program may address: ``size`` bytes at ``base`` (set by Memory.add).

    ``buf`` is a bytearray/memoryview (writable) or bytes/readonly memoryview (read-only: stores fault).
    ``kind`` names what it models ('stack', 'ctx', 'packet', 'map_value', 'ringbuf', 'map', ...); ``obj`` is
    what a helper finds behind the address (the map of a map pointer, for instance).
    """

    __slots__ = ("kind", "buf", "size", "obj", "key", "base", "ld", "lds", "st", "name", "__weakref__")

    def __init__(self, kind, buf, obj=None, name=""):
        self.kind = kind
        self.obj = obj
        self.name = name
        self.key = None
        self.base = None
        self.set_buffer(buf)

    def set_buffer(self, buf):
        """(Re)bind the accessors to ``buf`` (a packet whose storage was reallocated, for instance)."""
        if buf is None:
            buf = b""
        if len(buf) > MAX_REGION_SIZE:
            raise ValueError("a region is at most 4 GiB")
        self.buf = buf
        self.size = len(buf)
        ld, lds, st = [None] * 9, [None] * 9, [None] * 9
        for n in SIZES:
            ld[n] = functools.partial(U[n].unpack_from, buf)
            lds[n] = functools.partial(S[n].unpack_from, buf)
            st[n] = functools.partial(U[n].pack_into, buf)
        self.ld, self.lds, self.st = tuple(ld), tuple(lds), tuple(st)

    @property
    def writable(self):
        if isinstance(self.buf, memoryview):
            return not self.buf.readonly
        return isinstance(self.buf, bytearray)

    # -- slow, general accessors (helpers, the reference interpreter's atomics) ----------------------------
    def read(self, off, n):
        if off < 0 or n < 0 or off + n > self.size:
            raise Fault("read of %d bytes at offset %d of a %d-byte %s region" % (n, off, self.size, self.kind))
        return bytes(self.buf[off:off + n])

    def write(self, off, data):
        n = len(data)
        if off < 0 or off + n > self.size:
            raise Fault("write of %d bytes at offset %d of a %d-byte %s region" % (n, off, self.size, self.kind))
        if not self.writable:
            raise Fault("write to a read-only %s region" % self.kind)
        self.buf[off:off + n] = data

    def __repr__(self):
        where = "%#x" % self.base if self.base is not None else "unmapped"
        return "<%s region %s%s, %d bytes at %s>" % (self.kind, self.name and self.name + " ", "", self.size, where)


class ComputedRegion(Region):
    """A region whose loads and stores run Python code (a context with fields that are not plain bytes).

    ``load(off, n)``/``store(off, n, value)`` are the hooks; the default serves a backing buffer, so a
    subclass overrides only what is special (for example ``__sk_buff.data`` reading as a packet pointer).
    """

    __slots__ = ()

    def set_buffer(self, buf):
        Region.set_buffer(self, buf)
        ld, lds, st = [None] * 9, [None] * 9, [None] * 9
        for n in SIZES:
            ld[n] = functools.partial(self._ld, n)
            lds[n] = functools.partial(self._lds, n)
            st[n] = functools.partial(self._st, n)
        self.ld, self.lds, self.st = tuple(ld), tuple(lds), tuple(st)

    def _ld(self, n, off):
        try:
            return (self.load(n, off),)
        except ACCESS_ERRORS as e:
            raise Fault("load of %d bytes at offset %d of %s: %s" % (n, off, self.name or self.kind, e)) from None

    def _lds(self, n, off):
        v = self._ld(n, off)[0]
        bit = 1 << (8 * n - 1)
        return (((v & ((bit << 1) - 1)) ^ bit) - bit,)

    def _st(self, n, off, value):
        try:
            self.store(n, off, value)
        except ACCESS_ERRORS as e:
            raise Fault("store of %d bytes at offset %d of %s: %s" % (n, off, self.name or self.kind, e)) from None

    def load(self, n, off):
        """The n-byte value at ``off`` (override; a bad access raises Fault or one of ACCESS_ERRORS)."""
        return U[n].unpack_from(self.buf, off)[0]

    def store(self, n, off, value):
        U[n].pack_into(self.buf, off, value)


class Memory:
    """The address space of one program invocation: tagged address -> (region, offset).

    ``regions`` (key -> Region) is what the engines index with ``address >> 32``. Stack frames are regions of
    512 bytes, one per call depth, zeroed when a frame is entered (:meth:`frame`).
    """

    __slots__ = ("regions", "_free", "_next", "_frames", "__weakref__")

    def __init__(self):
        self.regions = {}
        self._free = []
        self._next = 1  # region 0 (key 0xffff0000) is never used, so REGION_KEY_BASE << 32 is not a pointer
        self._frames = []

    def add(self, region):
        """Map ``region``; returns its base address."""
        if region.key is not None:
            raise ValueError("region already mapped")
        if self._free:
            n = self._free.pop()
        else:
            if self._next >= MAX_REGIONS:
                raise Fault("address space exhausted: %d regions alive" % len(self.regions))
            n = self._next
            self._next += 1
        key = REGION_KEY_BASE + n
        region.key = key
        region.base = key << 32
        self.regions[key] = region
        return region.base

    def remove(self, region):
        """Unmap ``region``: its addresses fault from now on (its number may be reused)."""
        if region.key is None or self.regions.get(region.key) is not region:
            return
        del self.regions[region.key]
        self._free.append(region.key - REGION_KEY_BASE)
        region.key = region.base = None

    def add_buffer(self, kind, buf, obj=None, name=""):
        """Map a new plain region over ``buf``; returns (region, base address)."""
        r = Region(kind, buf, obj, name)
        return r, self.add(r)

    # -- stack frames ------------------------------------------------------------------------------------
    def frame(self, depth):
        """The stack region of call depth ``depth`` (0 = the main program), zeroed; returns (bytearray, r10).

        r10 points one past the frame's last byte, as the kernel's frame pointer does.
        """
        frames = self._frames
        while len(frames) <= depth:
            r, _ = self.add_buffer("stack", bytearray(STACK_SIZE), name="frame%d" % len(frames))
            frames.append(r)
        r = frames[depth]
        r.buf[:] = ZERO_STACK
        return r.buf, r.base + STACK_SIZE

    # -- lookups -------------------------------------------------------------------------------------------
    def resolve(self, addr, n=1):
        """(region, offset) of the n bytes at ``addr``; Fault if they are not all inside one region."""
        addr &= M64
        r = self.regions.get(addr >> 32)
        off = addr & M32
        if r is None:
            raise Fault("access of %d bytes at %#x: no region there" % (n, addr), addr)
        if off + n > r.size:
            raise Fault("access of %d bytes at %#x runs past the %d-byte %s region" % (n, addr, r.size, r.kind),
                        addr)
        return r, off

    def region_of(self, addr):
        """The region ``addr`` points into (or None)."""
        return self.regions.get((addr & M64) >> 32)

    def object_at(self, addr, kind=None):
        """What a helper finds behind a pointer argument (a map for a map pointer); Fault if none."""
        r = self.regions.get((addr & M64) >> 32)
        if r is None or (kind is not None and r.kind != kind) or addr & M32:
            raise Fault("%#x is not a pointer to a %s" % (addr, kind or "kernel object"), addr)
        return r.obj

    def read(self, addr, n):
        """``n`` bytes at ``addr`` (bpf_probe_read of a checked pointer)."""
        r, off = self.resolve(addr, n)
        return r.read(off, n)

    def write(self, addr, data):
        r, off = self.resolve(addr, len(data))
        r.write(off, data)

    def view(self, addr, n):
        """A memoryview of the n bytes at ``addr`` (writable when the region is)."""
        r, off = self.resolve(addr, n)
        return memoryview(r.buf)[off:off + n]

    def load(self, addr, n, signed=False):
        r, off = self.resolve(addr, n)
        try:
            return (r.lds if signed else r.ld)[n](off)[0]
        except ACCESS_ERRORS as e:
            raise Fault("load of %d bytes at %#x: %s" % (n, addr, e), addr) from None

    def store(self, addr, n, value):
        r, off = self.resolve(addr, n)
        try:
            r.st[n](off, value & ((1 << (8 * n)) - 1))
        except ACCESS_ERRORS as e:
            raise Fault("store of %d bytes at %#x: %s" % (n, addr, e), addr) from None
