"""The recorded results of real kernels (conformance/versions/*.json) stay usable without the kernels.

Each record names its kernel, has a known outcome for every test it ran, and every test that did not
pass carries the cause that tools/vm_conformance.py's rules give it (none is left unexplained), with
the kernel's answer as its observed value.
"""
import glob
import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECORDS = sorted(glob.glob(os.path.join(ROOT, "conformance", "versions", "*.json")))


def _tool():
    spec = importlib.util.spec_from_file_location("vm_conformance", os.path.join(ROOT, "tools", "vm_conformance.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_there_are_records_for_the_pinned_kernels():
    from bpfemu.host.vm.kernels import PINS
    assert {os.path.basename(p)[:-5] for p in RECORDS} == set(PINS)


@pytest.mark.parametrize("path", RECORDS, ids=[os.path.basename(p) for p in RECORDS])
def test_record_is_complete_and_every_failure_has_its_cause(path):
    tool = _tool()
    with open(path) as f:
        rec = json.load(f)
    version = os.path.basename(path)[:-5]
    assert rec["kernel"] == version and rec["release"].startswith(version + ".")
    outcomes = [t["outcome"] for t in rec["tests"].values()]
    assert set(outcomes) <= {"passed", "failed", "skipped", "error", "xfailed"}
    assert rec["counts"] == {o: outcomes.count(o) for o in set(outcomes)}
    causes = {}
    for nid, t in rec["tests"].items():
        assert nid.startswith("conformance/test_")
        if t["outcome"] in ("failed", "error"):
            assert t["observed"]
            want = tool.classify(version, nid)
            assert want is not None and t["cause"] == want, nid
            causes[t["cause"]] = causes.get(t["cause"], 0) + 1
        else:
            assert "cause" not in t
    assert rec["causes"] == causes
    assert set(rec["cause_notes"]) >= set(causes)


@pytest.mark.parametrize("path", RECORDS, ids=[os.path.basename(p) for p in RECORDS])
def test_the_emulator_profile_passed_its_suite(path):
    """Where the record has the emulator profile's run (vm_conformance --emulator), nothing failed in it."""
    with open(path) as f:
        rec = json.load(f)
    if "emulator_counts" not in rec:
        pytest.skip("no emulator run recorded")
    assert rec["emulator_counts"].get("failed", 0) + rec["emulator_counts"].get("error", 0) == 0, \
        rec.get("emulator_failures")


def test_kernel_versions_page_is_up_to_date():
    """docs/kernel-versions.md's generated parts (counts, profile facts) match the records and the profiles."""
    import subprocess
    import sys
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_kernel_versions.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
