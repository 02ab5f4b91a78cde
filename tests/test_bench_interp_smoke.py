"""The interpreter benchmark cannot rot: `python -m bench.interp --smoke --json` runs in seconds."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_interp_smoke_json(tmp_path):
    out = tmp_path / "interp.json"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "bench.interp", "--smoke", "--reps", "1", "--json", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(out.read_text())
    rows = [row for row in data["rows"] if "insns_per_s" in row]
    programs = {row["program"] for row in rows}
    assert len(programs) == 3
    for program in programs:
        engines = {row["engine"]: row for row in rows if row["program"] == program}
        assert {"interp", "jit"} <= set(engines)
        assert engines["interp"]["insns_per_run"] == engines["jit"]["insns_per_run"] > 0
        assert all(row["insns_per_s"] > 0 for row in engines.values())
        if data["host_available"]:
            assert "host" in engines and engines["jit"]["emu_per_host"] > 0
