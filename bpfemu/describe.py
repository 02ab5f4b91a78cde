"""kernel.describe(): what an emulated kernel holds, in a bpftool-like text.

One block per live object (maps first, then programs, links and BTF), each
with its id, type, name, sizes, flags, element count and who holds it (fds
per task, bpffs pins, outer maps), then one line per task with its open fds.
Read only: describing never changes the kernel. Object attributes are read
defensively, so kinds added later show up with whatever they carry.
"""
from . import uapi
from .caps import cap_names

KIND_TITLES = (("map", "maps"), ("prog", "progs"), ("link", "links"), ("btf", "btf"))


def _get(obj, name, default=None):
    try:
        return getattr(obj, name, default)
    except Exception:  # a property that cannot answer for this object
        return default


def _name(obj):
    n = _get(obj, "name", b"")
    if isinstance(n, (bytes, bytearray)):
        n = bytes(n).split(b"\0", 1)[0].decode("latin-1")
    return str(n or "")


def _count(obj):
    fn = _get(obj, "count")
    if not callable(fn):
        return None
    try:
        return fn()
    except Exception:
        return None


def _map_block(obj):
    head = "%d: %s" % (obj.id, uapi.map_type_name(_get(obj, "map_type", 0)))
    if _name(obj):
        head += "  name %s" % _name(obj)
    head += "  flags 0x%x" % (_get(obj, "map_flags", 0) or 0)
    line = "key %dB  value %dB  max_entries %d" % (
        _get(obj, "key_size", 0), _get(obj, "value_size", 0), _get(obj, "max_entries", 0))
    n = _count(obj)
    if n is not None:
        line += "  elements %d" % n
    lines = [head, line]
    extra = []
    if _get(obj, "frozen"):
        extra.append("frozen")
    if _get(obj, "map_extra"):
        extra.append("map_extra 0x%x" % obj.map_extra)
    numa = _get(obj, "numa_node", -1)
    if numa is not None and numa >= 0:
        extra.append("numa_node %d" % numa)
    if extra:
        lines.append("  ".join(extra))
    return lines


def _generic_block(kind, obj):
    head = "%d: %s" % (obj.id, kind)
    t = _get(obj, "type_name")
    t = t() if callable(t) else t
    if t is None:
        for attr, names in (("prog_type", uapi.PROG_TYPE_NAMES), ("link_type", uapi.LINK_TYPE_NAMES)):
            v = _get(obj, attr)
            if isinstance(v, int):
                t = names.get(v, str(v)).split("_TYPE_", 1)[-1].lower()
    if t:
        head += "  %s" % t
    if _name(obj):
        head += "  name %s" % _name(obj)
    return [head]


def _holder_lines(state):
    holders = list(_get(state, "holders", []) or [])
    pins = [h[4:] for h in holders if h.startswith("pin ")]
    rest = [h for h in holders if not h.startswith("pin ")]
    lines = ["pinned %s" % p for p in pins]
    refcnt = _get(state, "refcnt", None)
    if refcnt is None:
        refcnt = _get(state.obj, "refcnt", None)
    held = "held by %s" % (", ".join(rest) if rest else "no fd")
    if refcnt is not None:
        held += "  (refcnt %d)" % refcnt
    lines.append(held)
    return lines


def _mode(f):
    m = _get(f, "mode", 0) or 0
    return ("r" if m & 1 else "") + ("w" if m & 2 else "") or "-"


def _task_line(task):
    out = "task %d uid %d %s" % (task.pid, task.uid, cap_names(_get(task, "caps", ()) or ()))
    fds = []
    for fd, slot in sorted(_get(task, "fdtable", {}).items()):
        f = slot[0]
        kind = _get(f, "kind", "?")
        if kind == "tty":
            continue
        obj = _get(f, "obj")
        what = kind
        if obj is not None and _get(obj, "id"):
            what = "%s %d" % (kind, obj.id)
            if _name(obj):
                what += " '%s'" % _name(obj)
        fds.append("fd %d -> %s (%s)" % (fd, what, _mode(f)))
    return out + (": " + ", ".join(fds) if fds else ": no bpf fds")


def describe(kernel):
    """The kernel's state as text (see the module docstring)."""
    with kernel.lock:
        states = kernel.objects()
        by_kind = {}
        for s in states:
            by_kind.setdefault(s.kind, []).append(s)
        tasks = list(kernel.tasks)
        out = ["bpfemu kernel: %d CPUs, kernel.unprivileged_bpf_disabled=%s, %d task%s, %s" % (
            kernel.ncpus, kernel.sysctl.get("kernel.unprivileged_bpf_disabled"), len(tasks),
            "" if len(tasks) == 1 else "s",
            ", ".join("%d %s" % (len(by_kind.get(k, ())), title) for k, title in KIND_TITLES))]
        for kind, title in KIND_TITLES:
            items = sorted(by_kind.pop(kind, []), key=lambda s: s.id)
            if not items:
                continue
            out.append("%s:" % title)
            for s in items:
                block = _map_block(s.obj) if kind == "map" else _generic_block(kind, s.obj)
                block += _holder_lines(s)
                out.append("  " + block[0])
                out.extend("        " + line for line in block[1:])
        for kind, items in sorted(by_kind.items()):  # kinds this module does not know yet
            out.append("%s:" % kind)
            for s in sorted(items, key=lambda s: s.id):
                out.extend("  " + line for line in _generic_block(kind, s.obj) + _holder_lines(s))
        if not states:
            out.append("no bpf objects alive")
        if tasks:
            out.append("tasks:")
            out.extend("  " + _task_line(t) for t in tasks)
        return "\n".join(out)


def summary(kernel):
    """One line: counts of objects and tasks (for reprs)."""
    return describe(kernel).split("\n", 1)[0]
