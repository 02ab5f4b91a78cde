"""The verifier selftests of newer kernels, ``tools/testing/selftests/bpf/progs/verifier_*.c`` (6.12), as data.

Since 6.3 most verifier tests are BPF C objects whose programs are naked functions holding inline assembly,
annotated with ``__description``, ``__success``/``__failure``, ``__msg``, ``__retval``, ``__flag`` ... (see
``progs/bpf_misc.h``), and run by ``test_loader.c`` through libbpf. Without a BPF C compiler we read them the
way we read the 6.1 corpus: our preprocessor (:mod:`.cpp`) expands the file with the tree's ``bpf_misc.h``
and ``bpf_helpers.h``; the annotations are the ``btf_decl_tag("comment:...")`` attributes they expand to; each
``asm volatile (...)`` has its operands (``__imm``, ``__imm_const``, ``__imm_addr``, ``__imm_insn``)
substituted and is assembled by our assembler (:mod:`.bpfasm`). What libbpf would do at load time we do
ourselves: the program type, attach type and flags from the ``SEC()`` name, the file's BTF-defined maps
created and their fds patched into the ``ld_imm64`` that name them, static subprograms appended after the
program with their calls relocated, kfunc calls resolved against the kernel BTF, a BTF with one ``FUNC`` per
function and the func_info that goes with it, a first load without log and a second one at log level 1 when
the first fails (the log test_loader matches on).

Programs written in C (not naked), using global variables, struct_ops, arenas or other things this reader does
not model are not ported; :func:`load_progs_corpus` lists each with the reason.

Cases are :class:`conformance.corpus.verifier.Case` objects (``file`` is ``verifier_xxx.c``, ``index`` the
program's position in the file, ``name`` its description) whose ``maps`` say which maps to create, so
:func:`conformance.corpus.runner.run_case` runs them like the 6.1 ones.
"""
import functools
import os
import re

from bpfemu.prog import insn as _insn

from . import bpfasm, btfenc, cexpr, kbtf
from .cexpr import CExprError, CInt, CStr, to_int
from .cpp import CppError, Preprocessor
from .verifier import _BUILDERS, _HEADERS, Case, Corpus, Run, _Env, _as_stored, _base, _read

__all__ = ["load_progs_corpus", "default_tree_612", "PROGS_DIR", "MapSpec", "RECORD_PATH"]

PROGS_DIR = "tools/testing/selftests/bpf/progs"
RECORD_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "verifier-progs-host-6.18.json")
POINTER_VALUE = 0xcafe4a

# the file's names we interpret ourselves instead of expanding bpf_helpers.h's definitions
_KEEP = {"SEC", "__uint", "__type", "__array", "__ulong", "__ksym", "__kptr", "__kptr_untrusted",
         "__percpu_kptr", "__weak", "__noinline", "__always_inline", "__hidden", "__used", "__naked",
         "__arg_ctx", "__arg_nonnull", "__arg_nullable", "__arg_trusted", "__arg_arena", "__uptr",
         "offsetof", "offsetofend", "container_of"}


def default_tree_612():
    """``$BPFEMU_KERNEL_SRC_6_12``, else ``~/.cache/bpfemu/linux-6.12``, else ``/work/ref/linux-6.12``."""
    for c in (os.environ.get("BPFEMU_KERNEL_SRC_6_12"), os.path.expanduser("~/.cache/bpfemu/linux-6.12"),
              "/work/ref/linux-6.12"):
        if c and os.path.isdir(os.path.join(c, PROGS_DIR)):
            return c
    return None


class NotPorted(Exception):
    pass


class MapSpec:
    """A BTF-defined map of the object: what BPF_MAP_CREATE gets. ``inner``: the template of a map-in-map."""

    def __init__(self, name, map_type, key_size, value_size, max_entries, map_flags=0, inner=None,
                 key_type=None, value_type=None, init=()):
        self.name, self.map_type, self.key_size, self.value_size = name, map_type, key_size, value_size
        self.max_entries, self.map_flags, self.inner = max_entries, map_flags, inner
        self.key_type, self.value_type = key_type, value_type  # CType or None (given as a size)
        self.btf_key_id = self.btf_value_id = 0              # set per case, in the case's BTF
        self.init = list(init)                               # [(key bytes, value bytes)] put after creation

    def with_btf(self, builder):
        """A copy whose key and value types are in ``builder``'s BTF (libbpf passes them to the kernel,
        except for the map types whose values are fds or have no BTF use)."""
        import copy
        import bpfemu.uapi as U
        m = copy.copy(self)
        no_btf = {getattr(U, "BPF_MAP_TYPE_" + n, -1) for n in (
            "PERF_EVENT_ARRAY", "CGROUP_ARRAY", "STACK_TRACE", "ARRAY_OF_MAPS", "HASH_OF_MAPS", "DEVMAP",
            "DEVMAP_HASH", "CPUMAP", "XSKMAP", "SOCKMAP", "SOCKHASH", "QUEUE", "STACK", "ARENA")}
        if self.map_type in no_btf:
            return m
        if self.key_type is not None:
            m.btf_key_id = builder.type_id(self.key_type)
        if self.value_type is not None:
            m.btf_value_id = builder.type_id(self.value_type)
        return m

    def __repr__(self):
        return "MapSpec(%s type %d %d/%d x%d flags %#x)" % (self.name, self.map_type, self.key_size,
                                                           self.value_size, self.max_entries, self.map_flags)


# -- libbpf's program sections ---------------------------------------------------------------------------------
def _sec(name):
    """(prog_type, expected_attach_type, prog_flags, (btf name, kind) to attach to or None) for SEC(name)."""
    import bpfemu.uapi as U
    P = lambda n: getattr(U, "BPF_PROG_TYPE_" + n)  # noqa: E731
    A = lambda n: getattr(U, "BPF_" + n)  # noqa: E731
    BPF_F_SLEEPABLE, BPF_F_XDP_HAS_FRAGS = 1 << 4, 1 << 5
    n = name.lstrip("?")
    head, _, tail = n.partition("/")
    sleep = 0
    if head.endswith(".s"):
        head, sleep = head[:-2], BPF_F_SLEEPABLE
    simple = {
        "socket": (P("SOCKET_FILTER"), 0), "tc": (P("SCHED_CLS"), 0), "classifier": (P("SCHED_CLS"), 0),
        "action": (P("SCHED_ACT"), 0), "tracepoint": (P("TRACEPOINT"), 0), "tp": (P("TRACEPOINT"), 0),
        "raw_tracepoint": (P("RAW_TRACEPOINT"), 0), "raw_tp": (P("RAW_TRACEPOINT"), 0),
        "raw_tracepoint.w": (P("RAW_TRACEPOINT_WRITABLE"), 0), "raw_tp.w": (P("RAW_TRACEPOINT_WRITABLE"), 0),
        "kprobe": (P("KPROBE"), 0), "kretprobe": (P("KPROBE"), 0), "uprobe": (P("KPROBE"), 0),
        "perf_event": (P("PERF_EVENT"), 0), "lwt_in": (P("LWT_IN"), 0), "lwt_out": (P("LWT_OUT"), 0),
        "lwt_xmit": (P("LWT_XMIT"), 0), "lwt_seg6local": (P("LWT_SEG6LOCAL"), 0),
        "sockops": (P("SOCK_OPS"), A("CGROUP_SOCK_OPS")), "sk_msg": (P("SK_MSG"), A("SK_MSG_VERDICT")),
        "flow_dissector": (P("FLOW_DISSECTOR"), A("FLOW_DISSECTOR")),
        "sk_lookup": (P("SK_LOOKUP"), A("SK_LOOKUP")), "netfilter": (P("NETFILTER"), A("NETFILTER")),
        "syscall": (P("SYSCALL"), 0), "xdp": (P("XDP"), A("XDP")), "xdp.frags": (P("XDP"), A("XDP")),
    }
    if head == "syscall":
        sleep = BPF_F_SLEEPABLE
    if head in ("tc", "tcx") and tail in ("ingress", "egress"):
        return P("SCHED_CLS"), A("TCX_" + tail.upper()), sleep, None
    if head == "sk_reuseport":
        return P("SK_REUSEPORT"), A("SK_REUSEPORT_SELECT_OR_MIGRATE" if tail == "migrate" else
                                    "SK_REUSEPORT_SELECT"), sleep, None
    if head == "sk_skb":
        at = {"stream_parser": "SK_SKB_STREAM_PARSER", "stream_verdict": "SK_SKB_STREAM_VERDICT",
              "verdict": "SK_SKB_VERDICT"}.get(tail)
        return P("SK_SKB"), A(at) if at else 0, sleep, None
    if head in simple:
        pt, at = simple[head]
        return pt, at, sleep | (BPF_F_XDP_HAS_FRAGS if head == "xdp.frags" else 0), None
    if head in ("fentry", "fexit", "fmod_ret"):
        at = {"fentry": "TRACE_FENTRY", "fexit": "TRACE_FEXIT", "fmod_ret": "MODIFY_RETURN"}[head]
        return P("TRACING"), A(at), sleep, (tail, "func")
    if head == "tp_btf":
        return P("TRACING"), A("TRACE_RAW_TP"), sleep, ("btf_trace_" + tail, "typedef")
    if head == "iter":
        return P("TRACING"), A("TRACE_ITER"), sleep, ("bpf_iter_" + tail, "func")
    if head in ("lsm", "lsm_cgroup"):
        return P("LSM"), A("LSM_MAC" if head == "lsm" else "LSM_CGROUP"), sleep, ("bpf_lsm_" + tail, "func")
    if head == "cgroup_skb":
        return P("CGROUP_SKB"), A("CGROUP_INET_" + tail.upper()), sleep, None
    if head == "cgroup":
        if tail == "skb":
            return P("CGROUP_SKB"), 0, sleep, None
        socks = {"sock": "INET_SOCK_CREATE", "sock_create": "INET_SOCK_CREATE",
                 "sock_release": "INET_SOCK_RELEASE", "post_bind4": "INET4_POST_BIND",
                 "post_bind6": "INET6_POST_BIND"}
        if tail in socks:
            return P("CGROUP_SOCK"), A("CGROUP_" + socks[tail]), sleep, None
        m = re.fullmatch(r"(bind|connect|sendmsg|recvmsg|getpeername|getsockname)(4|6|_unix)", tail)
        if m:
            fam = {"4": "INET4_", "6": "INET6_", "_unix": "UNIX_"}[m.group(2)]
            verb = m.group(1).upper()
            if m.group(1) in ("sendmsg", "recvmsg"):
                fam = {"INET4_": "UDP4_", "INET6_": "UDP6_", "UNIX_": "UNIX_"}[fam]
            return P("CGROUP_SOCK_ADDR"), A("CGROUP_" + fam + verb), sleep, None
        if tail == "sysctl":
            return P("CGROUP_SYSCTL"), A("CGROUP_SYSCTL"), sleep, None
        if tail in ("getsockopt", "setsockopt"):
            return P("CGROUP_SOCKOPT"), A("CGROUP_" + tail.upper()), sleep, None
        if tail == "dev":
            return P("CGROUP_DEVICE"), A("CGROUP_DEVICE"), sleep, None
    raise NotPorted("section %s: no libbpf program type known here" % name)


# -- C types: layouts and BTF --------------------------------------------------------------------------------
_INTS = {"char": 1, "short": 2, "int": 4, "long": 8, "_Bool": 1, "bool": 1}
_TAGS = {"__kptr": "kptr", "__kptr_untrusted": "kptr_untrusted", "__percpu_kptr": "percpu_kptr",
         "__uptr": "uptr"}


class CType:
    """A C type: kind 'int' (name, size, signed), 'struct'/'union' (name), 'ptr' (target, tags), 'array'
    (elem, n), 'void'."""

    def __init__(self, kind, name=None, size=0, signed=False, target=None, n=0, tags=()):
        self.kind, self.name, self.size, self.signed = kind, name, size, signed
        self.target, self.n, self.tags = target, n, tuple(tags)

    def key(self):
        t = self.target.key() if self.target is not None else None
        return (self.kind, self.name, self.size, self.signed, t, self.n, self.tags)


class _Layouts:
    """The file's own structs and unions: member types, offsets and sizes; other structs come from the
    kernel BTF (their size only)."""

    def __init__(self):
        self.structs = {}  # name -> (kind, size, align, [(member, CType, offset)])

    def parse_type(self, toks):
        """CType of type tokens (without declarator name); pointer tags (__kptr ...) kept."""
        toks = _drop_attributes(toks)
        stars = sum(1 for t in toks if t.text == "*")
        tags = [(_TAGS[t.text]) for t in toks if t.text in _TAGS]
        words = [t.text for t in toks if t.text not in ("const", "volatile", "*") and t.text not in _TAGS
                 and t.text not in ("static", "extern", "__always_inline", "inline", "__noinline", "__naked",
                                    "__weak", "__hidden", "__used")]
        if words and words[0] in ("struct", "union"):
            base = CType(words[0], name=words[1])
        elif words and words[0] == "enum":
            base = CType("int", name="int", size=4, signed=True)
        elif words == ["void"]:
            base = CType("void")
        elif words and words[0] in cexpr._FIXED:
            _k, bits, uns = cexpr._FIXED[words[0]]
            base = CType("int", name=words[0], size=bits // 8, signed=not uns)
        elif words and set(words) <= set(_INTS) | {"unsigned", "signed", "long"}:
            size = 8 if "long" in words else 2 if "short" in words else 1 if "char" in words else 4
            base = CType("int", name=" ".join(words), size=size, signed="unsigned" not in words)
        else:
            raise NotPorted("type %s" % " ".join(words))
        for i in range(stars):
            base = CType("ptr", target=base, tags=tags if i == 0 else ())
        return base

    def sizeof(self, ct):
        """(size, align) of a CType."""
        if ct.kind == "int":
            return ct.size, ct.size
        if ct.kind == "ptr":
            return 8, 8
        if ct.kind == "array":
            size, align = self.sizeof(ct.target)
            return size * ct.n, align
        if ct.kind == "void":
            return 1, 1
        if ct.name in self.structs:
            _k, size, align, _m = self.structs[ct.name]
            return size, align
        try:
            size, _off = kbtf.layout(ct.kind, ct.name)
        except kbtf.BTFError:
            raise NotPorted("unknown %s %s" % (ct.kind, ct.name))
        return size, min(size & -size, 8) or 1

    def type_size(self, toks):
        """(size, align) of a type given as tokens, arrays ('char[64]') included."""
        return self.sizeof(self.declared_type(toks, named=False)[1])

    def declared_type(self, toks, env=None, named=True):
        """(name, CType) of 'type name[N]...' (named) or 'type[N]' (not named)."""
        toks = list(toks)
        dims = []
        while toks and toks[-1].text == "]":
            j = max(i for i, t in enumerate(toks) if t.text == "[")
            n = cexpr.Parser(toks[j + 1:-1], env).conditional() if env else CInt(int(toks[j + 1].text, 0))
            dims.insert(0, to_int(n))
            toks = toks[:j]
        name = None
        if named:
            toks = _drop_attributes(toks)
            name = toks[-1].text
            toks = toks[:-1]
        ct = self.parse_type(toks)
        for n in reversed(dims):
            ct = CType("array", target=ct, n=n)
        return name, ct

    def define(self, name, body, kind="struct", env=None):
        """Lay out ``struct name { body }`` (body: the member tokens)."""
        off = size = 0
        align = 1
        members = []
        for decl in _split(body, ";"):
            if not decl:
                continue
            if ":" in [t.text for t in decl]:
                raise NotPorted("bit fields in struct %s" % name)
            mname, ct = self.declared_type(decl, env)
            msize, malign = self.sizeof(ct)
            if kind == "union":
                members.append((mname, ct, 0))
                size = max(size, msize)
            else:
                off = (off + malign - 1) // malign * malign
                members.append((mname, ct, off))
                off += msize
                size = off
            align = max(align, malign)
        size = (size + align - 1) // align * align
        self.structs[name] = (kind, size, align, members)

    def offsetof(self, name, path):
        _k, size, _a, members = self.structs[name]
        off, ct = 0, CType("struct", name=name)
        for what, x in path:
            if what == "field":
                if ct.kind not in ("struct", "union") or ct.name not in self.structs:
                    raise CExprError("member path through %s" % ct.kind)
                for mname, mct, moff in self.structs[ct.name][3]:
                    if mname == x:
                        off, ct = off + moff, mct
                        break
                else:
                    raise KeyError(x)
            else:
                if ct.kind != "array":
                    raise CExprError("index into a non-array")
                ct = ct.target
                off += x * self.sizeof(ct)[0]
        return off, self.sizeof(ct)[0]


class _BtfBuilder:
    """A BTF type section for the program's functions and the maps' key and value types."""

    def __init__(self, layouts):
        self.layouts = layouts
        self.strings = btfenc._Strings()
        self.words = []
        self.ids = {}
        self.next_id = 1

    def _add(self, words, key=None):
        if key is not None and key in self.ids:
            return self.ids[key]
        tid = self.next_id
        self.next_id += 1
        self.words.extend(words)
        if key is not None:
            self.ids[key] = tid
        return tid

    def type_id(self, ct):
        if ct.kind == "void":
            return 0
        key = ct.key()
        if key in self.ids:
            return self.ids[key]
        if ct.kind == "int":
            enc = 1 if ct.signed else 0  # BTF_INT_SIGNED; clang marks a (signed) char the same way
            return self._add([self.strings(ct.name), 1 << 24, ct.size, (enc << 24) | (ct.size * 8)], key)
        if ct.kind == "ptr":
            target = ct.target
            tid = self.type_id(target)
            for tag in reversed(ct.tags):
                tid = self._add([self.strings(tag), 18 << 24, tid], ("tag", tag, tid))
            return self._add([0, 2 << 24, tid], key)
        if ct.kind == "array":
            elem = self.type_id(ct.target)
            index = self.type_id(CType("int", name="int", size=4, signed=True))
            return self._add([0, 3 << 24, 0, elem, index, ct.n], key)
        # struct / union
        kind = 4 if ct.kind == "struct" else 5
        if ct.name in self.layouts.structs:
            _k, size, _a, members = self.layouts.structs[ct.name]
            tid = self.next_id  # reserve: members may refer back through pointers
            self.next_id += 1
            self.ids[key] = tid
            at = len(self.words)
            self.words.extend([self.strings(ct.name), (kind << 24) | len(members), size])
            body = []
            for mname, mct, moff in members:
                body.extend([self.strings(mname), self.type_id(mct), moff * 8])
            self.words[at + 3:at + 3] = body
            return tid
        return self._kernel_struct(ct, key, kind)

    def _kernel_struct(self, ct, key, kind):
        """A struct of the kernel's BTF copied with its members (what the object's BTF would hold from the
        uapi headers); pointers in it become ``void *`` so the copy stays small."""
        try:
            b = kbtf.btf()
            ktid = b.by_name.get((ct.name, ct.kind))
        except kbtf.BTFError:
            ktid = None
        if not ktid:
            size, _a = self.layouts.sizeof(ct)
            return self._add([self.strings(ct.name), kind << 24, size], key)
        return self._copy(b, ktid, key)

    def _copy(self, b, ktid, key=None):
        kt = b.types[ktid]
        k = kt["kind"]
        ckey = key or ("kernel", ktid)
        if ckey in self.ids:
            return self.ids[ckey]
        if k in ("typedef", "const", "volatile", "restrict", "type_tag"):
            return self._copy(b, kt["type"]) if kt["type"] else 0
        if k == "int":
            return self._add([self.strings(kt["name"]), 1 << 24, kt["size"],
                              ((1 if kt.get("signed") else 0) << 24) | kt.get("bits", kt["size"] * 8)], ckey)
        if k in ("enum", "enum64"):
            return self._add([self.strings(kt["name"] or "int"), 1 << 24, kt["size"], kt["size"] * 8], ckey)
        if k == "ptr":
            return self._add([0, 2 << 24, 0], ckey)
        if k == "array":
            elem = self._copy(b, kt["elem"])
            index = self.type_id(CType("int", name="int", size=4, signed=True))
            return self._add([0, 3 << 24, 0, elem, index, kt["nelems"]], ckey)
        if k in ("struct", "union"):
            tid = self.next_id
            self.next_id += 1
            self.ids[ckey] = tid
            at = len(self.words)
            kind = 4 if k == "struct" else 5
            members = kt["members"]
            self.words.extend([self.strings(kt["name"]), (kind << 24) | len(members), kt["size"]])
            body = []
            for mname, mt, bitoff in members:
                body.extend([self.strings(mname), self._copy(b, mt), bitoff])
            self.words[at + 3:at + 3] = body
            return tid
        raise NotPorted("kernel type kind %s in a map type" % k)

    def func(self, name, ret, params, linkage):
        proto = self._add([0, (13 << 24) | len(params), self.type_id(ret)]
                          + [x for pname, pct in params for x in (self.strings(pname), self.type_id(pct))])
        return self._add([self.strings(name), (12 << 24) | linkage, proto])

    def raw(self):
        return list(self.words), bytes(self.strings.buf)


def _drop_attributes(toks):
    """The tokens without ``__attribute__((...))`` and ``SEC(...)`` groups."""
    out, i = [], 0
    while i < len(toks):
        if toks[i].text in ("__attribute__", "__attribute", "SEC") and i + 1 < len(toks) and toks[i + 1].text == "(":
            j = _match(toks, i + 1)
            i = j + 1
            continue
        out.append(toks[i])
        i += 1
    return out


def _match(toks, i):
    """Index of the bracket closing the one at toks[i]."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    open_ = toks[i].text
    close = pairs[open_]
    depth = 0
    for j in range(i, len(toks)):
        if toks[j].text == open_:
            depth += 1
        elif toks[j].text == close:
            depth -= 1
            if depth == 0:
                return j
    raise CppError("unbalanced %s at line %d" % (open_, toks[i].line))


def _split(toks, sep):
    """Split tokens at top-level ``sep``."""
    out, cur, depth = [], [], 0
    for t in toks:
        if t.text in "([{" and t.kind == "op":
            depth += 1
        elif t.text in ")]}" and t.kind == "op":
            depth -= 1
        if t.text == sep and depth == 0:
            out.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        out.append(cur)
    return out


def _declarations(toks):
    """Top-level declarations: lists of tokens ending before ';', or function definitions (with body)."""
    out, cur, i, n = [], [], 0, len(toks)
    while i < n:
        t = toks[i]
        if t.text in ("(", "[", "{") and t.kind == "op":
            j = _match(toks, i)
            cur.extend(toks[i:j + 1])
            i = j + 1
            if t.text == "{" and len(cur) > 1 and _is_function(cur):
                out.append(cur)
                cur = []
            continue
        if t.text == ";" and t.kind == "op":
            if cur:
                out.append(cur)
            cur = []
            i += 1
            continue
        cur.append(t)
        i += 1
    if cur:
        out.append(cur)
    return out


def _is_function(decl):
    """A declaration ending in '( ... ) { ... }' that is not a struct/enum/initializer."""
    if decl[-1].text != "}":
        return False
    try:
        j = _body_start(decl)
    except NotPorted:
        return False
    return j > 0 and decl[j - 1].text == ")" and "=" not in [t.text for t in decl[:j]] and \
        _match(decl, j) == len(decl) - 1


# -- one file ---------------------------------------------------------------------------------------------------
class _ProgEnv(_Env):
    """Expressions of a progs file: the 6.1 environment plus the file's structs and enum constants."""

    def __init__(self, constants, layouts):
        _Env.__init__(self, constants)
        self.layouts = layouts

    def _layout(self, ctype):
        if ctype[0] in ("struct", "union") and ctype[1] in self.layouts.structs:
            name = ctype[1]
            return self.layouts.structs[name][1], (lambda path: self.layouts.offsetof(name, path))
        return _Env._layout(self, ctype)


def _annotations(toks):
    """The ``btf_decl_tag("comment:...")`` strings and the SEC() name among a declaration's tokens."""
    tags, sec, i = [], None, 0
    while i < len(toks):
        t = toks[i]
        if t.text == "btf_decl_tag" and i + 2 < len(toks) and toks[i + 2].kind == "str":
            k = i + 2
            s = b""
            while toks[k].kind == "str":
                s += cexpr.unescape(toks[k].text[1:-1])
                k += 1
            tags.append(s.decode())
            i = k
            continue
        if t.text == "SEC" and i + 2 < len(toks) and toks[i + 2].kind == "str":
            sec = cexpr.unescape(toks[i + 2].text[1:-1]).decode()
            i += 3
            continue
        i += 1
    return tags, sec


def _asm_statements(body, fname):
    """[(template text, [(name, constraint, expr tokens)])] of the asm statements of a function body."""
    inner = body[1:-1]
    stmts = []
    for st in _split(inner, ";"):
        if not st:
            continue
        if st[0].text not in ("asm", "__asm__", "__asm") or len(st) < 3:
            raise NotPorted("%s is written in C (needs a BPF C compiler)" % fname)
        k = 1
        while st[k].text in ("volatile", "__volatile__", "goto"):
            k += 1
        if st[k].text != "(":
            raise NotPorted("%s: asm without operands" % fname)
        end = _match(st, k)
        parts = _split(st[k + 1:end], ":")
        text = b"".join(cexpr.unescape(t.text[1:-1]) for t in parts[0] if t.kind == "str").decode()
        operands = []
        for group in parts[1:3]:
            for op in _split(group, ","):
                if not op:
                    continue
                if op[0].text != "[":
                    raise NotPorted("%s: an asm operand without a name" % fname)
                name = op[1].text
                constraint = cexpr.unescape(op[3].text[1:-1]).decode()
                expr = op[5:-1]
                operands.append((name, constraint, expr))
        stmts.append((text, operands))
    return stmts


class _File:
    def __init__(self, tree, path, base):
        self.tree, self.path = tree, path
        self.name = os.path.basename(path)
        self.macros, self.constants = base
        self.layouts = _Layouts()
        self.env = _ProgEnv(self.constants, self.layouts)
        self.maps = {}
        self.funcs = {}  # name -> (decl tokens, body, static)
        self.kfuncs = set()
        self.globals = set()
        self.programs = []  # (name, sec, tags)
        self.bad_maps = {}  # name -> why it is not ported


def _parse_file(tree, path, base, helper_ids):
    f = _File(tree, path, base)
    pp = Preprocessor(keep=set(_BUILDERS) | _KEEP, filename=f.name)
    pp.macros = dict(f.macros)
    toks = pp.run(_read(path), f.name)
    f.pp = pp
    for decl in _declarations(toks):
        texts = [t.text for t in decl]
        if texts[0] == "struct" and len(decl) > 2 and decl[1].kind == "id" and decl[2].text == "{" and \
                decl[-1].text == "}":
            f.layouts.define(decl[1].text, decl[3:-1], env=f.env)
            continue
        if texts[0] == "union" and len(decl) > 2 and decl[2].text == "{" and decl[-1].text == "}":
            f.layouts.define(decl[1].text, decl[3:-1], kind="union", env=f.env)
            continue
        if texts[0] == "enum" and "{" in texts:
            from .verifier import _enums_of
            _enums_of(decl, f.constants)
            continue
        if texts[0] in ("typedef",):
            continue
        if "extern" in texts:
            if "__ksym" in texts:
                f.kfuncs.add(_decl_name(decl))
            continue
        tags, sec = _annotations(decl)
        if sec == ".maps":
            try:
                f.maps[_decl_name(decl)] = _map_spec(f, decl)
            except (NotPorted, CExprError, KeyError, IndexError) as e:
                f.bad_maps[_decl_name(decl)] = str(e)
            continue
        if sec == "license":
            continue
        if _is_function(decl):
            body_at = _body_start(decl)
            head = decl[:body_at]
            name = _func_name(head)
            f.funcs[name] = (head, decl[body_at:], "static" in texts)
            if sec is not None:
                f.programs.append((name, sec, tags))
            continue
        if sec is not None and sec not in (".maps", "license"):
            f.globals.add(_decl_name(decl))
            continue
        f.globals.add(_decl_name(decl))
    f.helper_ids = helper_ids
    return f


def _body_start(decl):
    """Index of the '{' that opens a function body: the first top-level one, after the parameter list."""
    depth = 0
    for i, t in enumerate(decl):
        if t.text in ("(", "[") and t.kind == "op":
            depth += 1
        elif t.text in (")", "]") and t.kind == "op":
            depth -= 1
        elif t.text == "{" and depth == 0:
            return i
    raise NotPorted("no function body")


def _decl_name(decl):
    toks = _drop_attributes([t for t in decl])
    # 'NAME SEC(...)' / 'type NAME = ...' / 'type NAME[...]' / 'type NAME(args)'
    names = []
    depth = 0
    for t in toks:
        if t.text in "([{" and t.kind == "op":
            depth += 1
        elif t.text in ")]}" and t.kind == "op":
            depth -= 1
        elif depth == 0 and t.text == "=":
            break
        elif depth == 0 and t.kind == "id" and t.text not in ("SEC",) and not t.text.startswith("__"):
            names.append(t.text)
    return names[-1] if names else "?"


def _signature(f, head):
    """(return CType, [(param name, CType)]) of a function head."""
    toks = _drop_attributes(head)
    lp = max(i for i, t in enumerate(toks) if t.text == "(" and _match(toks, i) == len(toks) - 1)
    ret = f.layouts.parse_type([t for t in toks[:lp - 1] if t.text not in _KEEP])
    params = []
    inner = toks[lp + 1:-1]
    if [t.text for t in inner] not in ([], ["void"]):
        for p in _split(inner, ","):
            name, ct = f.layouts.declared_type([t for t in p if t.text not in _KEEP], f.env)
            params.append((name, ct))
    return ret, params


def _func_name(head):
    toks = _drop_attributes(head)
    for i in range(len(toks) - 1, 0, -1):
        if toks[i].text == "(" and toks[i - 1].kind == "id":
            # the parameter list is the last top-level '(' group
            if _match(toks, i) == len(toks) - 1:
                return toks[i - 1].text
    raise NotPorted("cannot find the function name")


def _map_spec(f, decl):
    import bpfemu.uapi as U
    if "=" in [t.text for t in decl]:
        raise NotPorted("initial values (programs or maps put in the map at load)")
    lb = [i for i, t in enumerate(decl) if t.text == "{"][0]
    body = decl[lb + 1:_match(decl, lb)]
    fields = {}
    for member in _split(body, ";"):
        if not member:
            continue
        what = member[0].text
        args = _split(member[2:-1], ",")
        key = args[0][0].text
        if what in ("__uint", "__ulong"):
            fields[key] = to_int(cexpr.Parser(args[1], f.env).conditional())
        elif what == "__type":
            _n, ct = f.layouts.declared_type(args[1], f.env, named=False)
            fields[key + "_type"] = ct
            fields[key] = f.layouts.sizeof(ct)[0]
        elif what == "__array":
            inner_decl = args[1]
            if not [i for i, t in enumerate(inner_decl) if t.text == "{"]:
                raise NotPorted("__array of programs")
            fields["inner"] = _map_spec(f, inner_decl)
        else:
            raise NotPorted("map member %s" % what)
    mt = fields["type"]
    key = fields.get("key", fields.get("key_size", 0))
    value = fields.get("value", fields.get("value_size", 0))
    if "inner" in fields or mt == U.BPF_MAP_TYPE_PROG_ARRAY:
        value = 4
    if mt in (U.BPF_MAP_TYPE_STRUCT_OPS, U.BPF_MAP_TYPE_ARENA):
        raise NotPorted("map type %d" % mt)
    return MapSpec(_decl_name(decl), mt, key, value, fields.get("max_entries", 0), fields.get("map_flags", 0),
                   fields.get("inner"), fields.get("key_type"), fields.get("value_type"))


def _substitute(text, operands, f, counter):
    """The asm template with %[name], %= and %% replaced; returns (text, symbols)."""
    values = {}
    for name, constraint, expr in operands:
        values[name] = _operand_value(f, constraint, expr)
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c != "%":
            out.append(c)
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt == "%":
            out.append("%")
            i += 2
        elif nxt == "=":
            out.append(str(counter))
            i += 2
        elif nxt == "[":
            j = text.index("]", i)
            name = text[i + 2:j]
            if name not in values:
                raise NotPorted("asm operand %s not given" % name)
            out.append(values[name])
            i = j + 1
        else:
            raise NotPorted("asm operand syntax %%%s" % nxt)
    return "".join(out)


def _operand_value(f, constraint, expr):
    """The text an "i" operand prints as: a number, or a symbol name for the assembler to resolve."""
    texts = [t.text for t in expr]
    if constraint == "r":
        raise NotPorted("a register operand (__imm_ptr): the compiler materializes the address")
    if constraint != "i":
        raise NotPorted("asm operand constraint %r" % constraint)
    if texts and texts[0] == "&" and len(texts) == 2:
        return texts[1]  # an address: a map, a function or a variable
    if len(texts) == 1 and expr[0].kind == "id":
        name = texts[0]
        if name in f.helper_ids:
            return str(f.helper_ids[name])
        if name in f.kfuncs or name in f.funcs or name in f.maps or name in f.bad_maps or _btf_func(name):
            return name
    if texts[:6] == ["*", "(", "long", "*", ")", "&"]:
        v = cexpr.Parser(expr[6:], f.env).conditional()
        if isinstance(v, _insn.Insn):
            return str(int.from_bytes(_as_stored(v).pack(), "little", signed=True))
        raise NotPorted("__imm_insn of %r" % (v,))
    v = cexpr.Parser(expr, f.env).conditional()
    if isinstance(v, CStr):
        raise NotPorted("string operand")
    return str(to_int(v))


def _assemble(f, fname, counter_box):
    head, body, _static = f.funcs[fname]
    text_parts = []
    for tmpl, operands in _asm_statements(body, fname):
        text_parts.append(_substitute(tmpl, operands, f, counter_box[0]))
        counter_box[0] += 1
    text = "\n".join(text_parts)

    def resolve(name, use):
        if use == "call":
            if name in f.funcs:
                return (_insn.BPF_PSEUDO_CALL, 0, ("call", name))
            if name in f.kfuncs:
                return (_insn.BPF_PSEUDO_KFUNC_CALL, 0, ("kfunc", name))
            if name in f.helper_ids:
                return f.helper_ids[name]
        if name in f.bad_maps:
            raise NotPorted("map %s: %s" % (name, f.bad_maps[name]))
        if use == "call" and _btf_func(name):
            return (_insn.BPF_PSEUDO_KFUNC_CALL, 0, ("kfunc", name))
        if use == "ld_imm64":
            if name in f.maps:
                return (_insn.BPF_PSEUDO_MAP_FD, 0, ("map", name))
            if name in f.funcs:
                return (_insn.BPF_PSEUDO_FUNC, 0, ("func", name))
            if name in f.globals:
                raise NotPorted("uses global variable %s (needs .data/.bss maps)" % name)
        raise NotPorted("unresolved symbol %s" % name)
    try:
        return bpfasm.assemble(text, resolve)
    except bpfasm.AsmError as e:
        raise NotPorted("%s: asm: %s" % (fname, e))


def _link(f, main):
    """The program with the static subprograms it calls appended (libbpf's order: as first met), calls and
    function pointers relocated; returns (slots, [(insn_off, func name)], [(slot, map name)], kfuncs)."""
    counter = [0]
    order = [main]
    code = {}
    at = {}
    pos = 0
    i = 0
    while i < len(order):
        name = order[i]
        prog = _assemble(f, name, counter)
        code[name] = prog
        at[name] = pos
        pos += len(prog.slots)
        for _slot, (kind, target) in prog.relocs:
            if kind in ("call", "func") and target not in order:
                if target not in f.funcs:
                    raise NotPorted("call of %s" % target)
                order.append(target)
        i += 1
    slots, map_slots, kfunc_slots = [], [], []
    for name in order:
        prog = code[name]
        base = at[name]
        s = list(prog.slots)
        for slot, (kind, target) in prog.relocs:
            if kind in ("call", "func"):
                rel = at[target] - (base + slot + 1)
                s[slot] = s[slot]._replace(imm=rel)
            elif kind == "map":
                map_slots.append((base + slot, target))
            elif kind == "kfunc":
                kfunc_slots.append((target, base + slot))
        slots.extend(s)
    funcs = [(at[n], n) for n in order]
    return slots, funcs, map_slots, kfunc_slots


def _btf_func(name):
    try:
        return kbtf.find_id(name, "func")
    except kbtf.BTFError:
        return 0


def _test_val():
    # struct test_val { .index = (6 + 1) * sizeof(int), .foo[6] = 0xabcdef12 } (48 bytes)
    v = bytearray(48)
    v[0:4] = (28).to_bytes(4, "little")
    v[28:32] = (0xabcdef12).to_bytes(4, "little")
    return bytes(v)


# prog_tests/verifier.c fills these maps before the test runs (its pre_execution callbacks)
_MAP_INIT = {("verifier_array_access.c", "map_array_ro"): [((0).to_bytes(4, "little"), _test_val())],
             ("verifier_value_ptr_arith.c", "map_array_48b"): [((0).to_bytes(4, "little"), _test_val())]}


def _case(f, index, name, sec, tags, flags_base):
    import bpfemu.uapi as U
    prog_type, attach, sec_flags, attach_btf = _sec(sec)
    desc = name
    priv = {"fail": False, "msgs": [], "retval": None}
    unpriv = {"fail": None, "msgs": [], "retval": None}
    modes = set()
    flags = flags_base | sec_flags
    log_level = 0
    for t in tags:
        if not t.startswith("comment:"):
            continue
        t = t[len("comment:"):]
        key, _, val = t.partition("=")
        if key in ("test_expect_msg", "test_expect_msg_unpriv", "test_expect_xlated", "test_expect_xlated_unpriv",
                   "test_jited", "test_jited_unpriv"):
            val = val.split("=", 1)[1] if "=" in val else val  # drop the __COUNTER__
        if key == "test_description":
            desc = val
        elif key == "test_expect_failure":
            priv["fail"] = True
            modes.add("priv")
        elif key == "test_expect_success":
            priv["fail"] = False
            modes.add("priv")
        elif key == "test_expect_failure_unpriv":
            unpriv["fail"] = True
            modes.add("unpriv")
        elif key == "test_expect_success_unpriv":
            unpriv["fail"] = False
            modes.add("unpriv")
        elif key == "test_expect_msg":
            priv["msgs"].append(val)
            modes.add("priv")
        elif key == "test_expect_msg_unpriv":
            unpriv["msgs"].append(val)
            modes.add("unpriv")
        elif key == "test_retval":
            priv["retval"] = _retval(val, f)
            modes.add("priv")
        elif key == "test_retval_unpriv":
            unpriv["retval"] = _retval(val, f)
            modes.add("unpriv")
        elif key == "test_log_level":
            log_level = int(val, 0)
        elif key == "test_prog_flags":
            flags |= _flag(val, f)
        elif key in ("test_auxiliary", "test_auxiliary_unpriv"):
            raise NotPorted("auxiliary program")
        elif key == "test_arch":
            if val != "X86_64":
                raise NotPorted("arch %s only" % val)
        elif key == "test_btf_path":
            raise NotPorted("custom BTF path")
    if not modes:
        modes.add("priv")
    slots, funcs, map_slots, kfunc_slots = _link(f, name)
    for mname in {m for _s, m in map_slots}:
        if mname not in f.maps:
            raise NotPorted("map %s not ported" % mname)
    builder = _BtfBuilder(f.layouts)
    func_info = []
    for off, fname in funcs:
        head, _body, static = f.funcs[fname]
        ret, params = _signature(f, head)
        func_info.append((off, builder.func(fname, ret, params, 0 if static else 1)))
    used = sorted({m for _s, m in map_slots})
    maps = {n: f.maps[n].with_btf(builder) for n in used}
    for n, m in maps.items():
        m.init = list(_MAP_INIT.get((f.name, n), ()))
    btf_types, btf_strings = builder.raw()
    c = Case(file=f.name, index=index, name=desc, insns=slots)
    c.prog_type = prog_type
    c.expected_attach_type = attach
    c.prog_flags = flags
    c.test_flags = 0
    c.kfunc_fixups = kfunc_slots
    c.maps = maps
    c.map_slots = map_slots
    c.attach_btf = attach_btf
    c.prog_name = name[:15]
    c.log_level = log_level
    c.btf_types, c.btf_strings, c.func_info = btf_types, btf_strings, func_info
    c.result = "REJECT" if priv["fail"] else "ACCEPT"
    ufail = priv["fail"] if unpriv["fail"] is None else unpriv["fail"]
    c.result_unpriv = "REJECT" if ufail else "ACCEPT"
    c.errstr = "\t".join(priv["msgs"]) or None
    c.errstr_unpriv = "\t".join(unpriv["msgs"] or priv["msgs"]) or None
    c.msg_regex = True
    run = Run()
    executes = priv["retval"] is not None
    run.retval = (priv["retval"] or 0) & 0xffffffff
    urv = unpriv["retval"] if unpriv["retval"] is not None else priv["retval"]
    run.retval_unpriv = (urv or 0) & 0xffffffff
    c.retvals = [run]
    c.runs = 1 if executes or unpriv["retval"] is not None else -1
    c.syscall_run = prog_type == U.BPF_PROG_TYPE_SYSCALL
    c.unpriv = "unpriv" in modes
    c.priv = "priv" in modes
    return c


def _expand_eval(f, text):
    return to_int(cexpr.Parser(f.pp.expand(_toks(text)), f.env).conditional())


def _retval(val, f):
    v = val.strip()
    if v == "_INT_MIN":
        return -2 ** 31
    m = {"POINTER_VALUE": POINTER_VALUE, "TEST_DATA_LEN": 64}
    if v in m:
        return m[v]
    try:
        return int(v, 0)
    except ValueError:
        return _expand_eval(f, v)


def _flag(val, f):
    return _expand_eval(f, val.strip())


def _toks(text):
    from .cpp import tokenize
    return [t for t in tokenize(text) if t.kind != "nl"]


@functools.lru_cache(maxsize=2)
def _base612(tree):
    """The 6.1-style base (uapi #defines and enums of this tree) plus bpf_misc.h and bpf_helpers.h macros."""
    macros, constants = _base(tree)
    pp = Preprocessor(keep=set(_BUILDERS) | _KEEP)
    pp.macros = dict(macros)
    for h in ("tools/include/linux/filter.h", "tools/lib/bpf/bpf_helpers.h", os.path.join(PROGS_DIR, "bpf_misc.h")):
        p = os.path.join(tree, h)
        if os.path.exists(p):
            pp.harvest(_read(p), p)
    for k, v in (("__TARGET_ARCH_x86", "1"), ("__clang_major__", "19"), ("__clang__", "1"), ("__bpf__", "1"),
                 ("__BPF__", "1"), ("__BPF_FEATURE_ADDR_SPACE_CAST", "1"), ("ENABLE_ATOMICS_TESTS", "1"),
                 ("__BPF_CPU_VERSION__", "4"), ("__BPF_FEATURE_MAY_GOTO", "1")):
        pp.define_text("%s %s" % (k, v))
    for k in ("__x86_64", "__x86_64__"):
        pp.macros.pop(k, None)
    constants = dict(constants)
    helper_ids = {}
    for n, v in constants.items():
        if n.startswith("BPF_FUNC_"):
            helper_ids["bpf_" + n[len("BPF_FUNC_"):]] = to_int(v)
    return pp.macros, constants, helper_ids


_PROGS_HEADERS = _HEADERS + (
    "tools/include/linux/filter.h", "tools/lib/bpf/bpf_helpers.h", PROGS_DIR + "/bpf_misc.h",
    "tools/testing/selftests/bpf/prog_tests/verifier.c")


def load_progs_corpus(tree=None, files=None, cache=None):
    """Every program of ``<tree>/tools/testing/selftests/bpf/progs/verifier_*.c`` that this reader can port,
    as a :class:`Corpus` of :class:`Case` (ids ``verifier_xxx/N``); ``failures`` lists the others
    ``(file, index or None, reason)``; ``declared`` counts the SEC() programs of each file. Cached like
    :func:`conformance.corpus.verifier.load_corpus`."""
    import glob
    from .verifier import _cached, _store
    tree = tree or default_tree_612()
    if not tree:
        raise FileNotFoundError("no 6.12 kernel tree with %s (BPFEMU_KERNEL_SRC_6_12)" % PROGS_DIR)
    if cache is None:
        cache = os.environ.get("BPFEMU_CORPUS_CACHE", "1") != "0"
    paths = sorted(glob.glob(os.path.join(tree, PROGS_DIR, "verifier_*.c")))
    corpus = _cached(tree, paths, "progs", _PROGS_HEADERS) if cache else None
    if corpus is None:
        corpus = _parse_all(tree, paths)
        if cache:
            _store(tree, paths, corpus, "progs", _PROGS_HEADERS)
    if files is not None:
        want = {f if f.endswith(".c") else f + ".c" for f in files}
        corpus = Corpus(tree, [c for c in corpus if c.file in want], [x for x in corpus.failures if x[0] in want],
                        {k: v for k, v in corpus.declared.items() if k in want})
    return corpus


def _parse_all(tree, paths):
    macros, constants, helper_ids = _base612(tree)
    corpus = Corpus(tree)
    flags_base = 1 << 2  # testing_prog_flags(): BPF_F_TEST_RND_HI32 ...
    flags_base |= 1 << 7  # ... and BPF_F_TEST_REG_INVARIANTS, both known to 6.18
    for path in paths:
        name = os.path.basename(path)
        try:
            f = _parse_file(tree, path, (dict(macros), dict(constants)), helper_ids)
        except (CppError, CExprError, NotPorted, ValueError, IndexError, KeyError) as e:
            corpus.failures.append((name, None, "%s: %s" % (name, e)))
            corpus.declared[name] = None
            continue
        corpus.declared[name] = len(f.programs)
        for i, (fname, sec, tags) in enumerate(f.programs):
            try:
                corpus.append(_case(f, i, fname, sec, tags, flags_base))
            except (NotPorted, CExprError, CppError, KeyError, ValueError, IndexError) as e:
                corpus.failures.append((name, i, "%s: %s" % (fname, e)))
    return corpus
