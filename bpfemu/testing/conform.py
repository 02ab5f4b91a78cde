"""``python -m bpfemu conform``: run the conformance suite and print command x backend results.

Each conformance test runs on the emulator and on the host kernel. While the
suite runs, every bpf() call is recorded against the test that made it, so the
table can say, per command, how many tests exercised it on each backend and
how they ended.

``--kernel VERSION`` (6.1, 6.12, 6.18) runs it on the emulator's profile of that
version (``Kernel(version=...)``) and on a real kernel of that version: the
host's when it is that version, else that kernel booted under QEMU
(``--bpf-backend=vm:VERSION``; docs/vm.md says how the kernels are fetched).

The suite ships inside the package as :mod:`bpfemu.testing.conformance` (in the
repository that is the top-level ``conformance/`` directory, linked into the
package), so ``bpfemu conform`` runs the same tests from any directory, after an
editable or a plain install.
"""
import collections
import os
import sys

from .. import uapi
from ..host.task import Host, HostTask
from ..kernel import Task
from ..syscall.sys_bpf import implemented

BACKENDS = ("emu", "host")


def _column(backend):
    """The table column of a backend parameter: 'emu', or 'host' for any real kernel (host, vm:VERSION)."""
    if backend == "emu":
        return "emu"
    if backend == "host" or (isinstance(backend, str) and backend.startswith("vm:")):
        return "host"
    return None


def default_suite():
    """The directory of the shipped conformance suite (its real path: the repository's in a checkout)."""
    try:
        from . import conformance
    except ImportError:
        return None
    return os.path.dirname(os.path.realpath(conformance.__file__))


class Recorder:
    """A pytest plugin object: which commands each test called, and how each test ended."""

    def __init__(self):
        self.current = None
        self.cmds = collections.defaultdict(set)  # nodeid -> {cmd}
        self.outcome = {}  # nodeid -> passed/failed/skipped
        self.backend = {}

    def install(self):
        rec = self
        from ..host.vm.machine import VMHost
        classes = [Task, Host, HostTask, VMHost]
        for cls in [c for c in classes if "bpf" in vars(c)]:
            orig = cls.bpf

            def wrapped(self_, cmd, attr, size=None, _orig=orig):
                if rec.current is not None:
                    rec.cmds[rec.current].add(cmd)
                return _orig(self_, cmd, attr, size)

            cls.bpf = wrapped

    # pytest hooks
    def pytest_runtest_setup(self, item):
        self.current = item.nodeid
        callspec = getattr(item, "callspec", None)
        be = None
        if callspec is not None:
            be = callspec.params.get("bpf_backend")
        self.backend[item.nodeid] = _column(be) or "both"

    def pytest_runtest_logreport(self, report):
        nid = report.nodeid
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcome[nid] = report.outcome
        elif report.when == "teardown" and report.outcome == "failed":
            self.outcome[nid] = "failed"

    def table(self):
        counts = collections.defaultdict(lambda: collections.Counter())
        for nid, outcome in self.outcome.items():
            be = self.backend.get(nid, "both")
            cmds = self.cmds.get(nid) or {None}
            for c in cmds:
                for b in (BACKENDS if be == "both" else (be,)):
                    counts[(c, b)][outcome] += 1
        return counts


def render(rec, out=sys.stdout, real="host"):
    counts = rec.table()
    names = [n for n, v in uapi.ENUMS["bpf_cmd"] if not n.startswith("__")]
    seen = set()
    rows = []
    for n in names:
        v = getattr(uapi, n)
        if v in seen:
            continue
        seen.add(v)
        rows.append((uapi.cmd_name(v), v))
    known = {v for _n, v in rows}
    for (c, _b) in counts:
        if c is not None and c not in known:
            known.add(c)
            rows.append(("(unknown cmd %d)" % c, c))
    rows.append(("(no bpf call)", None))
    done = implemented()
    w = max(len(r[0]) for r in rows)
    out.write("%-*s  %-5s %-22s %-22s\n" % (w, "command", "impl", "emu", real))

    def cell(c):
        if not c:
            return "-"
        parts = []
        for k in ("passed", "failed", "skipped"):
            if c.get(k):
                parts.append("%d %s" % (c[k], k))
        return ", ".join(parts)

    for name, v in rows:
        e, h = counts.get((v, "emu")), counts.get((v, "host"))
        if v is None and not e and not h:
            continue
        impl = "" if v is None or v not in uapi.CMD_NAMES else ("yes" if done.get(uapi.CMD_NAMES[v]) else "no")
        out.write("%-*s  %-5s %-22s %-22s\n" % (w, name, impl, cell(e), cell(h)))
    total = collections.Counter(rec.outcome.values())
    out.write("\nsummary: %d tests: %d passed, %d failed, %d skipped\n" % (
        sum(total.values()), total.get("passed", 0), total.get("failed", 0), total.get("skipped", 0)))


def _in_suite(arg, suite):
    """``arg`` (a pytest argument), or the path it names inside ``suite`` when it is a test path that does not
    exist from the current directory."""
    path, sep, rest = arg.partition("::")
    if arg.startswith("-") or os.path.exists(path):
        return arg
    for base in (os.path.dirname(suite), suite):
        cand = os.path.join(base, path)
        if os.path.exists(cand):
            return cand + sep + rest
    return arg


def main(argv):
    import argparse

    import pytest
    ap = argparse.ArgumentParser(prog="bpfemu conform", description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default=None,
                    help="path of the conformance suite (default: the one shipped in bpfemu.testing.conformance)")
    ap.add_argument("--require-host", action="store_true",
                    help="fail instead of skipping when the host kernel cannot be used")
    ap.add_argument("--kernel", default=None, metavar="VERSION",
                    help="the kernel version: the emulator's profile of it, and a real kernel of it (the host's "
                         "when it is that version, else one booted under QEMU); default: the host's")
    ap.add_argument("pytest_args", nargs="*",
                    help="extra pytest arguments (after --); test files among them run instead of the whole suite")
    args = ap.parse_args(argv)
    from .. import profiles
    backends, real = "both", "host"
    if args.kernel is not None:
        if args.kernel not in profiles.PROFILES:
            sys.stderr.write("bpfemu conform: no kernel profile %r (there are %s)\n"
                             % (args.kernel, ", ".join(profiles.VERSIONS)))
            return 2
        if args.kernel != profiles.host_version():
            real = "vm:" + args.kernel
            backends = "emu," + real
        backends += " --bpf-kernel=" + args.kernel
    suite = args.suite or default_suite()
    if suite is None:
        sys.stderr.write("bpfemu conform: the shipped conformance suite is missing; pass --suite\n")
        return 2
    if args.require_host:
        os.environ["BPFEMU_REQUIRE_HOST"] = "1"
    rec = Recorder()
    rec.install()
    # test files or directories among the pytest arguments run instead of the whole suite; a path that is not
    # there from here is looked up in the shipped suite (``conformance/test_x.py`` or ``test_x.py``)
    args.pytest_args = [_in_suite(a, suite) for a in args.pytest_args]
    targets = [] if any(os.path.exists(a.split("::")[0]) for a in args.pytest_args) else [suite]
    code = pytest.main(["-q", "-p", "no:cacheprovider"] + ("--bpf-backend=" + backends).split() + targets
                       + args.pytest_args, plugins=[rec])
    render(rec, real=real)
    if code == 5:  # no tests ran: never green
        return 5
    return int(code)
