"""Helpers of the ``bpfemu exec`` comparisons (conformance/test_exec_*.py): the same command under
``bpfemu exec`` as an unprivileged user and on the host as root.

- :func:`run_emulated` runs ``python3 -m bpfemu exec --ncpus N -- CMD`` as uid/gid 1000 with no
  capabilities (setpriv): the supervisor and the command are both unprivileged. The Python it
  uses must be readable by that user, so this package and sortedcontainers are copied to a
  world-readable directory once per test session.
- :func:`run_host` runs CMD as root in a private mount namespace with a fresh bpffs on
  /sys/fs/bpf (``unshare -m`` then ``mount -t bpf``), so it never touches the machine's
  /sys/fs/bpf and everything it pinned goes with the namespace.

Both return (exit status, stdout and stderr interleaved). :func:`normalize_ids` replaces object
ids by their order of first appearance, the one thing two kernels legitimately disagree on.

:func:`missing` says which tools are absent (bpftool, gcc, setpriv, unshare) or why the host side
cannot run; tests skip on it, or fail when BPFEMU_REQUIRE_HOST=1.
"""
import atexit
import functools
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from .. import hostenv
from ..host.sysinfo import host_possible_cpus
from .support import need_linux

UID = 1000
TIMEOUT = 120
HOST_PREFIX = ["unshare", "-m", "--propagation", "private", "sh", "-c",
               'mount -t bpf bpf /sys/fs/bpf || exit 125; exec "$@"', "sh"]


def missing(*tools):
    """Why the comparison cannot run here, or None."""
    if not hostenv.is_linux() or os.uname().machine != "x86_64":
        return "bpfemu exec needs Linux on x86_64"
    if os.geteuid() != 0:
        return "the host side needs root"
    for t in ("setpriv", "unshare") + tools:
        if shutil.which(t) is None:
            return "%s is not installed (CI installs it: apt-get install bpftool libbpf-dev gcc)" % t
    return None


def require(*tools):
    need_linux("comparing bpfemu exec with the host")  # off Linux: skipped, whatever BPFEMU_REQUIRE_HOST says
    why = missing(*tools)
    if why:
        if os.environ.get("BPFEMU_REQUIRE_HOST") == "1":
            pytest.fail("BPFEMU_REQUIRE_HOST=1 but: %s" % why)
        pytest.skip(why)


def world_dir():
    """A world-readable scratch directory (0755) for scripts, binaries and outputs, removed when the
    process exits."""
    d = tempfile.mkdtemp(prefix="bpfemu-exec-test-")
    os.chmod(d, 0o755)
    atexit.register(shutil.rmtree, d, True)
    return d


@functools.lru_cache(maxsize=None)
def unprivileged_python():
    """(python executable, PYTHONPATH) with which uid 1000 can run ``-m bpfemu``."""
    root = world_dir()
    pkg = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the bpfemu package
    shutil.copytree(pkg, os.path.join(root, "bpfemu"), ignore=shutil.ignore_patterns("__pycache__", "conformance"))  # testing/conformance: a link to the suite
    import sortedcontainers
    shutil.copytree(os.path.dirname(os.path.abspath(sortedcontainers.__file__)), os.path.join(root, "sortedcontainers"),
                    ignore=shutil.ignore_patterns("__pycache__"))
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames:
            os.chmod(os.path.join(dirpath, n), 0o755)
        for n in filenames:
            os.chmod(os.path.join(dirpath, n), 0o644)
    for py in ("/usr/bin/python3", sys.executable, shutil.which("python3") or ""):
        if not py:
            continue
        check = "import subprocess, sys, bpfemu.exec; subprocess.run([sys.executable, '-c', ''], check=True)"
        r = subprocess.run(_drop() + [py, "-c", check], env=_env(root), cwd=root,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=TIMEOUT)
        if r.returncode == 0:
            return py, root
    pytest.skip("no Python that uid %d can run bpfemu with" % UID)


def _drop():
    return ["setpriv", "--reuid=%d" % UID, "--regid=%d" % UID, "--clear-groups", "--inh-caps=-all"]


def _env(pythonpath):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "BPFEMU"))}
    env["PYTHONPATH"] = pythonpath
    env["LC_ALL"] = "C"
    return env


def ncpus():
    return host_possible_cpus() or 2


def run_emulated(argv, cwd):
    """Run argv under ``bpfemu exec`` as uid 1000 with no capabilities: (status, output)."""
    py, path = unprivileged_python()
    cmd = _drop() + [py, "-m", "bpfemu", "exec", "--ncpus", str(ncpus()), "--"] + list(argv)
    r = subprocess.run(cmd, cwd=cwd, env=_env(path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=TIMEOUT)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def run_emulated_each(script_path, cwd):
    """Run a script made by :func:`script` with ``each=True`` as uid 1000 with no capabilities, every command
    in a ``bpfemu exec --state-dir`` of its own on one state directory (the daemon's kernel lives from one to
    the next), then stop the daemon: (status, output)."""
    py, path = unprivileged_python()
    state = os.path.join(cwd, "state")
    os.mkdir(state, 0o700)
    os.chown(state, UID, UID)
    env = _env(path)
    env["RUN"] = "%s -m bpfemu exec --state-dir %s --ncpus %d --" % (py, state, ncpus())
    try:
        r = subprocess.run(_drop() + ["sh", script_path], cwd=cwd, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=TIMEOUT)
    finally:
        subprocess.run(_drop() + [py, "-m", "bpfemu", "exec", "--state-dir", state, "--stop"], env=_env(path),
                       cwd=cwd, timeout=TIMEOUT)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def run_host(argv, cwd):
    """Run argv as root on the host kernel, in a private mount namespace with a fresh bpffs."""
    env = {k: v for k, v in os.environ.items()}
    env["LC_ALL"] = "C"
    r = subprocess.run(HOST_PREFIX + list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=TIMEOUT)
    return r.returncode, r.stdout.decode("utf-8", "replace")


_ID_PATTERNS = [
    re.compile(r"^(\d+)(?=: )", re.M),  # bpftool map show: "12: hash ..."
    re.compile(r'(?<="id":)(\d+)'),  # bpftool -j
    re.compile(r"\b(?:id|map_id|next_id|inner_map_id)[ =:]\s*(\d+)"),  # "id 12", "map_id=12" of our C programs
]


def normalize_ids(text):
    """Replace object ids by ID1, ID2... in order of first appearance (same id, same name)."""
    names = {}

    def sub(m):
        whole, num = m.group(0), m.group(1)
        name = names.setdefault(num, "ID%d" % (len(names) + 1))
        start = m.start(1) - m.start(0)
        return whole[:start] + name + whole[start + len(num):]

    spans = []
    for pat in _ID_PATTERNS:
        for m in pat.finditer(text):
            spans.append((m.start(0), m))
    spans.sort(key=lambda x: x[0])
    out, pos = [], 0
    for start, m in spans:
        if start < pos:
            continue
        out.append(text[pos:start])
        out.append(sub(m))
        pos = m.end(0)
    out.append(text[pos:])
    return "".join(out)


def sections(output):
    """Split the output of a script made by :func:`script` into [(command, its output and status)]."""
    out = []
    for line in output.splitlines(keepends=True):
        if line.startswith("### ") and not line.startswith("### rc="):
            out.append([line[4:].rstrip("\n"), ""])
        elif out:
            out[-1][1] += line
    return [tuple(x) for x in out]


_ENTRY = re.compile(r"^\d+: ", re.M)


def only_pinned_under(text, prefix="/sys/fs/bpf/"):
    """Keep the entries of a plain ``bpftool -f map show`` listing that are pinned under prefix
    (the host lists every map of the machine; the session's are the ones pinned in its bpffs)."""
    starts = [m.start() for m in _ENTRY.finditer(text)]
    if not starts:
        return text
    head = text[:starts[0]]
    keep = []
    for a, b in zip(starts, starts[1:] + [len(text)]):
        entry = text[a:b]
        tail = ""
        if "\n### rc=" in entry:  # the status line after the last entry
            entry, tail = entry.split("\n### rc=", 1)
            entry, tail = entry + "\n", "### rc=" + tail
        if "pinned " + prefix in entry:
            keep.append(entry)
        keep.append(tail)
    return head + "".join(keep)


def script(commands, each=False):
    """A shell script running each command with its output and status after a '### command' line. With
    each, every command runs behind ``$RUN`` (empty on the host; :func:`run_emulated_each` sets it)."""
    run = "$RUN " if each else ""
    lines = ['c() { echo "### $*"; %s"$@" 2>&1; echo "### rc=$?"; }' % run]
    lines += ["c " + c for c in commands]
    return "\n".join(lines) + "\n"
