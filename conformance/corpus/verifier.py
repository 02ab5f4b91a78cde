"""The kernel's verifier selftests (``tools/testing/selftests/bpf/verifier/*.c``) as data.

The test files are GPL and stay out of this repository: :func:`load_corpus` reads them from a kernel tree at
run time (``tools/fetch_kernel_source.sh`` puts a 6.1 tree in ``$BPFEMU_KERNEL_SRC``, by default
``~/.cache/bpfemu/linux-6.1``). Each file is a list of ``struct bpf_test`` initializers written with the
kernel's ``BPF_*`` instruction macros; our own preprocessor (:mod:`.cpp`) expands the files' macros and the
helpers that ``test_verifier.c`` defines, and our own evaluator (:mod:`.cexpr`) computes every expression as
gcc would on LP64, calling ``bpfemu.prog.insn`` builders for the instruction macros, the kernel BTF for
``offsetof(struct __sk_buff, ...)`` and friends, and the tree's uapi headers for ``#define``s and enums.

A :class:`Case` carries the program and what ``test_verifier.c`` does with it: program type, attach type,
load flags, which instruction slots get which map (``fixups``), and the selftest's own expectations (for
6.1; the host kernel may differ, and then the host wins). Run one with :func:`run_case` on any task with
the ``bpf()`` surface (see :mod:`.runner`); :mod:`.record` holds the host's recorded outcomes and compares.

For 6.1.192 (Debian's linux-source-6.1): 92 files, 1365 tests (58 of them made by the files'
own macros), all parsed; every field of every test equals what gcc compiles from the same sources. The 13
programs test_verifier generates in C (``.fill_helper``) come from our own generators (:mod:`.fill`).

Use::

    corpus = load_corpus()                       # Corpus (a list of Case), cached in ~/.cache/bpfemu/corpus
    case = corpus.by_id()["and/0"]               # ids are "<file stem>/<index in file>"
    outcome = run_case(case, bpfemu.Host())      # Outcome(verdict, errno, log, retval, ...); outcome.cause

Command line (from the project root; ``-k TEXT`` and ``--files a,b`` narrow any of them)::

    python -m conformance.corpus.verifier --count               # files, cases, what did not parse
    python -m conformance.corpus.verifier --record [--lower-unpriv-sysctl]
                                                                # run on the host, write verifier-host-6.18.json
    python -m conformance.corpus.verifier --table [--backend emu|host] [--markdown] [--list]
                                                                # per-file agreement with the recording
    python -m conformance.corpus.verifier --show FILE/INDEX     # one case: program, expectations, outcome
"""
import collections.abc
import dataclasses
import errno
import functools
import glob
import hashlib
import os
import pickle
import platform
import re
from typing import List, Optional, Tuple

from bpfemu.prog import insn as _insn

from . import cexpr, fill, kbtf
from .cexpr import CExprError, CInt, CStr, InitList, to_int
from .cpp import CppError, Preprocessor
from .runner import Outcome, cause, run_case  # noqa: F401  (the package's face)

__all__ = ["Case", "Run", "Corpus", "load_corpus", "default_tree", "run_case", "Outcome", "cause",
           "FIXUP_KINDS", "RECORD_PATH"]

VERIFIER_DIR = "tools/testing/selftests/bpf/verifier"
RECORD_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "verifier-host-6.18.json")

# test_verifier's expectation enum
UNDEF, ACCEPT, REJECT, VERBOSE_ACCEPT = 0, 1, 2, 3
RESULT_NAMES = {UNDEF: None, ACCEPT: "ACCEPT", REJECT: "REJECT", VERBOSE_ACCEPT: "VERBOSE_ACCEPT"}
# .flags bits that are test_verifier's own, not prog_flags
F_NEEDS_EFFICIENT_UNALIGNED_ACCESS = 1 << 0
F_LOAD_WITH_STRICT_ALIGNMENT = 1 << 1
BPF_F_STRICT_ALIGNMENT = 1 << 0
BPF_F_ANY_ALIGNMENT = 1 << 1
BPF_F_TEST_RND_HI32 = 1 << 2
BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_CGROUP_SKB = 8
TEST_DATA_LEN = 64
POINTER_VALUE = 0xcafe4a  # test_verifier's "0xcafe4all": a retval meaning "any value" (a pointer was returned)

# The fixup arrays of struct bpf_test, in test_verifier's creation order (that order decides fd numbers).
FIXUP_KINDS = (
    "map_hash_8b", "map_hash_48b", "map_hash_16b", "map_array_48b", "prog1", "prog2", "map_in_map",
    "cgroup_storage", "percpu_cgroup_storage", "map_sockmap", "map_sockhash", "map_xskmap",
    "map_stacktrace", "map_spin_lock", "map_array_ro", "map_array_wo", "map_array_small", "sk_storage_map",
    "map_event_output", "map_reuseport_array", "map_ringbuf", "map_timer", "map_kptr",
)
# Positional order of struct bpf_test's members (only the first two are ever given positionally).
_POSITIONAL = ("descr", "insns")


@dataclasses.dataclass
class Run:
    """One BPF_PROG_TEST_RUN of an accepted program: the 64 bytes of packet data and the expected retval."""
    retval: int = 0
    retval_unpriv: int = 0
    data: bytes = bytes(TEST_DATA_LEN)


@dataclasses.dataclass
class Case:
    """One verifier selftest.

    ``insns`` are the program's slots (``bpfemu.prog.insn.Insn``, ld_imm64 as its two slots), cut to the
    length test_verifier loads (up to the last slot whose code or imm is nonzero). ``fixups`` maps a map
    kind of :data:`FIXUP_KINDS` to the slot indexes whose ``imm`` gets that map's fd; ``kfunc_fixups`` is
    ``[(kfunc name, slot)]`` whose imm gets the kfunc's vmlinux BTF id. ``prog_flags`` is what
    test_verifier passes (always with BPF_F_TEST_RND_HI32); ``test_flags`` the raw ``.flags``.
    Expectations: ``result``/``result_unpriv`` ('ACCEPT', 'REJECT', 'VERBOSE_ACCEPT' or None),
    ``errstr``/``errstr_unpriv`` (tab-separated fragments that must appear in order in the log),
    ``runs`` (test runs; -1: load only) with per-run ``retvals``. ``unpriv``: test_verifier also runs it
    without privileges (socket filters and cgroup skb programs). The fields after ``unpriv`` serve the
    progs/verifier_*.c cases of newer kernels (:mod:`.progs`) and keep their defaults for the 6.1 ones.
    """
    file: str
    index: int
    name: str
    insns: list
    prog_type: int = BPF_PROG_TYPE_SOCKET_FILTER
    expected_attach_type: int = 0
    prog_flags: int = BPF_F_TEST_RND_HI32
    test_flags: int = 0
    fixups: dict = dataclasses.field(default_factory=dict)
    kfunc_fixups: list = dataclasses.field(default_factory=list)
    attach_kfunc: Optional[str] = None
    result: Optional[str] = None
    result_unpriv: Optional[str] = None
    errstr: Optional[str] = None
    errstr_unpriv: Optional[str] = None
    runs: int = 0
    retvals: List[Run] = dataclasses.field(default_factory=lambda: [Run()])
    insn_processed: int = 0
    btf_types: Optional[list] = None
    btf_strings: Optional[bytes] = None
    func_info: List[Tuple[int, int]] = dataclasses.field(default_factory=list)
    expected_insns: list = dataclasses.field(default_factory=list)
    unexpected_insns: list = dataclasses.field(default_factory=list)
    fill_helper: Optional[str] = None
    unpriv: bool = False
    # the progs/verifier_*.c cases (see .progs) also use:
    priv: bool = True                     # run privileged (test_loader may run a program unprivileged only)
    maps: dict = dataclasses.field(default_factory=dict)       # name -> progs.MapSpec, created for the load
    map_slots: list = dataclasses.field(default_factory=list)  # [(slot, map name)] whose imm gets its fd
    attach_btf: Optional[tuple] = None    # (vmlinux type name, kind) whose id is attach_btf_id
    prog_name: str = ""
    log_level: Optional[int] = None       # None: test_verifier's choice; 0: libbpf's (no log, then retry at 1)
    msg_regex: bool = False               # errstr fragments may hold {{regex}} parts (test_loader's __msg)
    syscall_run: bool = False             # test-run with empty options (BPF_PROG_TYPE_SYSCALL)

    @property
    def id(self):
        """``<file stem>/<index in file>``: stable for a given tree, used as the pytest id and record key."""
        return "%s/%d" % (self.file[:-2] if self.file.endswith(".c") else self.file, self.index)

    def expected(self, unprivileged=False):
        """(result, errstr) test_verifier expects in that mode."""
        r = self.result_unpriv if unprivileged and self.result_unpriv else self.result
        e = self.errstr_unpriv if unprivileged and self.errstr_unpriv else self.errstr
        return r, e

    def expected_retval(self, i=0, unprivileged=False):
        run = self.retvals[i]
        return run.retval_unpriv if unprivileged and run.retval_unpriv else run.retval

    @property
    def n_runs(self):
        return 0 if self.runs < 0 else max(self.runs, 1)

    def insns_digest(self):
        """First 12 hex digits of SHA-256 over the program bytes: tells whether a recording matches."""
        return hashlib.sha256(_insn.encode(self.insns)).hexdigest()[:12]


class Corpus(list):
    """The cases of a tree, plus what could not be read: ``failures`` [(file, index or None, reason)] and
    ``declared`` {file: number of test initializers the file holds}."""

    def __init__(self, tree="", cases=(), failures=None, declared=None):
        list.__init__(self, cases)
        self.tree = tree
        self.failures = failures or []
        self.declared = declared or {}

    def by_id(self):
        return {c.id: c for c in self}


def default_tree():
    """Where the 6.1 kernel tree is: ``$BPFEMU_KERNEL_SRC``, else ``~/.cache/bpfemu/linux-6.1``, else
    ``/work/ref/linux-6.1``; None when none holds the verifier selftests."""
    cands = [os.environ.get("BPFEMU_KERNEL_SRC"), os.path.expanduser("~/.cache/bpfemu/linux-6.1"),
             "/work/ref/linux-6.1"]
    for c in cands:
        if c and os.path.isdir(os.path.join(c, VERIFIER_DIR)):
            return c
    return None


# -- the environment the C expressions are evaluated in ---------------------------------------------------------

_BUILDERS = {n: f for n, f in vars(_insn).items() if n.startswith("BPF_") and callable(f)}
_LOCAL_STRUCTS = {
    # struct test_val { unsigned int index; int foo[MAX_ENTRIES]; } and struct other_val { long long foo, bar; }
    # (test_verifier.c): the value layouts of its hash/array maps
    "test_val": (4 + 4 * 11, {"index": (0, 4, None), "foo": (4, 4 * 11, 4)}),
    "other_val": (16, {"foo": (0, 8, None), "bar": (8, 8, None)}),
}


class GeneratedSlots(collections.abc.Sequence):
    """The slots of a generated program (:mod:`.fill`), built on first use: some hold a million
    instructions. Pickles as the generator's name and arguments."""

    def __init__(self, helper, retval, func_info, seed, size):
        self.args = (helper, retval, tuple(func_info), seed)
        self.size = size
        self._slots = None

    def __getstate__(self):
        return self.args, self.size

    def __setstate__(self, state):
        (self.args, self.size), self._slots = state, None

    def _get(self):
        if self._slots is None:
            helper, retval, func_info, seed = self.args
            slots = fill.GENERATORS[helper](retval, list(func_info), seed)[0]
            self._slots = list(_insn.flatten(slots() if callable(slots) else slots))
        return self._slots

    def __len__(self):
        return self.size

    def __getitem__(self, i):
        return self._get()[i]

    def __iter__(self):
        return iter(self._get())

    def __eq__(self, other):
        return list(self) == list(other)

    def __repr__(self):
        return "<GeneratedSlots %s>" % ("%d slots" % len(self._slots) if self._slots is not None else "not built")


class FillHelper(str):
    """The name of a test_verifier program generator (``.fill_helper = bpf_fill_scale``)."""


class _Env:
    def __init__(self, constants):
        self.constants = constants

    def ident(self, name):
        v = self.constants.get(name)
        if v is not None:
            return v
        if name.startswith("bpf_fill_"):
            return FillHelper(name)
        try:
            enums = kbtf.enum_constants()
        except kbtf.BTFError:
            enums = {}
        if name in enums:
            return _enum_value(enums[name])
        raise CExprError("unknown identifier %s" % name)

    def call(self, name, args):
        f = _BUILDERS.get(name)
        if f is None:
            raise CExprError("unknown macro or function %s" % name)
        return _as_stored(f(*[to_int(a) if isinstance(a, CInt) else a for a in args]))

    def _layout(self, ctype):
        if ctype[0] not in ("struct", "union"):
            raise CExprError("layout of %r" % (ctype,))
        local = _LOCAL_STRUCTS.get(ctype[1])
        if local is not None:
            size, fields = local

            def offsetof(path):
                what, name = path[0]
                off, fsize, elem = fields[name]
                if len(path) > 1:
                    off += path[1][1] * elem
                    fsize = elem
                return off, fsize
            return size, offsetof
        try:
            return kbtf.layout(ctype[0], ctype[1])
        except kbtf.BTFError as e:
            raise CExprError(str(e))

    def sizeof(self, ctype):
        return self._layout(ctype)[0]

    def offsetof(self, ctype, path):
        try:
            return self._layout(ctype)[1](path)
        except KeyError as e:
            raise CExprError("no member %s in %s %s" % (e, ctype[0], ctype[1]))

    def compound(self, ctype, init):
        if ctype == ("struct", "bpf_insn"):
            return _insn_from_init(init)
        raise CExprError("compound literal of %r" % (ctype,))


def _as_stored(v):
    """An instruction as struct bpf_insn stores it: code u8, dst_reg and src_reg 4 bits each (C truncates
    ``BPF_RAW_INSN(-1, -1, -1, -1, -1)`` on assignment)."""
    if isinstance(v, _insn.Insn):
        if 0 <= v.code <= 0xff and 0 <= v.dst_reg <= 0xf and 0 <= v.src_reg <= 0xf:
            return v
        return v._replace(code=v.code & 0xff, dst_reg=v.dst_reg & 0xf, src_reg=v.src_reg & 0xf)
    if isinstance(v, tuple):
        return tuple(_as_stored(x) for x in v)
    return v


def _enum_value(v):
    return CInt(v, 32, False) if -(1 << 31) <= v < (1 << 31) else CInt(v, 64, v >= (1 << 63))


def _insn_from_init(init):
    fields = {"code": 0, "dst_reg": 0, "src_reg": 0, "off": 0, "imm": 0}
    order = list(fields)
    k = 0
    for desig, v in init:
        if desig:
            name = desig[0][1]
            k = order.index(name)
        else:
            name = order[k]
        fields[name] = to_int(v)
        k += 1
    return _as_stored(_insn.BPF_RAW_INSN(fields["code"], fields["dst_reg"], fields["src_reg"], fields["off"],
                                         fields["imm"]))


def _predefined():
    m = platform.machine()
    d = {"__BYTE_ORDER__": "1234", "__ORDER_LITTLE_ENDIAN__": "1234", "__ORDER_BIG_ENDIAN__": "4321",
         "__LP64__": "1", "__linux__": "1", "__GNUC__": "12"}
    arch = {"x86_64": ("__x86_64", "__x86_64__"), "aarch64": ("__aarch64__",), "s390x": ("__s390x__",)}
    for name in arch.get(m, ()):
        d[name] = "1"
    # <limits.h> on LP64
    d.update({"CHAR_BIT": "8", "SCHAR_MAX": "127", "SCHAR_MIN": "(-128)", "UCHAR_MAX": "255",
              "SHRT_MAX": "32767", "SHRT_MIN": "(-32768)", "USHRT_MAX": "65535",
              "INT_MAX": "2147483647", "INT_MIN": "(-INT_MAX - 1)", "UINT_MAX": "4294967295U",
              "LONG_MAX": "9223372036854775807L", "LONG_MIN": "(-LONG_MAX - 1L)",
              "ULONG_MAX": "18446744073709551615UL", "LLONG_MAX": "9223372036854775807LL",
              "LLONG_MIN": "(-LLONG_MAX - 1LL)", "ULLONG_MAX": "18446744073709551615ULL"})
    return d


# headers whose #defines and enums the tests use, relative to the tree (the test sources include them)
_HEADERS = ("tools/include/uapi/linux/bpf_common.h", "tools/include/uapi/linux/bpf.h",
            "tools/include/uapi/linux/btf.h", "include/uapi/linux/if_ether.h",
            "tools/testing/selftests/bpf/test_btf.h", "tools/testing/selftests/bpf/test_verifier.c")
_ENUM_HEADERS = ("tools/include/uapi/linux/bpf.h", "tools/include/uapi/linux/btf.h")


def _read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def _enums_of(toks, constants):
    """Enumerators of every ``enum [tag] { ... }`` in a token list, values as C computes them."""
    env = _Env(constants)
    i, n = 0, len(toks)
    while i < n:
        if toks[i].text == "enum":
            j = i + 1
            if j < n and toks[j].kind == "id":
                j += 1
            if j < n and toks[j].text == "{":
                j += 1
                nextv = 0
                while j < n and toks[j].text != "}":
                    name = toks[j].text
                    j += 1
                    if toks[j].text == "=":
                        k = j + 1
                        depth = 0
                        while not (depth == 0 and toks[k].text in (",", "}")):
                            depth += toks[k].text in "([{"
                            depth -= toks[k].text in ")]}"
                            k += 1
                        p = cexpr.Parser(toks[j + 1:k], env)
                        try:
                            nextv = to_int(p.conditional())
                        except CExprError:
                            j = k
                            nextv += 1
                            if toks[j].text == ",":
                                j += 1
                            continue
                        j = k
                    constants.setdefault(name, _enum_value(nextv))
                    nextv += 1
                    if toks[j].text == ",":
                        j += 1
                i = j
        i += 1


@functools.lru_cache(maxsize=4)
def _base(tree):
    """(macros, constants) that every test file starts from: the uapi headers, test_btf.h, test_verifier.c."""
    pp = Preprocessor(_predefined(), keep=_BUILDERS)
    constants = {"ACCEPT": CInt(ACCEPT), "REJECT": CInt(REJECT), "VERBOSE_ACCEPT": CInt(VERBOSE_ACCEPT),
                 "UNDEF": CInt(UNDEF), "NULL": CInt(0, 64, True), "true": CInt(1), "false": CInt(0)}
    for n, v in vars(_insn).items():
        if n.startswith("BPF_") and isinstance(v, int):
            constants[n] = CInt(v)
    for n, v in vars(errno).items():  # <errno.h>
        if n.startswith("E") and isinstance(v, int):
            constants[n] = CInt(v)
    constants["ENOTSUPP"] = CInt(524)
    for h in _HEADERS:
        p = os.path.join(tree, h)
        if not os.path.exists(p):
            continue
        if h in _ENUM_HEADERS:  # expanded in full, for their enums
            _enums_of(pp.run(_read(p), p), constants)
        else:
            pp.harvest(_read(p), p)
    return pp.macros, constants


# -- reading one file -------------------------------------------------------------------------------------------

def _split_tests(toks):
    """Top-level ``{ ... }`` initializers of a test file as token slices."""
    out = []
    depth = 0
    start = None
    for i, t in enumerate(toks):
        if t.text == "{" and t.kind == "op":
            if depth == 0:
                start = i
            depth += 1
        elif t.text == "}" and t.kind == "op":
            depth -= 1
            if depth == 0:
                out.append(toks[start:i + 1])
            if depth < 0:
                raise CppError("unbalanced '}' at line %d" % t.line)
        elif depth == 0 and t.text != ",":
            raise CppError("line %d: %r outside a test initializer" % (t.line, t.text))
    return out


def _slots(init, what):
    if not isinstance(init, InitList):
        raise CExprError("%s is not an initializer list" % what)
    slots = []
    for desig, v in init:
        if desig:
            idx = desig[0][1]
            if desig[0][0] != "index":
                raise CExprError("designator .%s in %s" % (idx, what))
            slots.extend([_insn.Insn(0)] * (idx - len(slots)))
        if isinstance(v, InitList):
            slots.append(_insn_from_init(v))
        elif isinstance(v, _insn.Insn):
            slots.append(v)
        elif isinstance(v, tuple):
            slots.extend(_insn.flatten(v))
        else:
            raise CExprError("%s holds %r, not an instruction" % (what, v))
    return slots


def _probe_length(slots):
    """test_verifier's program length: through the last slot whose code or imm is nonzero (at least 1)."""
    n = len(slots)
    while n > 1 and slots[n - 1].code == 0 and slots[n - 1].imm == 0:
        n -= 1
    return max(n, 1)


def _ints(init, what):
    if not isinstance(init, InitList):
        raise CExprError("%s is not an initializer list" % what)
    out = []
    for desig, v in init:
        if desig:
            raise CExprError("designator in %s" % what)
        out.append(to_int(v))
    return out


def _fixup_slots(init, what):
    out = []
    for v in _ints(init, what):
        if v == 0:  # test_verifier walks the array until the first 0
            break
        out.append(v)
    return out


def _data(init, width, what):
    buf = bytearray(TEST_DATA_LEN)
    for i, v in enumerate(_ints(init, what)):
        buf[i * width:(i + 1) * width] = (v & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
    return bytes(buf[:TEST_DATA_LEN])


def _run_from(init, run):
    for desig, v in init:
        if not desig:
            raise CExprError("positional member in a retvals entry")
        name = desig[0][1]
        if name == "retval":
            run.retval = to_int(v) & 0xffffffff
        elif name == "retval_unpriv":
            run.retval_unpriv = to_int(v) & 0xffffffff
        elif name == "data":
            run.data = _data(v, 1, "data")
        elif name == "data64":
            run.data = _data(v, 8, "data64")
        else:
            raise CExprError("unknown retvals member %s" % name)


def _text(v, what):
    if not isinstance(v, CStr):
        raise CExprError("%s is not a string" % what)
    return v.decode("utf-8", "replace")


def _case(file, index, init):
    c = Case(file=file, index=index, name="", insns=[])
    pos = 0
    retvals = [Run()]
    for desig, v in init:
        if desig is None:
            if pos >= len(_POSITIONAL):
                raise CExprError("positional member %d" % pos)
            name = _POSITIONAL[pos]
        else:
            if len(desig) != 1 or desig[0][0] != "field":
                raise CExprError("nested designator %r" % (desig,))
            name = desig[0][1]
            pos = _POSITIONAL.index(name) if name in _POSITIONAL else len(_POSITIONAL)
        pos += 1
        if name == "descr":
            c.name = _text(v, "descr")
        elif name == "insns":
            c.insns = _slots(v, "insns")
        elif name in ("expected_insns", "unexpected_insns"):
            s = _slots(v, name)
            setattr(c, name, s)
        elif name.startswith("fixup_") and name != "fixup_kfunc_btf_id":
            kind = name[len("fixup_"):]
            if kind not in FIXUP_KINDS:
                raise CExprError("unknown fixup %s" % name)
            slots = _fixup_slots(v, name)
            if slots:
                c.fixups[kind] = slots
        elif name == "fixup_kfunc_btf_id":
            for _d, pair in v:
                items = [x for _dd, x in pair]
                if not items or not isinstance(items[0], CStr):
                    break  # a zeroed entry ends the list
                c.kfunc_fixups.append((_text(items[0], "kfunc"), to_int(items[1])))
        elif name in ("errstr", "errstr_unpriv", "kfunc"):
            if isinstance(v, CInt) and to_int(v) == 0:  # NULL
                continue
            setattr(c, "attach_kfunc" if name == "kfunc" else name, _text(v, name))
        elif name in ("result", "result_unpriv"):
            setattr(c, name, RESULT_NAMES[to_int(v)])
        elif name == "prog_type":
            c.prog_type = to_int(v) or BPF_PROG_TYPE_SOCKET_FILTER
        elif name in ("expected_attach_type", "insn_processed", "runs"):
            setattr(c, name, to_int(v))
        elif name == "flags":
            c.test_flags = to_int(v) & 0xff  # a u8 in struct bpf_test
        elif name == "fill_helper":
            if not isinstance(v, FillHelper):
                raise CExprError("fill_helper is not a generator name")
            c.fill_helper = str(v)
        elif name in ("retval", "retval_unpriv", "data", "data64"):
            _run_from(InitList([([("field", name)], v)]), retvals[0])
        elif name == "retvals":
            for i, (_d, r) in enumerate(v):
                while len(retvals) <= i:
                    retvals.append(Run())
                _run_from(r, retvals[i])
        elif name == "func_info":
            c.func_info = [tuple(_ints(rec, "func_info")) for _d, rec in v]
        elif name == "func_info_cnt":
            cnt = to_int(v)
            c.func_info = c.func_info[:cnt] + [(0, 0)] * (cnt - len(c.func_info))
        elif name == "btf_strings":
            raw = bytes(v) + b"\0"
            c.btf_strings = raw + bytes(256 - len(raw)) if len(raw) < 256 else raw[:256]
        elif name == "btf_types":
            words = _ints(v, "btf_types")
            end = words.index(0xdeadbeef) if 0xdeadbeef in words else len(words)  # BTF_END_RAW
            c.btf_types = words[:end]
        elif name == "prog_len":
            pass
        else:
            raise CExprError("unknown member .%s" % name)
    c.retvals = retvals
    # what test_verifier.c does before loading
    if c.fill_helper:
        gen = fill.GENERATORS.get(c.fill_helper)
        if gen is None:
            raise CExprError("no generator for %s" % c.fill_helper)
        seed = "%s/%d" % (file, index)
        declared = (c.retvals[0].retval, list(c.func_info))
        _built, retval, func_info = gen(declared[0], declared[1], seed)
        size = _built.size if callable(_built) else len(list(_insn.flatten(_built)))
        c.insns = GeneratedSlots(c.fill_helper, declared[0], declared[1], seed, size)
        c.retvals[0].retval = retval & 0xffffffff
        if func_info is not None:
            c.func_info = func_info
    else:
        c.insns = c.insns[:_probe_length(c.insns)] if c.insns else [_insn.Insn(0)]
    flags = BPF_F_TEST_RND_HI32
    if c.test_flags & F_LOAD_WITH_STRICT_ALIGNMENT:
        flags |= BPF_F_STRICT_ALIGNMENT
    if c.test_flags & F_NEEDS_EFFICIENT_UNALIGNED_ACCESS:
        flags |= BPF_F_ANY_ALIGNMENT
    if c.test_flags & ~3:
        flags |= c.test_flags
    c.prog_flags = flags
    c.unpriv = c.prog_type in (BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_CGROUP_SKB)
    return c


def load_file(tree, path, base=None):
    """(cases, failures, declared) of one test file; failures are [(index or None, reason)]."""
    macros, constants = base or _base(tree)
    fname = os.path.basename(path)
    pp = Preprocessor(keep=_BUILDERS, filename=fname)
    pp.macros = dict(macros)
    env = _Env(constants)
    try:
        toks = pp.run(_read(path), fname)
        chunks = _split_tests(toks)
    except (CppError, CExprError) as e:
        return [], [(None, "%s: %s" % (fname, e))], None
    cases, failures = [], []
    for i, chunk in enumerate(chunks):
        try:
            p = cexpr.Parser(chunk, env)
            init = p.init_list()
            if p.peek() is not None:
                raise CExprError("trailing tokens after the initializer")
            cases.append(_case(fname, i, init))
        except (CExprError, CppError, IndexError, ValueError, TypeError) as e:
            failures.append((i, "%s #%d (line %d): %s" % (fname, i, chunk[0].line, e)))
    return cases, failures, len(chunks)


def load_corpus(tree=None, files=None, cache=None):
    """Every case of ``<tree>/tools/testing/selftests/bpf/verifier/*.c`` as a :class:`Corpus` (a list of
    :class:`Case`, plus ``failures`` and ``declared`` counts). ``files``: only these file names or stems.
    ``FileNotFoundError`` when the tree has no verifier selftests.

    Parsing takes a few seconds, so the result is kept in ``~/.cache/bpfemu/corpus/`` under a key made of
    the tree's files (names, sizes, mtimes), this package's sources and the kernel BTF's identity;
    ``cache=False`` or ``BPFEMU_CORPUS_CACHE=0`` skip it."""
    tree = tree or default_tree()
    if not tree or not os.path.isdir(os.path.join(tree, VERIFIER_DIR)):
        raise FileNotFoundError("no kernel tree with %s (set BPFEMU_KERNEL_SRC or run "
                                "tools/fetch_kernel_source.sh)" % VERIFIER_DIR)
    if cache is None:
        cache = os.environ.get("BPFEMU_CORPUS_CACHE", "1") != "0"
    paths = sorted(glob.glob(os.path.join(tree, VERIFIER_DIR, "*.c")))
    corpus = _cached(tree, paths) if cache else None
    if corpus is None:
        corpus = _parse_all(tree, paths)
        if cache:
            _store(tree, paths, corpus)
    if files is not None:
        want = {f if f.endswith(".c") else f + ".c" for f in files}
        sub = Corpus(tree, [c for c in corpus if c.file in want],
                     [f for f in corpus.failures if f[0] in want],
                     {k: v for k, v in corpus.declared.items() if k in want})
        corpus = sub
    return corpus


def _parse_all(tree, paths):
    base = _base(tree)
    corpus = Corpus(tree)
    for path in paths:
        name = os.path.basename(path)
        cases, failures, declared = load_file(tree, path, base)
        corpus.extend(cases)
        corpus.failures.extend((name, i, why) for i, why in failures)
        corpus.declared[name] = declared
    return corpus


def _cache_key(tree, paths, headers=_HEADERS):
    h = hashlib.sha256()
    h.update(os.path.realpath(tree).encode())
    for p in list(paths) + [os.path.join(tree, x) for x in headers]:
        try:
            st = os.stat(p)
            h.update(("%s %d %d;" % (p, st.st_size, st.st_mtime_ns)).encode())
        except OSError:
            h.update(("%s missing;" % p).encode())
    here = os.path.dirname(os.path.abspath(__file__))
    for src in sorted(glob.glob(os.path.join(here, "*.py"))) + [_insn.__file__]:
        with open(src, "rb") as f:
            h.update(f.read())
    try:  # opened, not stat()ed: a parse that cannot read it (off Linux: no /sys) ports fewer cases
        with open(kbtf.path(), "rb") as f:
            st = os.fstat(f.fileno())
        h.update(("btf %d %d" % (st.st_size, st.st_mtime_ns)).encode())
    except OSError:
        h.update(b"no btf")
    return h.hexdigest()[:20]


def _cache_path(tree, paths, prefix="verifier", headers=_HEADERS):
    root = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(root, "bpfemu", "corpus", "%s-%s.pickle" % (prefix, _cache_key(tree, paths, headers)))


def _cached(tree, paths, prefix="verifier", headers=_HEADERS):
    try:
        with open(_cache_path(tree, paths, prefix, headers), "rb") as f:
            corpus = pickle.load(f)
    except (OSError, pickle.PickleError, EOFError, AttributeError, ImportError):
        return None
    return corpus if isinstance(corpus, Corpus) else None


def _store(tree, paths, corpus, prefix="verifier", headers=_HEADERS):
    path = _cache_path(tree, paths, prefix, headers)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        for old in glob.glob(os.path.join(os.path.dirname(path), "%s-*.pickle" % prefix)):
            os.unlink(old)
        tmp = path + ".%d.tmp" % os.getpid()
        with open(tmp, "wb") as f:
            pickle.dump(corpus, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError:
        pass


def tree_version(tree):
    """'6.1.192' from the tree's top Makefile, or None."""
    try:
        head = _read(os.path.join(tree, "Makefile"))[:2000]
    except OSError:
        return None
    parts = []
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL"):
        m = re.search(r"^%s = (\d+)" % key, head, re.M)
        if not m:
            return None
        parts.append(m.group(1))
    return ".".join(parts)


def declared_count(tree=None):
    """Tests the files hold by a plain count of top-level initializers (a cross-check of the parser)."""
    tree = tree or default_tree()
    n = 0
    for path in glob.glob(os.path.join(tree, VERIFIER_DIR, "*.c")):
        n += sum(1 for line in _read(path).splitlines() if line.startswith("{"))
    return n


if __name__ == "__main__":
    from .cli import main
    raise SystemExit(main())
