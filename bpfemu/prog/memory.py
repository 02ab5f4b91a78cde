"""The memory a running program sees: regions mapped at page-aligned addresses, every access bounds-checked.

A BPF program only ever touches memory the verifier proved it may: its stack frames, its context, the packet,
map values, ringbuf records. The emulator models each of those as a :class:`Region` over a Python buffer (a
bytearray, or a memoryview into a map's own storage, read-only where the program may not write) and maps it
into the address space of one program invocation, a :class:`Memory`, at a page-aligned address of its own.

A pointer is a plain integer, as in the kernel, so pointer arithmetic is integer arithmetic and packet bounds
checks (``data + 14 > data_end``) compare exactly as on the host. Addresses stay below 2**32 so that a
context field that the kernel declares as ``__u32`` but fills with a pointer (``xdp_md.data``,
``__sk_buff.data_end``...) can hold the pointer itself: contexts are plain buffers too.

Finding the memory of an address is one lookup in a page table, ``pages[address >> 12]``, which holds for
each page of a region a view of the region from that page to its end: ``struct.unpack_from(pages[a >> 12],
a & 0xfff)`` reads any access inside the region (across pages too), and raises ``struct.error`` from C for
one that runs past its end, ``KeyError`` for an address where nothing is mapped, ``TypeError`` for a store
into a read-only region. The engines turn those into :class:`Fault`: an internal error (the verifier rejects
programs that could do that), never an access to Python memory outside the program's regions, never a crash.
Nothing is mapped below 64 KiB (NULL plus any 16-bit offset faults), and an unmapped guard page follows every
region.
"""
import struct

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = PAGE_SIZE - 1
FIRST_PAGE = 16                   # nothing below 64 KiB
LAST_PAGE = (1 << 32) >> PAGE_SHIFT  # addresses stay below 2**32
STACK_SIZE = 512                  # MAX_BPF_STACK: each call frame gets its own region of this size
MAX_CALL_FRAMES = 8               # kernel MAX_CALL_FRAMES
ZERO_STACK = bytes(STACK_SIZE)

M64 = (1 << 64) - 1
M32 = 0xffffffff

U = {1: struct.Struct("<B"), 2: struct.Struct("<H"), 4: struct.Struct("<I"), 8: struct.Struct("<Q")}
S = {1: struct.Struct("<b"), 2: struct.Struct("<h"), 4: struct.Struct("<i"), 8: struct.Struct("<q")}

# what a bad access raises in C before the engines turn it into a Fault
ACCESS_ERRORS = (KeyError, struct.error, TypeError, IndexError, ValueError)


class Fault(RuntimeError):
    """A program touched memory outside its regions (or wrote a read-only one), or ran something no loaded
    program can contain.

    An internal error: the verifier rejects every program that could do this, so it means an emulator bug or
    a program run without verification. ``addr`` is the address when known, ``pc`` the instruction.
    """

    def __init__(self, msg, addr=None, pc=None):
        super().__init__(msg)
        self.addr = addr
        self.pc = pc


class Region:
    """``size`` bytes a program may address, at ``base`` once mapped (by :meth:`Memory.add`).

    ``buf``: a bytearray or writable memoryview; ``readonly``: stores fault (the program's view is made
    read-only; the owner may still write ``buf``). ``kind`` names what it models ('stack', 'ctx', 'packet',
    'map_value', 'ringbuf', 'map', ...); ``obj`` is what a helper finds behind the address (the map of a map
    pointer, the skb of a context).
    """

    __slots__ = ("kind", "buf", "size", "obj", "name", "readonly", "base", "__weakref__")

    def __init__(self, kind, buf, obj=None, name="", readonly=False):
        if buf is None:
            buf = bytearray()
        if isinstance(buf, (bytes, memoryview)) and (isinstance(buf, bytes) or buf.readonly):
            readonly = True
        self.kind = kind
        self.buf = buf
        self.size = len(buf) if not isinstance(buf, memoryview) else buf.nbytes
        self.obj = obj
        self.name = name
        self.readonly = readonly
        self.base = None

    @property
    def end(self):
        return self.base + self.size

    def view(self):
        """The bytes as the program may access them (read-only when the region is)."""
        v = memoryview(self.buf).cast("B")
        return v.toreadonly() if self.readonly else v

    def __repr__(self):
        where = "%#x" % self.base if self.base is not None else "unmapped"
        return "<%s region%s, %d bytes at %s>" % (self.kind, " " + self.name if self.name else "", self.size, where)


class Memory:
    """The address space of one program invocation (and its bpf2bpf frames, tail calls, helpers).

    ``pages``: page number -> a view of the region mapped there, from that page to the region's end; what the
    engines index. Stack frames are regions of 512 bytes, one per call depth, zeroed when entered
    (:meth:`frame`).
    """

    __slots__ = ("pages", "regions", "_next", "_free", "_frames", "__weakref__")

    def __init__(self):
        self.pages = {}
        self.regions = {}  # first page -> Region
        self._next = FIRST_PAGE
        self._free = []    # first pages of freed one-page regions, for reuse
        self._frames = []

    def add(self, region):
        """Map ``region`` at a fresh page-aligned address (with an unmapped page after it); returns it."""
        if region.base is not None:
            raise ValueError("region already mapped")
        npages = max(1, (region.size + PAGE_MASK) >> PAGE_SHIFT)
        if npages == 1 and self._free:
            first = self._free.pop()
        else:
            first = self._next
            if first + npages + 1 > LAST_PAGE:
                raise Fault("address space exhausted (%d regions mapped)" % len(self.regions))
            self._next = first + npages + 1
        view = region.view()
        pages = self.pages
        for i in range(npages):
            pages[first + i] = view[i << PAGE_SHIFT:]
        region.base = first << PAGE_SHIFT
        self.regions[first] = region
        return region.base

    def remove(self, region):
        """Unmap ``region``: its addresses fault from now on."""
        if region.base is None:
            return
        first = region.base >> PAGE_SHIFT
        if self.regions.get(first) is not region:
            return
        npages = max(1, (region.size + PAGE_MASK) >> PAGE_SHIFT)
        for i in range(npages):
            self.pages.pop(first + i).release()
        del self.regions[first]
        if npages == 1:
            self._free.append(first)
        region.base = None

    def add_buffer(self, kind, buf, obj=None, name="", readonly=False):
        """Map a new region over ``buf``; returns (region, base address)."""
        r = Region(kind, buf, obj, name, readonly)
        return r, self.add(r)

    # -- stack frames ------------------------------------------------------------------------------------
    def frame(self, depth):
        """The stack of call depth ``depth`` (0 = the main program), zeroed; returns (bytearray, r10).

        r10 points one past the frame's last byte, as the kernel's frame pointer does.
        """
        frames = self._frames
        if depth >= len(frames):
            while len(frames) <= depth:
                r, _ = self.add_buffer("stack", bytearray(STACK_SIZE), name="frame%d" % len(frames))
                frames.append(r)
        r = frames[depth]
        buf = r.buf
        buf[:] = ZERO_STACK
        return buf, r.base + STACK_SIZE

    # -- lookups (slow paths: helpers, tests) -----------------------------------------------------------------
    def region_of(self, addr):
        """The region ``addr`` points into (or None)."""
        if not 0 <= addr < 1 << 32:
            return None
        page = addr >> PAGE_SHIFT
        if page not in self.pages:
            return None
        while page not in self.regions:
            page -= 1
        r = self.regions[page]
        return r if addr < r.end else None

    def resolve(self, addr, n=1):
        """(region, offset) of the n bytes at ``addr``; Fault unless they all lie inside one region."""
        r = self.region_of(addr)
        if r is None:
            raise Fault("access of %d bytes at %#x: nothing mapped there" % (n, addr), addr)
        off = addr - r.base
        if n < 0 or off + n > r.size:
            raise Fault("access of %d bytes at %#x runs past the %d-byte %s region" % (n, addr, r.size, r.kind),
                        addr)
        return r, off

    def object_at(self, addr, kind=None):
        """What a helper finds behind a pointer argument (the map of a map pointer); Fault if none."""
        r = self.regions.get(addr >> PAGE_SHIFT) if 0 <= addr < 1 << 32 else None
        if r is None or r.base != addr or (kind is not None and r.kind != kind):
            raise Fault("%#x is not a pointer to a %s" % (addr, kind or "kernel object"), addr)
        return r.obj

    def read(self, addr, n):
        """``n`` bytes at ``addr`` (what a helper reads through a checked pointer)."""
        r, off = self.resolve(addr, n)
        return bytes(memoryview(r.buf).cast("B")[off:off + n])

    def write(self, addr, data):
        n = len(data)
        r, off = self.resolve(addr, n)
        if r.readonly:
            raise Fault("write to the read-only %s region at %#x" % (r.kind, addr), addr)
        memoryview(r.buf).cast("B")[off:off + n] = data

    def view(self, addr, n, write=False):
        """A memoryview of the n bytes at ``addr`` (writable only when asked and the region allows)."""
        r, off = self.resolve(addr, n)
        if write and r.readonly:
            raise Fault("write to the read-only %s region at %#x" % (r.kind, addr), addr)
        v = memoryview(r.buf).cast("B")[off:off + n]
        return v if write else v.toreadonly()

    def load(self, addr, n, signed=False):
        r, off = self.resolve(addr, n)
        return (S if signed else U)[n].unpack_from(r.buf, off)[0]

    def store(self, addr, n, value):
        self.write(addr, (value & ((1 << (8 * n)) - 1)).to_bytes(n, "little"))
