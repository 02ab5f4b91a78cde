"""kernel.describe(): what an emulated kernel holds, in a bpftool-like text.

One block per live object (maps first, then programs, links and BTF), each
with its id, type, name, sizes, flags, element count and who holds it (fds
per task, bpffs pins, outer maps), then one line per task with its open fds.
Where the kernel's BTF is bpfemu's built-in one (off Linux), a line after
the first names the types and functions loads looked up there in vain.
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
    lines.extend(_btf_lines(obj))
    return lines


SHOWN_ELEMENTS = 4


def _type_label(btf, type_id):
    if not type_id:
        return "none"
    t = btf.type_by_id(type_id)
    if t is None:
        return "#%d" % type_id
    kind = {4: "struct ", 5: "union ", 6: "enum ", 19: "enum ", 15: "section "}.get(t.kind, "")
    return "%s%s" % (kind, btf.name(t) or "(anon)")


def _btf_lines(m):
    """A map with BTF: its BTF id and types, then its first elements shown by type."""
    b = _get(m, "btf")
    if b is None:
        return []
    kid, vid = _get(m, "btf_key_type_id", 0), _get(m, "btf_value_type_id", 0)
    try:
        btf = b.btf
        lines = ["btf_id %d  key %s  value %s" % (b.id, _type_label(btf, kid), _type_label(btf, vid))]
        if not vid:
            return lines
        from .btf.dump import compact
        key, shown = None, 0
        step = (m.value_size + 7) // 8 * 8
        while shown < SHOWN_ELEMENTS:
            try:
                key = m.get_next_key(key)
                value = m.lookup_sys(key, 0)
            except OSError:
                break
            k = compact(btf, kid, key) if kid else key.hex()
            if _get(m, "percpu"):
                v = "[" + ", ".join(compact(btf, vid, value[i:]) for i in range(0, len(value), step)) + "]"
            else:
                v = compact(btf, vid, value)
            lines.append("[%s] = %s" % (k, v))
            shown += 1
        n = _count(m)
        if n is not None and n > shown and shown == SHOWN_ELEMENTS:
            lines.append("... %d more" % (n - shown))
        return lines
    except Exception as e:  # describing never fails
        return ["btf: %r" % (e,)]


def _btf_block(obj):
    """bpftool btf show's line: id, name (vmlinux for the kernel's), size; the kernel's BTF is not read
    just to be described (its size shows once it has been loaded)."""
    head = "%d: btf" % obj.id
    if _name(obj):
        head += "  name %s" % _name(obj)
    if _get(obj, "kernel_btf"):
        head += "  kernel"
    if _get(obj, "loaded", True):
        size = _get(obj, "data_size")
        if size is not None:
            head += "  size %dB" % size
    return [head]


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
        missing = _get(_get(kernel, "btf_vmlinux"), "not_described")
        missing = missing() if callable(missing) else None
        if missing:
            out.append("kernel BTF: bpfemu's built-in one, which lacks what was looked up: %s" % ", ".join(missing))
        for kind, title in KIND_TITLES:
            items = sorted(by_kind.pop(kind, []), key=lambda s: s.id)
            if not items:
                continue
            out.append("%s:" % title)
            for s in items:
                block = (_map_block(s.obj) if kind == "map" else _btf_block(s.obj) if kind == "btf"
                         else _generic_block(kind, s.obj))
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
