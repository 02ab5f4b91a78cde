"""C programs on libbpf's low-level API: ``bpfemu exec`` as an unprivileged user against the host.

Each program in conformance/exec_programs/ is compiled with gcc against Debian's libbpf-dev, run
as root on the host (private mount namespace, fresh bpffs on /sys/fs/bpf) and under
``python3 -m bpfemu exec`` as uid 1000 with no capabilities. The programs print their steps in
sections (``### name``); each section must give the same text, object ids aside.

- maps.c: create, update, lookup, lookup_and_delete, get_next_key, batches, pin/get (read-only
  too), statfs, info, get_next_id/get_fd_by_id, and fds: readlink, fcntl, dup, F_DUPFD_CLOEXEC,
  dup2, fdinfo, fstat, closed fds.
- mmap.c: an mmapable array shared both ways, the kernel's refusals (private, past the end,
  exec, hash, not mmapable), a read-only mapping (mprotect EACCES), freeze while writable (EBUSY),
  after freeze (EPERM), a mapping keeping a closed map alive until munmap.
- fork.c: a forked child updates the map through the inherited fd; an exec'd child keeps the fd
  without O_CLOEXEC and loses the other.
- loader.c: libbpf's object API on conformance/objects/xdp_counter.bpf.o (compiled with clang): open,
  programs and maps as libbpf parsed them, load, prog and map info, BPF_PROG_TEST_RUN of the XDP program on
  a few packets and the maps it updated, pins of the program and maps that outlive the object.

Expected failures, with their reasons: read(2) on a map fd (not intercepted: the placeholder reads EOF).
"""
import os
import shutil
import subprocess

import pytest

from bpfemu.testing import bpf_objects as BO
from bpfemu.testing import exec_support as X

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "exec_programs")
READ = "read(2) of an emulated fd is not intercepted: its placeholder socket reads EOF (the kernel: EINVAL)"
PROGRAMS = {
    "maps": ["create", "names", "update and lookup", "get_next_key", "batches", "pin and get", "fds",
             ("read", READ), "get_next_id"],
    "mmap": ["create", "shared both ways", "refusals", "read-only mapping and freeze", "a mapping keeps the map alive"],
    "fork": ["fork", "exec"],
    "loader": ["open", "load", "info", "test_run", "maps after test_run", "pin and close", "pinned program runs"],
}
# argv after the program, and the BPF objects (conformance/objects/) it needs in its directory
ARGS = {"loader": ["xdp_counter.bpf.o"]}

_built = {}
_results = {}


def _build():
    if "dir" not in _built:
        d = X.world_dir()
        for name in PROGRAMS:
            for f in os.listdir(HERE):
                shutil.copy(os.path.join(HERE, f), d)
            r = subprocess.run(["gcc", "-O1", "-Wall", "-o", os.path.join(d, name), os.path.join(d, name + ".c"),
                                "-lbpf"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if r.returncode:
                pytest.fail("gcc %s.c failed (is libbpf-dev installed?):\n%s" % (name, r.stdout.decode()))
            os.chmod(os.path.join(d, name), 0o755)
        _built["dir"] = d
    return _built["dir"]


def _outputs(name):
    if name not in _results:
        d = _build()
        for obj in ARGS.get(name, []):
            if obj.endswith(".bpf.o"):
                BO.require_clang()
                shutil.copy(BO.compile_object(obj[:-len(".bpf.o")]), os.path.join(d, obj))
                os.chmod(os.path.join(d, obj), 0o644)
        res = {}
        for side, runner in (("emu", X.run_emulated), ("host", X.run_host)):
            status, out = runner([os.path.join(d, name)] + ARGS.get(name, []), d)
            res[side] = dict(X.sections(X.normalize_ids(out) + "### exit\nstatus %d\n" % status))
        _results[name] = res
    return _results[name]


def _cases():
    for prog, secs in PROGRAMS.items():
        for sec in secs + ["exit"]:
            title, reason = (sec, None) if isinstance(sec, str) else sec
            strict = True
            if isinstance(reason, tuple):
                reason, strict = reason
            marks = [pytest.mark.xfail(reason=reason, strict=strict)] if reason else []
            yield pytest.param(prog, title, id="%s-%s" % (prog, title.replace(" ", "_")), marks=marks)


@pytest.mark.parametrize("program,section", list(_cases()))
def test_libbpf_program(program, section):
    X.require("gcc")
    if not os.path.exists("/usr/include/bpf/bpf.h"):
        X.require("libbpf-dev-headers")
    res = _outputs(program)
    host, emu = res["host"], res["emu"]
    assert section in host, "the host run has no section %r:\n%s" % (section, host)
    assert emu.get(section) == host[section], "--- host\n%s--- bpfemu exec\n%s" % (host[section], emu.get(section))
