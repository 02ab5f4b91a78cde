"""The pytest plugin, used the way a user uses it: from a throwaway project that only installs bpfemu.

A venv (with the system's site-packages, for pytest) gets bpfemu installed by pip from a copy of this
repository; its ``pytest11`` entry point is what loads the plugin. pytest then runs the project's tests
there, with the default backend and with ``--bpf-backend=both``.
"""
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import bpfemu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST_OK = bpfemu.host.available()[0]

USER_TESTS = '''
import errno

import pytest

import bpfemu
from bpfemu import Map


def test_kernel_and_sys(bpf_kernel, bpf_sys):
    assert isinstance(bpf_kernel, bpfemu.Kernel) and bpf_sys.kernel is bpf_kernel
    assert bpf_sys.uid == 0
    m = Map.create(bpf_sys, "hash", key="I", value="I", max_entries=2)
    m[1] = 2
    assert [s.id for s in bpf_kernel.objects("map")] == [m.id]


def test_fresh_kernel_per_test(bpf_kernel):
    assert bpf_kernel.objects() == []


@pytest.mark.bpf_unprivileged
def test_unprivileged_sys(bpf_sys):
    assert bpf_sys.uid == 1000 and not bpf_sys.caps


def test_each_backend(bpf_backend):
    assert bpf_backend.name in ("emu", "host")
    assert (bpf_backend.kernel is None) == (bpf_backend.name == "host")
    m = Map.create(bpf_backend.sys, "array", key="I", value="Q", max_entries=2)
    m[1] = 42
    m.pin(bpf_backend.bpffs + "/m")
    with Map.from_pin(bpf_backend.sys, bpf_backend.bpffs + "/m", key="I", value="Q") as again:
        assert again[1] == 42


@pytest.mark.bpf_unprivileged
def test_each_backend_unprivileged(bpf_backend):
    with pytest.raises(PermissionError):
        Map.create(bpf_backend.sys, "lru_hash", key="I", value="I", max_entries=2)
    root = bpf_backend.spawn()
    Map.create(root, "lru_hash", key="I", value="I", max_entries=2).close()
'''

FAILING_TEST = '''
from bpfemu import Map


def test_leaves_state_behind(bpf_sys):
    m = Map.create(bpf_sys, "hash", key="I", value="I", max_entries=4, name="leaky")
    m[7] = 1
    m.pin("/sys/fs/bpf/leaky")
    assert len(m) == 2, "deliberate failure"
'''

NO_HOST_CONFTEST = '''
import bpfemu.testing.backends

bpfemu.testing.backends._host_status = (False, "simulated: this machine cannot run bpf()")
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """(python of a venv with bpfemu installed by pip, a project dir with the user's tests)."""
    base = tmp_path_factory.mktemp("throwaway")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if os.path.exists(os.path.join(ROOT, name)):
            shutil.copy(os.path.join(ROOT, name), src / name)
    shutil.copytree(os.path.join(ROOT, "bpfemu"), src / "bpfemu", ignore=shutil.ignore_patterns("__pycache__"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, timeout=300)
    py = str(venv / "bin" / "python")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps",
                        "--disable-pip-version-check", str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    proj = base / "project"
    (proj / "nohost").mkdir(parents=True)
    (proj / "test_user.py").write_text(USER_TESTS)
    (proj / "failing").mkdir()
    (proj / "failing" / "test_failing.py").write_text(FAILING_TEST)
    (proj / "nohost" / "conftest.py").write_text(NO_HOST_CONFTEST)
    (proj / "nohost" / "test_nohost.py").write_text(textwrap.dedent('''
        def test_backend(bpf_backend):
            assert bpf_backend.sys is not None
    '''))
    return py, proj


def run(project, *args, env_extra=None):
    py, proj = project
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH", "BPFEMU_"))}
    env.update(env_extra or {})
    r = subprocess.run([py, "-m", "pytest", "-v", "-rs", "-p", "no:cacheprovider", *args], cwd=proj, env=env,
                       capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


def outcomes(out):
    return dict(re.findall(r"::(\S+) (PASSED|FAILED|SKIPPED|ERROR)", out))


def test_bpfemu_comes_from_the_venv(project):
    py, proj = project
    r = subprocess.run([py, "-c", "import bpfemu; print(bpfemu.__file__)"], cwd=proj, capture_output=True,
                       text=True, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert os.path.dirname(py).rsplit("/", 1)[0] in r.stdout, r.stdout + r.stderr


def test_default_backend_is_the_emulator_and_failures_show_the_kernel(project):
    rc, out = run(project, "--strict-markers", "test_user.py", "failing")
    assert rc == 1, out  # the one deliberate failure
    got = outcomes(out)
    assert got == {"test_kernel_and_sys": "PASSED", "test_fresh_kernel_per_test": "PASSED",
                   "test_unprivileged_sys": "PASSED", "test_each_backend[emu]": "PASSED",
                   "test_each_backend_unprivileged[emu]": "PASSED", "test_leaves_state_behind": "FAILED"}, out
    assert "bpfemu kernel state" in out and "deliberate failure" in out
    assert "hash  name leaky" in out and "pinned /sys/fs/bpf/leaky" in out and "elements 1" in out


def test_both_backends(project):
    args = ["--bpf-backend=both", "test_user.py"]
    if os.environ.get("BPFEMU_REQUIRE_HOST") == "1":
        args.insert(0, "--bpf-require-host")
    rc, out = run(project, *args)
    assert rc == 0, out
    got = outcomes(out)
    want_host = "PASSED" if HOST_OK else "SKIPPED"
    assert got["test_each_backend[emu]"] == got["test_each_backend_unprivileged[emu]"] == "PASSED", out
    assert got["test_each_backend[host]"] == got["test_each_backend_unprivileged[host]"] == want_host, out


def test_host_backend_is_skipped_with_the_reason_when_unusable(project):
    rc, out = run(project, "--bpf-backend=both", "nohost")
    assert rc == 0, out
    assert outcomes(out) == {"test_backend[emu]": "PASSED", "test_backend[host]": "SKIPPED"}, out
    assert "simulated: this machine cannot run bpf()" in out


def test_a_required_host_that_is_unusable_fails(project):
    for args, env in ((["--bpf-require-host"], None), ([], {"BPFEMU_REQUIRE_HOST": "1"})):
        rc, out = run(project, "--bpf-backend=both", *args, "nohost", env_extra=env)
        assert rc == 1, out
        assert outcomes(out) == {"test_backend[emu]": "PASSED", "test_backend[host]": "ERROR"}, out
        assert "simulated: this machine cannot run bpf()" in out


def test_the_ini_option_sets_the_default_backend(project):
    py, proj = project
    (proj / "ini").mkdir(exist_ok=True)
    (proj / "ini" / "pytest.ini").write_text("[pytest]\nbpf_backend = both\n")
    (proj / "ini" / "test_ini.py").write_text("def test_backend(bpf_backend):\n    assert bpf_backend.sys\n")
    rc, out = run(project, "-c", str(proj / "ini" / "pytest.ini"), str(proj / "ini"))
    assert rc == 0, out
    assert set(outcomes(out)) == {"test_backend[emu]", "test_backend[host]"}, out
