#!/usr/bin/env python3
"""Run the conformance suite's host side in a real kernel of another version, and record the results.

    python3 tools/vm_conformance.py 6.1            # writes conformance/versions/6.1.json
    python3 tools/vm_conformance.py 6.12 -- -x conformance/test_bpffs.py

The suite runs with BPFEMU_HOST_BACKEND=vm:VERSION (see conformance/conftest.py): every test
parametrized over the backends runs only on its host side (the emulator side is deselected:
it does not depend on the kernel version); tests that compare both backends themselves (the
differential fuzz, the state machines) run whole. Per test, the record keeps the outcome and,
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


class Record:
    """pytest plugin: deselect the emulator side (and HEAVY), keep each test's outcome and message."""

    def __init__(self, heavy=False):
        self.tests = {}
        self.heavy = heavy

    def pytest_collection_modifyitems(self, config, items):
        keep, drop = [], []
        for it in items:
            params = getattr(getattr(it, "callspec", None), "params", {})
            emu = "emu" in [v for v in params.values() if isinstance(v, str)]
            heavy = not self.heavy and os.path.basename(str(it.fspath)) in HEAVY
            (drop if emu or heavy else keep).append(it)
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
            entry = {"outcome": report.outcome if report.when == "call" else
                     ("error" if report.outcome == "failed" else report.outcome),
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


def main(argv):
    import argparse

    import pytest
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("version", help="kernel version of the VM (6.1, 6.12)")
    ap.add_argument("--out", default=None, help="result file (default: conformance/versions/VERSION.json)")
    ap.add_argument("--all", action="store_true", help="also run the randomized comparisons (%s)" % ", ".join(HEAVY))
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --); default: conformance/")
    args = ap.parse_args(argv)
    os.environ["BPFEMU_HOST_BACKEND"] = "vm:" + args.version
    os.environ["BPFEMU_REQUIRE_HOST"] = "1"
    from bpfemu.vm import backend, kernels
    ok, why = backend.status(args.version)
    if not ok:
        sys.stderr.write("vm_conformance: the %s VM cannot run: %s\n" % (args.version, why))
        return 2
    vm = backend.session_vm(args.version)
    rec = Record(heavy=args.all)
    t0 = time.monotonic()
    targets = args.pytest_args or [os.path.join(ROOT, "conformance")]
    code = pytest.main(["-q", "-vv", "-p", "no:cacheprovider", "--rootdir", ROOT] + targets, plugins=[rec])
    wall = time.monotonic() - t0
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
    out = args.out or os.path.join(ROOT, "conformance", "versions", args.version + ".json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1, sort_keys=False)
        f.write("\n")
    print("vm_conformance: %s (%s): %s in %.0f s -> %s" % (args.version, vm.release, result["counts"], wall, out))
    return 0 if code in (0, 1) else int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
