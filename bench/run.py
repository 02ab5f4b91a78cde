"""python -m bench: the emulator against the host bpf(2) syscall, side by side in one run.

    python -m bench                    # the full table and the scale section (minutes)
    python -m bench --smoke            # tiny sizes, seconds (CI)
    python -m bench --json out.json    # also write every figure as JSON
    python -m bench --plot docs/perf-growth.png   # the growth plot (needs matplotlib)
    python -m bench --no-scale         # only the side-by-side table

Every figure is the median of several repetitions, with the spread (min and
max). The host columns need the real syscall (Linux, root or CAP_BPF); without
it they are left empty and the run goes on with the emulator alone.
"""
import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time

import bpfemu
from bpfemu import host as hostmod
from bpfemu.usermem import LocalMemory

from . import ops, scale


# what a figure measures: CPU time of this process (user + system, so the host's syscall time counts)
# by default, as these machines are shared and wall time mostly measures the neighbours
CLOCK = [time.process_time_ns]


def host_backend():
    """A bpfemu.Host with a private bpffs, or (None, reason)."""
    if os.environ.get("BPFEMU_BENCH_NO_HOST"):
        return None, "disabled by BPFEMU_BENCH_NO_HOST"
    ok, why = hostmod.available()
    if not ok:
        return None, why
    h = bpfemu.Host()
    try:
        h.mount_bpffs()
    except OSError as e:
        h.bpffs = None
        return h, "no private bpffs (%s): pin rows skipped" % e
    return h, ""


def measure(op, sys_, reps):
    """ns per operation for each repetition (prepare untimed, run timed)."""
    op.setup(sys_)
    out = []
    try:
        for _ in range(reps):
            op.prepare()
            gc.collect()
            gc.disable()
            try:
                t0 = CLOCK[0]()
                op.run()
                dt = CLOCK[0]() - t0
            finally:
                gc.enable()
            out.append(dt / op.count())
    finally:
        op.teardown()
    return out


def summary(samples):
    if not samples:
        return None
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "reps": [round(s, 1) for s in samples]}


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"uname": " ".join(os.uname()), "cpu": cpu, "ncpus": os.cpu_count(),
            "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}


def side_by_side(smoke, reps, hostb, log, unchecked=False):
    rows = []
    for cls, n_full, n_smoke in ops.OPS:
        n = n_smoke if smoke else n_full
        row = {"op": cls.name, "n": n, "unit": "ns/" + cls.unit, "host": None, "emu": None, "ratio": None}
        if not cls.available():
            row["note"] = ("not measured yet: bpfemu.Map (high-level API) missing" if issubclass(cls, ops._Api)
                           else "not measured: map type not in the emulator")
            rows.append(row)
            continue
        emu = bpfemu.Kernel().spawn()
        row["emu"] = summary(measure(cls(n), emu, reps))
        emu.exit()
        if unchecked:
            emu = bpfemu.Kernel().spawn()
            emu.mem = LocalMemory(checked=False)
            row["emu_unchecked"] = summary(measure(cls(n), emu, reps))
            emu.exit()
        if hostb is not None:
            if issubclass(cls, ops._Pin) and not hostb.bpffs:
                row["note"] = "host: no private bpffs"
            else:
                try:
                    row["host"] = summary(measure(cls(n), hostb, reps))
                except OSError as e:
                    row["note"] = "host failed: %s" % e
        if row["host"] and row["emu"]:
            row["ratio"] = row["emu"]["median"] / row["host"]["median"]
        rows.append(row)
        log(format_row(row))
    return rows


def _fig(s):
    if not s:
        return "-"
    return "%.0f [%.0f-%.0f]" % (s["median"], s["min"], s["max"])


HEADER = "%-38s %8s %22s %22s %7s" % ("operation", "n", "host ns/op [min-max]", "emu ns/op [min-max]",
                                       "emu/host")


def format_row(r):
    ratio = "%.2f" % r["ratio"] if r["ratio"] is not None else "-"
    line = "%-38s %8d %22s %22s %7s" % (r["op"] + ("" if r["unit"] == "ns/op" else " (per elem)"), r["n"],
                                        _fig(r["host"]), _fig(r["emu"]), ratio)
    if r.get("emu_unchecked"):
        line += "  (unchecked memory: %s)" % _fig(r["emu_unchecked"])
    if r.get("note"):
        line += "  # " + r["note"]
    return line


def markdown_table(rows):
    unchecked = any(r.get("emu_unchecked") for r in rows)
    out = ["| operation | n | host ns/op (median [min-max]) | emulator ns/op (median [min-max]) | emu/host |"
           + (" emu, unchecked memory | unchecked/host |" if unchecked else ""),
           "|---|---:|---:|---:|---:|" + ("---:|---:|" if unchecked else "")]
    for r in rows:
        ratio = "%.2f" % r["ratio"] if r["ratio"] is not None else (r.get("note") or "-")
        name = r["op"] + ("" if r["unit"] == "ns/op" else " (ns per element)")
        line = "| %s | %d | %s | %s | %s |" % (name, r["n"], _fig(r["host"]), _fig(r["emu"]), ratio)
        if unchecked:
            u, h = r.get("emu_unchecked"), r["host"]
            line += " %s | %s |" % (_fig(u), "%.2f" % (u["median"] / h["median"]) if u and h else "-")
        out.append(line)
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument("--smoke", action="store_true", help="tiny sizes: seconds, for CI")
    p.add_argument("--reps", type=int, default=None, help="repetitions per figure (default 5, smoke 3)")
    p.add_argument("--json", metavar="PATH", help="write the results as JSON")
    p.add_argument("--markdown", action="store_true", help="also print the table as markdown")
    p.add_argument("--no-scale", action="store_true", help="skip the scale section")
    p.add_argument("--plot", metavar="PNG", help="growth plot (needs matplotlib); default in a full run: none")
    p.add_argument("--unchecked", action="store_true",
                   help="also time the emulator with unchecked user memory (memmove, no EFAULT checks)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="cpu: process CPU time (default, robust on a busy machine); wall: perf_counter")
    p.add_argument("--only", metavar="SUBSTR[,SUBSTR...]",
                   help="only operations whose name contains one of the comma-separated SUBSTRs")
    args = p.parse_args(argv)
    reps = args.reps or (3 if args.smoke else 5)
    CLOCK[0] = time.process_time_ns if args.clock == "cpu" else time.perf_counter_ns
    scale.CLOCK = CLOCK
    if args.only:
        wanted = [w for w in args.only.split(",") if w]
        ops.OPS[:] = [o for o in ops.OPS if any(w in o[0].name for w in wanted)]

    def log(s):
        print(s, flush=True)

    hostb, why = host_backend()
    info = machine()
    log("bpfemu bench  %s  %s  (%s CPUs, Python %s)  clock: %s" % (
        info["date"], info["cpu"], info["ncpus"], info["python"], args.clock))
    log("host: %s" % ("real bpf(2) via ctypes" + (" (%s)" % why if why else "") if hostb else "unavailable (%s)" % why))
    log("")
    log(HEADER)
    result = {"machine": info, "smoke": args.smoke, "reps": reps, "clock": args.clock, "host_available": hostb is not None,
              "host_note": why, "command": "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])}
    try:
        result["ops"] = side_by_side(args.smoke, reps, hostb, log, args.unchecked)
        if args.markdown:
            log("")
            log(markdown_table(result["ops"]))
        if not args.no_scale:
            log("")
            result["scale"] = scale.run(args.smoke, hostb, log, plot_path=args.plot)
    finally:
        if hostb is not None:
            hostb.exit()
            hostb.unmount_bpffs()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        log("\nwrote %s" % args.json)
    return 0
