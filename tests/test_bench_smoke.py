"""The benchmark cannot rot: `python -m bench --smoke --json` runs in seconds and writes the table."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_smoke_json(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--reps", "2", "--json", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "emu/host" in r.stdout
    data = json.loads(out.read_text())
    assert data["smoke"] is True
    assert {"uname", "cpu", "date", "python"} <= set(data["machine"])
    names = [row["op"] for row in data["ops"]]
    for want in ("hash update (existing key)", "hash lookup", "hash delete", "array update", "array lookup",
                 "hash GET_NEXT_KEY walk (per step)", "percpu_hash lookup", "LOOKUP_BATCH", "UPDATE_BATCH (new keys)",
                 "DELETE_BATCH", "LOOKUP_AND_DELETE_BATCH", "MAP_CREATE+close (hash, 64 entries)", "OBJ_PIN (map)",
                 "OBJ_GET+close", "MAP_GET_NEXT_ID walk (per step)"):
        assert want in names
    for row in data["ops"]:
        assert set(row) >= {"op", "n", "unit", "host", "emu", "ratio"}
        if row["emu"] is None:  # only rows whose feature is missing in the emulator
            assert "not measured" in row.get("note", "")
            continue
        emu = row["emu"]
        assert emu["min"] <= emu["median"] <= emu["max"] and emu["min"] > 0
        assert len(emu["reps"]) == 2
        if data["host_available"] and row["host"] is not None:
            assert row["ratio"] == emu["median"] / row["host"]["median"]
    if os.environ.get("BPFEMU_REQUIRE_HOST"):
        assert data["host_available"], data["host_note"]
        assert all(row["host"] for row in data["ops"] if row["emu"]), "host column missing"
    scale = data["scale"]
    assert {row["map"] for row in scale["create"]} >= {"hash", "array"}
    assert scale["fill"]["emu_bytes_per_elem"] > 0
    assert len(scale["growth"]["emu"]["lookup"]) == len(scale["growth"]["points"])


def test_bench_without_host_leaves_host_columns_empty(tmp_path):
    out = tmp_path / "bench.json"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), BPFEMU_BENCH_NO_HOST="1")
    r = subprocess.run([sys.executable, "-m", "bench", "--smoke", "--reps", "1", "--no-scale", "--only", "hash",
                        "--json", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    data = json.loads(out.read_text())
    assert data["host_available"] is False and "BPFEMU_BENCH_NO_HOST" in data["host_note"]
    assert data["ops"] and all(row["host"] is None and row["ratio"] is None for row in data["ops"])
    assert all(row["emu"]["median"] > 0 for row in data["ops"])
