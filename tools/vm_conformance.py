#!/usr/bin/env python3
"""Run the conformance suite's host side in a real kernel of another version, and record the results.

    python3 tools/vm_conformance.py 6.1            # writes conformance/versions/6.1.json
    python3 tools/vm_conformance.py 6.12 -- -x conformance/test_bpffs.py
    python3 tools/vm_conformance.py 6.1 --emulator # the emulator's 6.1 profile: its counts into 6.1.json

The suite runs with --bpf-backend=vm:VERSION --bpf-kernel=VERSION: every test parametrized over the
backends runs on the VM's kernel (an emulator side, e.g. the verifier corpus's, is deselected); tests
that compare both themselves (the BTF fuzz; with --all the differential fuzz and the state machines)
compare the VM with the emulator's profile of its version. Per test, the record keeps the outcome and,
where it did not pass, the message that says what the kernel answered (the assertion, or the
skip reason). Also recorded: the kernel package and release, the host's release, boot time,
wall time of the run and the guest's memory. These files let the emulator's version profiles
be checked against real kernels where a kernel package can no longer be fetched.
"""
import json
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


# Randomized emulator-vs-host comparisons: thousands of calls each (tens of minutes at a VM's
# per-call cost), and until the emulator has version profiles they compare 6.18 semantics with
# another kernel. Run them with --all.
HEAVY = ("test_map_state_machine.py", "test_differential_fuzz.py")


# Why a test fails on a kernel of another version: (cause, versions, what the kernel does, tests).
# Each rule names the tests (regular expressions on the node id) it explains on those versions. The
# differences the profiles model are not here: the tests read them from the profile and pass; these are
# the ones that remain (docs/kernel-versions.md, "Remaining differences", gives each one's reason).
CAUSES = [
    # (The instruction sets (cpu=v4, may_goto, load-acquire/store-release), BPF_ST into the context, 6.1's
    # test_run rules (LWT_SEG6LOCAL, XDP metadata, live frame room), 6.1's map_check_btf, PROG_LOAD's attach
    # types, prog_flags, trampolines and log lines, 6.1's LRU free target, the kernel struct offsets of xlated
    # programs, the tag's hash, the log's liveness marks and bpf_csum_diff's result were causes here once; they
    # are facts of the profiles now; CPUMAP's bound and the machine's memory come from the backend.)
]


def classify(version, nodeid):
    """The cause (a CAUSES name) that explains a test not passing on ``version``, or None."""
    import re
    key = nodeid + " " + version
    for name, versions, _what, patterns in CAUSES:
        if version in versions and any(re.search(p, key) for p in patterns):
            return name
    return None


class Record:
    """pytest plugin: deselect the emulator side (and HEAVY), keep each test's outcome and message."""

    keep_emu = False  # (True: the emulator's own run, --emulator)

    def __init__(self, heavy=False):
        self.tests = {}
        self.heavy = heavy

    def pytest_collection_modifyitems(self, config, items):
        keep, drop = [], []
        for it in items:
            params = getattr(getattr(it, "callspec", None), "params", {})
            emu = "emu" in [v for v in params.values() if isinstance(v, str)]
            heavy = not self.heavy and os.path.basename(str(it.fspath)) in HEAVY
            (drop if (emu and not self.keep_emu) or heavy else keep).append(it)
        items[:] = keep
        config.hook.pytest_deselected(items=drop)

    def pytest_runtest_logreport(self, report):
        nid = report.nodeid
        if report.when == "call" or report.outcome != "passed":
            if report.when == "teardown" and report.outcome == "passed":
                return
            prev = self.tests.get(nid)
            if prev is not None and prev["outcome"] == "failed":
                return  # keep the first failure (a teardown error after a failed call adds nothing)
            outcome = report.outcome if report.when == "call" else ("error" if report.outcome == "failed" else
                                                                     report.outcome)
            if outcome == "skipped" and hasattr(report, "wasxfail"):
                outcome = "xfailed"  # (the emulator side of the verifier corpus: known disagreements)
            entry = {"outcome": outcome,
                     "seconds": round(report.duration, 2)}
            msg = _message(report)
            if msg:
                entry["observed"] = msg
            self.tests[nid] = entry


def _message(report):
    if report.outcome == "passed":
        return None
    lr = report.longrepr
    if isinstance(lr, tuple) and len(lr) == 3:  # a skip: (file, line, reason)
        return str(lr[2])[:400]
    crash = getattr(lr, "reprcrash", None)
    msg = crash.message if crash is not None else str(lr)
    lines = [ln for ln in msg.splitlines() if ln.strip()]
    return "\n".join(lines[:16])[:1500]


def _annotate(result, version):
    """Give each failure its cause; put the counts by cause and the causes' notes before the tests."""
    causes = {}
    for nid, t in result["tests"].items():
        t.pop("cause", None)
        if t["outcome"] in ("failed", "error"):
            t["cause"] = classify(version, nid) or "unexplained"
            causes[t["cause"]] = causes.get(t["cause"], 0) + 1
    tests = result.pop("tests")
    result["causes"] = dict(sorted(causes.items(), key=lambda kv: (-kv[1], kv[0])))
    result["cause_notes"] = {name: what for name, versions, what, _p in CAUSES if name in causes}
    result["tests"] = tests


def _write(result, out):
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def _emulator(args, out):
    """The suite on ``Kernel(version=VERSION)``: counts and failing tests into the record ``out``."""
    import pytest
    rec = Record(heavy=True)
    rec.keep_emu = True
    targets = args.pytest_args or [os.path.join(ROOT, "conformance")]
    pytest.main(["-q", "-p", "no:cacheprovider", "--rootdir", ROOT, "--bpf-backend=emu",
                 "--bpf-kernel=" + args.version] + targets, plugins=[rec])
    counts = {}
    for t in rec.tests.values():
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    with open(out) as f:
        result = json.load(f)
    tests = result.pop("tests")
    result["emulator_counts"] = dict(sorted(counts.items()))
    result["emulator_failures"] = {nid: t.get("observed", "") for nid, t in sorted(rec.tests.items())
                                   if t["outcome"] in ("failed", "error")}
    result["tests"] = tests
    _write(result, out)
    print("vm_conformance: the emulator's %s profile: %s -> %s" % (args.version, result["emulator_counts"], out))
    return 0


def main(argv):
    import argparse

    import pytest
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("version", help="kernel version of the VM (6.1, 6.12)")
    ap.add_argument("--out", default=None, help="result file (default: conformance/versions/VERSION.json)")
    ap.add_argument("--reclassify", action="store_true",
                    help="only recompute the causes in the existing result file (no VM needed)")
    ap.add_argument("--all", action="store_true", help="also run the randomized comparisons (%s)" % ", ".join(HEAVY))
    ap.add_argument("--merge", action="store_true",
                    help="update only the tests this run ran in the existing result file (a rerun of some files)")
    ap.add_argument("--emulator", action="store_true",
                    help="run the suite on the emulator's profile of VERSION instead (no VM), and store its counts "
                         "and failures in the result file as emulator_counts, emulator_failures")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --); default: conformance/")
    args = ap.parse_intermixed_args(argv)
    out = args.out or os.path.join(ROOT, "conformance", "versions", args.version + ".json")
    if args.emulator:
        return _emulator(args, out)
    if args.reclassify:
        with open(out) as f:
            result = json.load(f)
        _annotate(result, args.version)
        _write(result, out)
        print("vm_conformance: %s: failures by cause: %s" % (args.version, result["causes"]))
        return 0
    os.environ["BPFEMU_REQUIRE_HOST"] = "1"
    from bpfemu.host.vm import kernels
    from bpfemu.testing import backends
    ok, why = backends.vm_status(args.version)
    if not ok:
        sys.stderr.write("vm_conformance: the %s VM cannot run: %s\n" % (args.version, why))
        return 2
    vm = backends.session_vm(args.version)
    rec = Record(heavy=args.all)
    t0 = time.monotonic()
    targets = args.pytest_args or [os.path.join(ROOT, "conformance")]
    code = pytest.main(["-vv", "-p", "no:cacheprovider", "--rootdir", ROOT, "--bpf-backend=vm:" + args.version,
                        "--bpf-kernel=" + args.version] + targets, plugins=[rec])
    wall = time.monotonic() - t0
    if args.merge:
        with open(out) as f:
            old = json.load(f)
        ran = {nid.split("::")[0] for nid in rec.tests}  # the files this run ran, whole: their old entries go
        rec.tests = dict({nid: t for nid, t in old["tests"].items() if nid.split("::")[0] not in ran}, **rec.tests)
        wall = old.get("suite_seconds", 0)  # the whole run's
    counts = {}
    for t in rec.tests.values():
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    cached = kernels.cached(args.version)
    result = {
        "kernel": args.version,
        "release": vm.release,
        "package": "%s=%s" % (cached.manifest["package"], cached.manifest["version"]),
        "host_release": platform.release(),
        "boot_seconds": round(vm.boot_seconds, 2),
        "suite_seconds": round(wall, 1),
        "guest_rss_mib": round((vm.rss_kib() or 0) / 1024),
        "counts": dict(sorted(counts.items())),
        "not_run": [] if args.all else list(HEAVY),
        "tests": dict(sorted(rec.tests.items())),
    }
    if os.path.exists(out):  # the emulator profile's run (--emulator) stays
        with open(out) as f:
            old = json.load(f)
        for key in ("emulator_counts", "emulator_failures"):
            if key in old:
                result[key] = old[key]
    _annotate(result, args.version)
    _write(result, out)
    print("vm_conformance: %s (%s): %s in %.0f s -> %s" % (args.version, vm.release, result["counts"], wall, out))
    print("vm_conformance: failures by cause: %s" % result["causes"])
    return 0 if code in (0, 1) else int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
