"""Per-call cost of ``bpfemu exec``: ``python -m bench.exec_calls [N]``.

Compiles bench/exec_programs/percall.c (gcc, libbpf-dev) and runs it on the host kernel (as
root) and under ``python3 -m bpfemu exec``, in the same run, and prints nanoseconds per call on
each and their ratio. Three kinds of calls: not intercepted at all (getpid), intercepted and
continued (fstat, openat: a round trip to the supervisor that lets the kernel run the call), and
answered by the emulator (bpf).
"""
import os
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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    n = int(argv[0]) if argv else 2000
    d = tempfile.mkdtemp(prefix="bpfemu-bench-exec-")
    try:
        exe = os.path.join(d, "percall")
        subprocess.run(["gcc", "-O2", "-o", exe, os.path.join(HERE, "exec_programs", "percall.c"), "-lbpf"], check=True)
        host = measure([], exe, n) if os.geteuid() == 0 else {}
        emu = measure([sys.executable, "-m", "bpfemu", "exec", "--"], exe, n)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("%-52s %12s %12s %8s" % ("call", "host ns", "exec ns", "ratio"))
    for name, ns in emu.items():
        h = host.get(name)
        print("%-52s %12s %12.0f %8s" % (name, "%.0f" % h if h else "-", ns, "%.0fx" % (ns / h) if h else "-"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
