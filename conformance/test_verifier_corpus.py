"""The kernel's verifier selftests on both backends: Linux 6.1's ``tools/testing/selftests/bpf/verifier/*.c``
(1365 programs, ids ``<file>/<n>``) and, where a 6.12 tree is at hand, 6.12's ``progs/verifier_*.c``
(the 1126 naked-assembly programs our reader ports, ids ``verifier_<file>/<n>``).

Each case is loaded (and, when accepted, test-run) as test_verifier / test_loader do it
(:mod:`conformance.corpus.runner`) and its outcome compared with what this host's kernel gave when it was
recorded (``conformance/corpus/verifier-host-6.18.json``, ``verifier-progs-host-6.18.json``): the verdict,
the errno and, for a rejection, the cause line of the verifier log. Test-run results (retval and errno of each BPF_PROG_TEST_RUN) are compared too
where the recording has them and the backend implements BPF_PROG_TEST_RUN.

- The corpus is read from a kernel tree at run time (``tools/fetch_kernel_source.sh``; ``BPFEMU_KERNEL_SRC``);
  without one the module is skipped. Porting also reads the kernel's BTF (``BPFEMU_VMLINUX_BTF``, else
  /sys/kernel/btf/vmlinux); off Linux, without it, the cases that need it are left out, and
  ``test_no_case_is_left_unported_for_want_of_the_kernel_btf`` says how many.
- ``priv`` runs are uid 0 with every capability; ``unpriv`` runs (socket filter and cgroup skb cases, as
  test_verifier) have no capabilities and need kernel.unprivileged_bpf_disabled=0: the emulator's kernel is
  made so, the host's is left as it is (a machine-wide setting), so there the live unprivileged runs are
  skipped unless it is already 0. The recording holds the host's unprivileged outcomes.
- Which cases: ``BPFEMU_CORPUS`` unset runs every 4th case of each file (about 630 programs of both corpora,
  all files, without the generated programs of more than 100k instructions); ``BPFEMU_CORPUS=all`` runs them
  all; ``BPFEMU_CORPUS=calls,and/0,verifier_sdiv`` runs those files or cases. ``-k 'calls/'`` selects as
  usual.
- Off Linux (``BPFEMU_PLATFORM=nonlinux``) the emulated kernel's BTF is bpfemu's small built-in one: a case
  that the emulator answers differently there and whose load looked up kernel types or functions that BTF
  lacks (``kernel.btf_vmlinux.not_described()``: an attach target, a kfunc, a kptr's struct, the struct a
  helper returns) is skipped with them named (:func:`bpfemu.testing.support.need_linux`).
- On a kernel version other than the recordings' (``--bpf-kernel=6.1``, ``--bpf-backend=vm:6.1``) both sides
  skip, saying so: the recordings are 6.18's verifier, and no other version's answers are recorded.
- The emulator side is expected to fail (xfail, not strict) while the emulator has no BPF_PROG_LOAD, and for
  the cases listed in ``conformance/corpus/verifier-emu-known.txt`` (``<id> <mode>  reason`` per line) once
  it has one.
"""
import os

import pytest

import bpfemu
from bpfemu import profiles
from bpfemu.testing.backends import host_status, real_kernel, real_profile
from bpfemu.testing.support import need_linux
from .corpus import kbtf, record as R
from .corpus.runner import host_unprivileged_bpf_disabled, run_case
from .corpus.progs import RECORD_PATH as PROGS_RECORD_PATH, load_progs_corpus
from .corpus.verifier import RECORD_PATH, load_corpus

KNOWN_PATH = os.path.join(os.path.dirname(RECORD_PATH), "verifier-emu-known.txt")
DEFAULT_STRIDE = 4
BIG = 100000  # slots: generated programs this large run only with BPFEMU_CORPUS=all or by name


_recorded_on = set()  # the kernel versions the recordings were made on


def _corpora():
    """[(name, corpus, recording)] of the corpora available here."""
    out, why = [], []
    for name, load, record in (("6.1", load_corpus, RECORD_PATH), ("progs", load_progs_corpus, PROGS_RECORD_PATH)):
        try:
            corpus = load()
            recorded = R.load(record)
        except (OSError, ValueError) as e:  # no tree (FileNotFoundError) or no recording
            why.append("%s: %s" % (name, e))
            continue
        out.append((name, corpus, recorded["cases"]))
        _recorded_on.add(profiles.version_of_release(recorded.get("kernel", "")))
    return out, why


CORPORA, MISSING = _corpora()
if not CORPORA:
    pytest.skip("verifier corpora unavailable: %s" % "; ".join(MISSING), allow_module_level=True)


def _selected(corpus):
    want = os.environ.get("BPFEMU_CORPUS", "").strip()
    cases = list(corpus)
    if want == "all":
        return cases
    if want:
        names = {w.strip() for w in want.split(",") if w.strip()}
        return [c for c in cases if c.id in names or c.file[:-2] in names or c.file in names]
    return [c for c in cases if c.index % DEFAULT_STRIDE == 0 and len(c.insns) <= BIG]


def _known():
    out = {}
    try:
        with open(KNOWN_PATH) as f:
            for line in f:
                line = line.split("#", 1)[0].strip()
                if line:
                    parts = line.split(None, 2)
                    out[(parts[0], parts[1])] = parts[2] if len(parts) > 2 else "known disagreement"
    except OSError:
        pass
    return out


def _emulator_implements(cmd):
    """Whether the emulator's dispatch table has ``cmd`` (e.g. 'BPF_PROG_LOAD')."""
    from bpfemu.syscall import sys_bpf
    return sys_bpf.implemented().get(cmd, False)


def _real_kernel_differs():
    """Why the session's real kernel cannot be compared with the recordings (made on the host's 6.18: its
    verifier answers, which no profile models for another version), or None."""
    version = real_profile().version
    if _recorded_on and version not in _recorded_on:
        return ("the recorded outcomes are %s's verifier; the session's real kernel is %s, whose verifier the "
                "profiles do not model (a profile has no verifier facts)" % ("/".join(sorted(_recorded_on - {None})),
                                                                          version))
    return None


def _emulator_differs():
    """Why the emulator's kernel version (its default profile, ``--bpf-kernel``) cannot be compared with the
    recordings (6.18's verifier: an older profile's verifier knows fewer instructions and refuses what 6.18
    takes), or None."""
    version = profiles.default_version()
    if _recorded_on and version not in _recorded_on:
        return ("the recorded outcomes are %s's verifier; the emulator runs as %s (--bpf-kernel), whose verifier "
                "answers other programs differently (its profile's instructions, BPF_ST to the context...)"
                % ("/".join(sorted(_recorded_on - {None})), version))
    return None


NO_PROG_LOAD = not _emulator_implements("BPF_PROG_LOAD")
NO_PROG_LOAD_REASON = "the emulator has no BPF_PROG_LOAD yet (issue 13): it answers EINVAL"
# test runs are compared where the backend can run programs (the interpreter is issue 15)
EMU_RUNS = _emulator_implements("BPF_PROG_TEST_RUN")
KNOWN = _known()
REAL_DIFFERS = _real_kernel_differs()
EMU_DIFFERS = _emulator_differs()


def _params():
    out = []
    for _name, corpus, recording in CORPORA:
        for c in _selected(corpus):
            out.extend(_case_params(c, recording.get(c.id)))
    return out


def _case_params(c, rec):
    out = []
    for mode in ("priv", "unpriv"):
        if (mode == "unpriv" and not c.unpriv) or (mode == "priv" and not c.priv):
            continue
        for backend in ("emu", "host"):
            marks = []
            if backend == "emu" and EMU_DIFFERS:
                marks.append(pytest.mark.skip(reason=EMU_DIFFERS))
            elif backend == "emu" and NO_PROG_LOAD:
                marks.append(pytest.mark.xfail(strict=False, reason=NO_PROG_LOAD_REASON))
            elif backend == "emu" and (c.id, mode) in KNOWN:
                marks.append(pytest.mark.xfail(strict=False, reason=KNOWN[(c.id, mode)]))
            elif backend == "host" and REAL_DIFFERS:
                marks.append(pytest.mark.skip(reason=REAL_DIFFERS))
            out.append(pytest.param(c, mode, backend, rec, marks=marks, id="%s-%s-%s" % (c.id, mode, backend)))
    return out


def _task(backend, mode, request):
    """A privileged task on the backend (run_case drops privileges itself for the unprivileged runs)."""
    if backend == "host":
        ok, why = host_status()
        if not ok:
            if os.environ.get("BPFEMU_REQUIRE_HOST") == "1":
                pytest.fail("BPFEMU_REQUIRE_HOST=1 but the host kernel backend is unusable: %s" % why)
            pytest.skip("host kernel backend unusable: %s" % why)
        state = host_unprivileged_bpf_disabled()
        if mode == "unpriv" and state != 0:
            pytest.skip("host kernel.unprivileged_bpf_disabled=%s: unprivileged loads are compared on the "
                        "emulator only (the recording holds the host's outcomes)" % state)
        return real_kernel()
    t = bpfemu.Kernel(unprivileged_bpf_disabled=0).spawn()
    request.addfinalizer(t.exit)
    return t


@pytest.mark.parametrize("case,mode,backend,rec", _params())
def test_verifier_selftest(case, mode, backend, rec, request):
    if rec is None or mode not in rec:
        pytest.skip("%s (%s) is not in the host recording" % (case.id, mode))
    if backend == "emu" and NO_PROG_LOAD:
        pytest.xfail(NO_PROG_LOAD_REASON)  # (xfail(run=False) costs pytest ~0.1 s per item)
    if rec.get("insns") != case.insns_digest():
        pytest.skip("%s: the program differs from the recorded one (another kernel tree?)" % case.id)
    task = _task(backend, mode, request)
    outcome = run_case(case, task, unprivileged=mode == "unpriv")
    diffs = R.compare(outcome, rec[mode], runs=backend == "host" or EMU_RUNS)
    if diffs and backend == "emu":
        lacking = task.kernel.btf_vmlinux.not_described()  # only where the kernel's BTF is bpfemu's own
        if lacking:
            need_linux("%s [%s], whose load looks up %s in the kernel's BTF (bpfemu's built-in one lacks %s; "
                       "here: %s)," % (case.id, mode, ", ".join(lacking), "them" if len(lacking) > 1 else "it",
                                       "; ".join(diffs)))
    assert not diffs, "%s [%s] on %s: %s\nlog tail:\n%s" % (case.id, mode, backend, "; ".join(diffs),
                                                             outcome.log[-1500:])


def test_no_case_is_left_unported_for_want_of_the_kernel_btf():
    """Porting reads kernel struct offsets and enum values from the kernel's BTF (as compiling the selftests
    reads vmlinux.h): with it, no case is left out for that reason."""
    left = [why for _name, corpus, _rec in CORPORA for _f, _i, why in corpus.failures if kbtf.UNREADABLE in why]
    if left:
        need_linux("porting %d corpus cases (their kernel struct offsets and enum values come from the kernel's "
                   "BTF; BPFEMU_VMLINUX_BTF can name a copy of one)" % len(left))
    assert not left, left[:3]
