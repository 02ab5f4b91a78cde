"""``python -m bpfemu conform``: run the conformance suite and print command x backend results.

Each conformance test runs on the emulator and on the host kernel. While the
suite runs, every bpf() call is recorded against the test that made it, so the
table can say, per command, how many tests exercised it on each backend and
how they ended.
"""
import collections
import os
import sys

from . import uapi

BACKENDS = ("emu", "host")


def default_suite():
    here = os.path.dirname(os.path.abspath(__file__))
    for cand in (os.path.join(os.getcwd(), "conformance"), os.path.join(os.path.dirname(here), "conformance")):
        if os.path.isdir(cand):
            return cand
    return None


class Recorder:
    """A pytest plugin object: which commands each test called, and how each test ended."""

    def __init__(self):
        self.current = None
        self.cmds = collections.defaultdict(set)  # nodeid -> {cmd}
        self.outcome = {}  # nodeid -> passed/failed/skipped
        self.backend = {}

    def install(self):
        from . import host, kernel
        rec = self
        for cls in (kernel.Task, host.Host, host.HostTask):
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
            be = callspec.params.get("backend")
        self.backend[item.nodeid] = be if be in BACKENDS else "both"

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


def render(rec, out=sys.stdout):
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
    from .syscall import COMMANDS, _load_families
    _load_families()
    w = max(len(r[0]) for r in rows)
    out.write("%-*s  %-5s %-22s %-22s\n" % (w, "command", "impl", "emu", "host"))

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
        impl = "" if v is None or v not in uapi.CMD_NAMES else ("yes" if v in COMMANDS else "no")
        out.write("%-*s  %-5s %-22s %-22s\n" % (w, name, impl, cell(e), cell(h)))
    total = collections.Counter(rec.outcome.values())
    out.write("\nsummary: %d tests: %d passed, %d failed, %d skipped\n" % (
        sum(total.values()), total.get("passed", 0), total.get("failed", 0), total.get("skipped", 0)))


def main(argv):
    import argparse

    import pytest
    ap = argparse.ArgumentParser(prog="bpfemu conform", description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default=None, help="path of the conformance suite (default: ./conformance)")
    ap.add_argument("--require-host", action="store_true",
                    help="fail instead of skipping when the host kernel cannot be used")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)
    suite = args.suite or default_suite()
    if suite is None:
        sys.stderr.write("bpfemu conform: no conformance/ directory found; pass --suite\n")
        return 2
    if args.require_host:
        os.environ["BPFEMU_REQUIRE_HOST"] = "1"
    rec = Recorder()
    rec.install()
    code = pytest.main(["-q", "-p", "no:cacheprovider", suite] + args.pytest_args, plugins=[rec])
    render(rec)
    if code == 5:  # no tests ran: never green
        return 5
    return int(code)
