"""The verifier benchmark cannot rot: `python -m bench.verifier --smoke --json` runs in seconds."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_verifier_smoke_json(tmp_path):
    try:
        from conformance.corpus.verifier import load_corpus
        load_corpus()
    except (OSError, ValueError) as e:
        pytest.skip("no kernel tree with the verifier selftests: %s" % e)
    out = tmp_path / "verifier.json"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "bench.verifier", "--smoke", "--json", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(out.read_text())
    assert data["programs"] > 100 and data["emu_s"] > 0
    if "host_s" in data:
        assert data["same_verdict"] == data["programs"]
