"""The pytest plugin, used the way a user uses it: from a throwaway project that only installs bpfemu.

A venv (seeing the site-packages of the environment running these tests, for pytest) gets bpfemu installed by
pip from a copy of this repository; its ``pytest11`` entry point is what loads the plugin. pytest then runs the project's tests
there, with the default backend and with ``--bpf-backend=both``.
"""
import os
import re
import shutil
import subprocess
import sys
import sysconfig
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

KERNEL_ARGS_TESTS = '''
import os

import pytest

from bpfemu import Map


def test_options_set_every_emulated_kernel(bpf_kernel, bpf_backend):
    want = (int(os.environ["WANT_NCPUS"]), int(os.environ["WANT_UNPRIV"]))
    assert (bpf_kernel.ncpus, bpf_kernel.sysctl["kernel.unprivileged_bpf_disabled"]) == want
    if bpf_backend.kernel is not None:
        k = bpf_backend.kernel
        assert (k.ncpus, k.sysctl["kernel.unprivileged_bpf_disabled"]) == want
        m = Map.create(bpf_backend.sys, "percpu_array", key="I", value="Q", max_entries=1)
        assert m[0] == [0] * want[0]


@pytest.mark.bpf_kernel(ncpus=3, unprivileged_bpf_disabled=0)
def test_the_marker_wins(bpf_kernel, bpf_sys):
    assert bpf_kernel.ncpus == 3 and bpf_kernel.sysctl["kernel.unprivileged_bpf_disabled"] == 0
    m = Map.create(bpf_sys, "percpu_hash", key="I", value="I", max_entries=1)
    m[1] = [1, 2, 3]
    assert m.sum(1) == 6


def test_bpf_sys_is_always_emulated(bpf_sys):
    import bpfemu
    assert isinstance(bpf_sys, bpfemu.Task)
'''

LEAK_TESTS = '''
import pytest

from bpfemu import Map

pytestmark = pytest.mark.bpf_leak_check


def test_clean(bpf_backend):
    with Map.create(bpf_backend.sys, "hash", key="I", value="I", max_entries=2) as m:
        m.pin(bpf_backend.bpffs + "/tmp")
        m.unpin()


def test_leaves_an_fd(bpf_backend):
    m = Map.create(bpf_backend.sys, "hash", key="I", value="I", max_entries=2, name="fdleak")
    bpf_backend.sys.dup(m.fd)
    m.close()


def test_leaves_a_pin(bpf_backend):
    with Map.create(bpf_backend.sys, "array", key="I", value="I", max_entries=1, name="pinleak") as m:
        m.pin(bpf_backend.bpffs + "/left")


def test_drops_a_map_unclosed(bpf_backend):
    Map.create(bpf_backend.sys, "hash", key="I", value="I", max_entries=2, name="dropped")


def test_kernel_fixture_too(bpf_sys):
    Map.create(bpf_sys, "hash", key="I", value="I", max_entries=2, name="kept").pin("/sys/fs/bpf/kept")
'''

PLATFORM_TESTS = '''
import pytest

import bpfemu


def test_proc_and_sys_are_hidden():
    for path in ("/proc/self/status", "/sys/devices/system/cpu/possible"):
        with pytest.raises(FileNotFoundError):
            open(path).close()


def test_defaults_of_a_machine_that_is_not_linux(bpf_kernel):
    assert bpf_kernel.ncpus == 2 and not bpf_kernel.checked_user_memory
    assert bpfemu.host.available() == (False, "not Linux (simulated: BPFEMU_PLATFORM=nonlinux)")


@pytest.mark.bpf_bad_pointers
def test_passes_a_bad_pointer(bpf_sys):
    raise AssertionError("never runs where bad pointers cannot be detected")


def test_backend(bpf_backend):
    assert bpf_backend.sys is not None
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
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    py = str(venv / "bin" / "python")
    # pytest and bpfemu's other dependencies come from the environment running this test (which may itself be
    # a clean venv, as in CI): its site directories go after the new venv's own, like --system-site-packages
    site = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True,
                          capture_output=True, text=True).stdout.strip()
    here = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    with open(os.path.join(site, "_running_environment.pth"), "w") as f:
        f.write("".join(d + "\n" for d in here))
    r = subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps",
                        "--disable-pip-version-check", str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    proj = base / "project"
    (proj / "nohost").mkdir(parents=True)
    (proj / "test_user.py").write_text(USER_TESTS)
    (proj / "failing").mkdir()
    (proj / "failing" / "test_failing.py").write_text(FAILING_TEST)
    (proj / "nohost" / "conftest.py").write_text(NO_HOST_CONFTEST)
    for d, text in (("kargs", KERNEL_ARGS_TESTS), ("leaks", LEAK_TESTS), ("platform", PLATFORM_TESTS)):
        (proj / d).mkdir()
        (proj / d / ("test_%s.py" % d)).write_text(text)
    (proj / "nohost" / "test_nohost.py").write_text(textwrap.dedent('''
        def test_backend(bpf_backend):
            assert bpf_backend.sys is not None
    '''))
    return py, proj


def run(project, *args, env_extra=None):
    py, proj = project
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "PYTHONPATH", "BPFEMU_"))
           or k == "BPFEMU_PLATFORM"}  # the platform stays what this run simulates
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


def _require_host_args():
    return ["--bpf-require-host"] if os.environ.get("BPFEMU_REQUIRE_HOST") == "1" else []


def test_options_and_the_marker_set_the_emulated_kernel(project):
    rc, out = run(project, "--bpf-backend=both", "--bpf-ncpus=5", "--bpf-unprivileged-bpf-disabled=1", "kargs",
                  env_extra={"WANT_NCPUS": "5", "WANT_UNPRIV": "1"})
    assert rc == 0, out
    got = outcomes(out)
    assert got["test_the_marker_wins"] == got["test_bpf_sys_is_always_emulated"] == "PASSED", out
    assert got["test_options_set_every_emulated_kernel[emu]"] == "PASSED", out
    # bpf_sys does not follow --bpf-backend: it ran once, on the emulator
    assert "test_bpf_sys_is_always_emulated[host]" not in got, out
    py, proj = project
    (proj / "kargs" / "pytest.ini").write_text("[pytest]\nbpf_ncpus = 7\nbpf_unprivileged_bpf_disabled = 0\n")
    try:
        rc, out = run(project, "-c", str(proj / "kargs" / "pytest.ini"), "kargs",
                      env_extra={"WANT_NCPUS": "7", "WANT_UNPRIV": "0"})
    finally:
        (proj / "kargs" / "pytest.ini").unlink()
    assert rc == 0 and outcomes(out)["test_options_set_every_emulated_kernel[emu]"] == "PASSED", out


def test_the_leak_check_on_both_backends(project):
    rc, out = run(project, "--bpf-backend=both", *_require_host_args(), "leaks")
    assert rc == 1, out
    got = outcomes(out)
    backends_ = ["emu", "host"] if HOST_OK else ["emu"]
    for b in backends_:
        assert got["test_clean[%s]" % b] == "PASSED", out
        for leaky in ("test_leaves_an_fd", "test_leaves_a_pin", "test_drops_a_map_unclosed"):
            assert got["%s[%s]" % (leaky, b)] == "FAILED", (leaky, b, out)
    assert got["test_kernel_fixture_too"] == "FAILED", out
    assert "bpfemu leak check: the test left 1 bpf object(s) behind" in out
    assert re.search(r"map \d+ held by fd 4 of task \d+", out), out
    assert re.search(r"map \d+ held by pin /sys/fs/bpf/left", out), out
    assert "hash map 'dropped'" in out and "closed by the garbage collector" in out


def test_the_simulated_non_linux_platform(project):
    for args, env in ((["--bpf-platform=nonlinux"], None), ([], {"BPFEMU_PLATFORM": "nonlinux"})):
        rc, out = run(project, "--bpf-backend=both", *args, "platform", env_extra=env)
        assert rc == 0, out
        assert outcomes(out) == {"test_proc_and_sys_are_hidden": "PASSED",
                                 "test_defaults_of_a_machine_that_is_not_linux": "PASSED",
                                 "test_passes_a_bad_pointer": "SKIPPED",
                                 "test_backend[emu]": "PASSED", "test_backend[host]": "SKIPPED"}, out
        assert "bpfemu cannot detect bad pointers here" in out and "not Linux (simulated" in out
