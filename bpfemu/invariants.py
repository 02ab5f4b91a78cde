"""Invariants of the kernel model, checkable at any moment between syscalls.

``bpfemu.check_invariants(kernel)`` raises :class:`InvariantError` (an
AssertionError, so pytest shows it as a failed assertion) listing every rule
the model breaks; ``violations(kernel)`` returns the same list without raising.
Call it at the end of your own tests, or after every step of a fuzzer:

- ids: each id allocator holds ids in increasing order inside its range, each id
  maps to a live object of that kind whose ``id`` is that id, and no object
  appears twice;
- reference counts: every live object is held by someone, and each holder is
  real: an open file that still points at it and is open somewhere, a pin that
  still names it, or a live object (an outer map) that holds it;
- fd tables: only live tasks have open fds, every slot names an open file whose
  count is exactly the slots and memory mappings naming it, and a file's object is
  alive; no open file holds an object unless a live task's fd or a mapping names it
  (an orphaned file, e.g. an fd installed into a task that had exited);
- freed objects: no longer in any id allocator, fd table or pin, and holding
  nothing;
- maps: ``count() <= max_entries``, and whatever the map type checks of its own
  structures (``self_check``: a hash table's buckets, element index and LRU
  list agree); the memory accounting equals the sum of the live maps' charges
  and stays within the limit.
"""
from .inode import Inode
from .kernel import Kernel
from .objects import BUILT_IN, BpfObject, File


class InvariantError(AssertionError):
    def __init__(self, problems):
        self.problems = problems
        super().__init__("bpfemu invariants broken:\n  " + "\n  ".join(problems))


def check_invariants(kernel):
    """Raise InvariantError if the model is inconsistent; return None otherwise."""
    problems = violations(kernel)
    if problems:
        raise InvariantError(problems)


def violations(kernel):
    """Every broken invariant of ``kernel``, as human-readable strings (empty when all hold)."""
    with kernel.lock:
        out = []
        live = _check_idrs(kernel, out)
        files = _check_fd_tables(kernel, out)
        pinned = _check_pins(kernel, out)
        _check_holders(kernel, live, files, pinned, out)
        for obj in live:
            if obj.kind == "map":
                _check_map(obj, out)
        _check_memcg(kernel, live, out)
        return out


def _check_idrs(kernel, out):
    live = {}
    for kind, idr in kernel.idr.items():
        ids = list(idr.objs.keys())
        if ids != sorted(set(ids)):
            out.append("%s ids not unique and increasing: %r" % (kind, ids))
        for i, obj in idr.objs.items():
            if not idr.start <= i <= idr.end:
                out.append("%s id %d outside [%d, %d]" % (kind, i, idr.start, idr.end))
            if obj.id != i:
                out.append("%s id %d names an object whose id is %d" % (kind, i, obj.id))
            if getattr(obj, "kind", None) != kind:
                out.append("%s id %d names a %s" % (kind, i, getattr(obj, "kind", type(obj).__name__)))
            if obj.freed:
                out.append("%s id %d names a freed object" % (kind, i))
            if id(obj) in live:
                out.append("%r has two ids" % (obj,))
            live[id(obj)] = obj
    return list(live.values())


def _check_fd_tables(kernel, out):
    """File -> number of fd slots naming it over the live tasks."""
    slots = {}
    for t in kernel.tasks:
        if not t.alive:
            out.append("exited task %d still listed" % t.pid)
        for fd, slot in t.fdtable.items():
            f = slot[0]
            if not isinstance(fd, int) or fd < 0 or fd >= max(t.nofile, fd + 1) or fd >= 1 << 31:
                out.append("task %d has fd %r" % (t.pid, fd))
            if not isinstance(f, File):
                out.append("fd %d of task %d is not an open file: %r" % (fd, t.pid, f))
                continue
            slots[f] = slots.get(f, 0) + 1
    for f, n in slots.items():
        if f.count < n:
            out.append("%r is in %d fd slots but counted %d" % (f, n, f.count))
        elif f.count != n + f.mappings:
            out.append("%r counts %d holders but %d fd slots and %d mappings hold it" % (f, f.count, n, f.mappings))
        if f.kind in ("map", "prog", "link", "btf") and f.obj is None:
            out.append("%r is open in an fd table but lost its object" % (f,))
        elif f.obj is not None:
            if f.obj.freed:
                out.append("%r points at freed %r" % (f, f.obj))
            elif f.obj.holders.get(f) != 1:
                out.append("%r points at %r, which counts %r references from it"
                           % (f, f.obj, f.obj.holders.get(f)))
    return slots


def _check_pins(kernel, out):
    """Inode -> object for every pin reachable in the namespace."""
    pinned = {}
    try:
        pins = kernel.fs.pins()
    except Exception as e:  # a broken tree is itself a violation
        out.append("walking the bpffs pins failed: %r" % (e,))
        return pinned
    for path, node in pins:
        obj = node.obj
        if not isinstance(obj, BpfObject):
            continue
        pinned[node] = obj
        if obj.freed:
            out.append("pin %s names freed %r" % (path, obj))
        elif obj.holders.get(node) != 1:
            out.append("pin %s of %r counted %r times" % (path, obj, obj.holders.get(node)))
    for t in kernel.tasks:
        for f, _cloexec in t.fdtable.values():
            node = getattr(f, "inode", None)
            if node is not None and isinstance(getattr(node, "obj", None), BpfObject):
                pinned.setdefault(node, node.obj)  # pins on detached mounts kept by an open dir
    return pinned


def _check_holders(kernel, live, files, pinned, out):
    live_ids = {id(o) for o in live}
    for obj in live:
        if not obj.holders:
            out.append("%r is alive with no holder (it should have been freed)" % (obj,))
        for h, n in obj.holders.items():
            if n <= 0:
                out.append("%r counts %d references from %r" % (obj, n, h))
            if isinstance(h, File):
                if h.count <= 0:
                    out.append("%r is held by closed %r" % (obj, h))
                elif h.obj is not obj:
                    out.append("%r is held by %r, which points elsewhere" % (obj, h))
                elif h not in files and h.mappings == 0:
                    out.append("%r is held by orphaned %r: open, but in no live task's fd table and no mapping"
                               % (obj, h))
            elif isinstance(h, Kernel):
                out.append("%r still holds its creation reference" % (obj,))
            elif h is BUILT_IN:
                if obj is not kernel.btf_vmlinux:
                    out.append("%r is held as built in, which only the kernel's own BTF is" % (obj,))
            elif isinstance(h, BpfObject):
                if h.freed or id(h) not in live_ids:
                    out.append("%r is held by %r, which is not alive" % (obj, h))
                else:
                    held = sum(1 for o in h.all_held() if o is obj)
                    if held != n:
                        out.append("%r holds %r %d times but counts %d" % (h, obj, held, n))
            elif isinstance(h, Inode):  # a bpffs pin
                if h.obj is not obj:
                    out.append("%r is held by a pin that names %r" % (obj, h.obj))
                elif h not in pinned and h.sb in {n.sb for n in pinned}:
                    out.append("%r is held by an unlinked pin" % (obj,))
    # whatever a holder reaches must be alive and registered
    for f in files:
        if f.obj is not None and not f.obj.freed and id(f.obj) not in live_ids and f.obj.id:
            out.append("%r is reachable from an fd but not in its id allocator" % (f.obj,))
    for node, obj in pinned.items():
        if not obj.freed and id(obj) not in live_ids and obj.id:
            out.append("pinned %r is not in its id allocator" % (obj,))


def _check_map(m, out):
    try:
        n = m.count()
    except Exception as e:
        out.append("%r: count() raised %r" % (m, e))
        return
    if n > m.max_entries and not m.unbounded:
        out.append("%r holds %d elements, max_entries %d" % (m, n, m.max_entries))
    if n < 0:
        out.append("%r holds %d elements" % (m, n))
    out.extend(m.self_check())


def _check_memcg(kernel, live, out):
    out.extend(kernel.memcg.violations([o for o in live if o.kind == "map"]))
