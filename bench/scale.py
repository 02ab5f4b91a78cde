"""Scale: big max_entries, a million elements, and how time per op grows with the element count.

Memory on the emulator is what tracemalloc sees Python allocate; on the host
it is the ``memlock`` line of the map's fdinfo (the kernel's own accounting of
the map's memory).
"""
import ctypes
import gc
import random
import statistics
import time
import tracemalloc

import bpfemu
from bpfemu import uapi as U
from bpfemu.maps.bpf_types import MAP_TYPES

from .ops import addr, create_map, fill

CLOCK = [time.process_time_ns]  # set by run.py (--clock)

MAP_SPECS = {  # name -> (type, key_size, value_size, flags)
    "hash": (U.BPF_MAP_TYPE_HASH, 4, 8, 0),
    "array": (U.BPF_MAP_TYPE_ARRAY, 4, 8, 0),
    "lpm_trie": (U.BPF_MAP_TYPE_LPM_TRIE, 8, 8, U.BPF_F_NO_PREALLOC),
}


def memlock(sys_, fd):
    for line in sys_.fdinfo(fd).splitlines():
        if line.startswith("memlock:"):
            return int(line.split()[1])
    return None


def _emu():
    """A fresh emulated task; its memory cgroup unlimited when the model has one (the host's root
    cgroup has no limit either, and the point here is the emulator's own memory)."""
    try:
        return bpfemu.Kernel(memory_limit=None).spawn()
    except TypeError:
        return bpfemu.Kernel().spawn()


def _traced(fn):
    """(result, bytes still allocated after fn, peak bytes during fn) under tracemalloc."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        r = fn()
        cur, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return r, cur - before, peak - before


def _timed(fn):
    gc.collect()
    t0 = CLOCK[0]()
    r = fn()
    return r, CLOCK[0]() - t0


def create_section(sizes, hostb, log):
    out = []
    log("MAP_CREATE with big max_entries (emu memory: tracemalloc; host: fdinfo memlock)")
    log("%-9s %10s %12s %12s %14s %14s" % ("map", "max_entries", "host ms", "emu ms", "host memlock", "emu bytes"))
    for name, (t, ks, vs, flags) in MAP_SPECS.items():
        if t not in MAP_TYPES:
            continue
        for n in sizes:
            row = {"map": name, "max_entries": n, "emu_ns": None, "emu_bytes": None, "emu_peak_bytes": None}
            task = _emu()
            try:
                fd, row["emu_ns"] = _timed(lambda: create_map(task, t, ks, vs, n, flags))
                task.close(fd)
                fd, row["emu_bytes"], row["emu_peak_bytes"] = _traced(
                    lambda: create_map(task, t, ks, vs, n, flags))
            except OSError as e:
                row["emu_note"] = str(e)
            task.exit()
            row["host_ns"] = row["host_memlock"] = None
            if hostb is not None:
                try:
                    fd, row["host_ns"] = _timed(lambda: create_map(hostb, t, ks, vs, n, flags))
                    row["host_memlock"] = memlock(hostb, fd)
                    hostb.close(fd)
                except OSError as e:
                    row["host_note"] = str(e)
            out.append(row)
            log("%-9s %10d %12s %12s %14s %14s%s" % (
                name, n, "%.2f" % (row["host_ns"] / 1e6) if row["host_ns"] is not None else "-",
                "%.2f" % (row["emu_ns"] / 1e6) if row["emu_ns"] is not None else "-",
                row["host_memlock"] if row["host_memlock"] is not None else "-",
                row["emu_bytes"] if row["emu_bytes"] is not None else "-",
                "".join("  # %s: %s" % (k, row[k]) for k in ("emu_note", "host_note") if k in row)))
    return out


def _hash_fill(sys_, n):
    keys = (ctypes.c_uint32 * n)(*range(n))
    values = (ctypes.c_uint64 * n)(*range(n))
    fd = create_map(sys_, U.BPF_MAP_TYPE_HASH, 4, 8, n)
    return fd, keys, values


def fill_section(n, hostb, log):
    """Fill a hash map of max_entries n with n elements by UPDATE_BATCH."""
    row = {"n": n}
    task = _emu()
    fd, keys, values = _hash_fill(task, n)
    _, row["emu_ns"] = _timed(lambda: fill(task, fd, keys, values, n, 4, 8))
    task.close(fd)
    fd = create_map(task, U.BPF_MAP_TYPE_HASH, 4, 8, n)
    _, row["emu_bytes"], _ = _traced(lambda: fill(task, fd, keys, values, n, 4, 8))
    row["emu_bytes_per_elem"] = row["emu_bytes"] / n
    row["emu_memlock"] = memlock(task, fd)
    task.exit()
    row["host_ns"] = row["host_memlock"] = row["host_bytes_per_elem"] = None
    if hostb is not None:
        fd, keys, values = _hash_fill(hostb, n)
        _, row["host_ns"] = _timed(lambda: fill(hostb, fd, keys, values, n, 4, 8))
        row["host_memlock"] = memlock(hostb, fd)
        row["host_bytes_per_elem"] = row["host_memlock"] / n
        hostb.close(fd)
    if row["host_bytes_per_elem"]:
        row["mem_ratio"] = row["emu_bytes_per_elem"] / row["host_bytes_per_elem"]
    log("\nfill a hash map (u32 key, u64 value, max_entries %d) with %d elements by UPDATE_BATCH" % (n, n))
    log("  time: host %s ms, emu %.1f ms" % ("%.1f" % (row["host_ns"] / 1e6) if row["host_ns"] else "-",
                                            row["emu_ns"] / 1e6))
    log("  memory per element: host memlock %s B, emu tracemalloc %.1f B (emu's own memlock model %s B)" % (
        "%.1f" % row["host_bytes_per_elem"] if row["host_bytes_per_elem"] else "-", row["emu_bytes_per_elem"],
        "%.1f" % (row["emu_memlock"] / n) if row["emu_memlock"] else "-"))
    return row


def growth_section(points, probes, reps, hostb, log):
    """ns/op of hash lookup and update (existing keys, random order) as the map grows to points[-1]."""
    top = points[-1]
    rng = random.Random(1)
    order = list(range(top))
    rng.shuffle(order)  # elements are added in this order
    backends = [("emu", _emu())] + ([("host", hostb)] if hostb is not None else [])
    out = {"points": points, "probes": probes}
    for bname, sys_ in backends:
        keys = (ctypes.c_uint32 * top)(*order)
        values = (ctypes.c_uint64 * top)()
        fd = create_map(sys_, U.BPF_MAP_TYPE_HASH, 4, 8, top)
        have = 0
        res = {"lookup": [], "update": []}
        v = ctypes.c_uint64()
        a = U.make_attr(map_fd=fd, value=addr(v))
        base = addr(keys)
        bpf = sys_.bpf
        for n in points:
            fill_keys = (ctypes.c_uint32 * (n - have)).from_address(base + 4 * have)
            fill(sys_, fd, fill_keys, values, n - have, 4, 8)
            have = n
            k = min(probes, n)
            idx = [base + 4 * rng.randrange(n) for _ in range(k)]
            for opname, cmd in (("lookup", U.BPF_MAP_LOOKUP_ELEM), ("update", U.BPF_MAP_UPDATE_ELEM)):
                samples = []
                for _ in range(reps):
                    gc.collect()
                    gc.disable()
                    t0 = CLOCK[0]()
                    for p in idx:
                        a.key = p
                        bpf(cmd, a)
                    samples.append((CLOCK[0]() - t0) / k)
                    gc.enable()
                res[opname].append(statistics.median(samples))
        sys_.close(fd)
        out[bname] = res
    log("\nhash lookup/update ns/op as the map grows (median of %d x %d random existing keys)" % (reps, probes))
    log("%10s %12s %12s %12s %12s" % ("elements", "host lookup", "emu lookup", "host update", "emu update"))
    for i, n in enumerate(points):
        h = out.get("host")
        log("%10d %12s %12.0f %12s %12.0f" % (n, "%.0f" % h["lookup"][i] if h else "-", out["emu"]["lookup"][i],
                                             "%.0f" % h["update"][i] if h else "-", out["emu"]["update"][i]))
    return out


def plot(growth, path, log):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed: no plot (pip install matplotlib)")
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    pts = growth["points"]
    for bname, style in (("host", "-"), ("emu", "--")):
        if bname not in growth:
            continue
        for opname, marker in (("lookup", "o"), ("update", "s")):
            ax.plot(pts, growth[bname][opname], style, marker=marker,
                    label="%s %s" % ("host syscall" if bname == "host" else "emulator", opname))
    ax.set_xscale("log")
    ax.set_xlabel("elements in the hash map")
    ax.set_ylabel("ns per operation (raw bpf() entry)")
    ax.set_ylim(bottom=0)
    ax.set_title("bpfemu vs host bpf(2): hash lookup/update cost vs size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    log("wrote %s" % path)
    return path


def run(smoke, hostb, log, plot_path=None):
    if smoke:
        sizes, nfill, points, probes, reps = [1 << 10, 1 << 12], 2000, [100, 1000], 200, 2
    else:
        sizes, nfill, points, probes, reps = [1 << 20, 1 << 24], 1 << 20, [1000, 4000, 16000, 64000, 256000,
                                                                            1 << 20], 20000, 3
    out = {"create": create_section(sizes, hostb, log), "fill": fill_section(nfill, hostb, log),
           "growth": growth_section(points, probes, reps, hostb, log)}
    if plot_path:
        out["plot"] = plot(out["growth"], plot_path, log)
    return out
