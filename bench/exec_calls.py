"""Per-call cost of ``bpfemu exec``: ``python -m bench.exec_calls [N]``.

Compiles bench/exec_programs/percall.c (gcc, libbpf-dev) and runs it on the host kernel (as
root) and under ``python3 -m bpfemu exec``, in the same run, and prints nanoseconds per call on
each and their ratio. Three kinds of calls: not intercepted at all (getpid), intercepted and
continued (fstat, openat: a round trip to the supervisor that lets the kernel run the call), and
answered by the emulator (bpf).

Wall-clock time per call depends on the scheduler as much as on the supervisor (each intercepted
call is two context switches; on a loaded machine they dominate), so the last column is steadier:
the supervisor's own CPU time per call (user + system), measured by running each kind of call
alone under ``bpfemu.exec.run`` in this process and subtracting a run that makes none of them.
"""
import os
import resource
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def measure(prefix, exe, n):
    out = subprocess.run(prefix + [exe, str(n)], stdout=subprocess.PIPE, check=True).stdout.decode()
    res = {}
    for line in out.splitlines():
        name, _, ns = line.rpartition(" ")
        res[name] = float(ns)
    return res


def _cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def supervisor_cpu(exe, n, section):
    """CPU seconds this process spends serving ``percall n section`` under bpfemu.exec.run."""
    import bpfemu.exec
    with open(os.devnull, "wb") as null:
        t0 = _cpu()
        status = bpfemu.exec.run([exe, str(n), section], stdout=null)
        t1 = _cpu()
    if status != 0:
        raise RuntimeError("percall %s exited with %d" % (section, status))
    return t1 - t0


def supervisor_ns(exe, n, names):
    """{call name: the supervisor's CPU ns per call}: each section's run minus a run of none, best of 3."""
    base = min(supervisor_cpu(exe, n, "none") for _ in range(3))
    out = {}
    for name in names:
        calls = n * 10 if name.startswith("getpid") else n // 10 if "CREATE" in name else n
        t = min(supervisor_cpu(exe, n, name) for _ in range(3))
        out[name] = max(t - base, 0) / calls * 1e9
    return out


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 2000
    d = tempfile.mkdtemp(prefix="bpfemu-bench-exec-")
    try:
        exe = os.path.join(d, "percall")
        subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(HERE, "exec_programs", "percall.c"), "-lbpf"], check=True)
        host = measure([], exe, n) if os.geteuid() == 0 else {}
        emu = measure([sys.executable, "-m", "bpfemu", "exec", "--"], exe, n)
        cpu = supervisor_ns(exe, n, list(emu))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("%-52s %10s %10s %7s %14s" % ("call", "host ns", "exec ns", "ratio", "supervisor ns"))
    for name, ns in emu.items():
        h = host.get(name)
        print("%-52s %10s %10.0f %7s %14.0f" % (name, "%.0f" % h if h else "-", ns, "%.0fx" % (ns / h) if h else "-",
                                               cpu[name]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
