"""The kernel's raw BTF selftests (tools/testing/selftests/bpf/prog_tests/btf.c), read at run time.

Each of the selftest's ``raw_tests[]`` is a small BTF blob written as C
initializers (type records built with the macros of ``test_btf.h``, a string
section, header deltas) with the kernel's expected verdict. This module reads
that C from a kernel tree and rebuilds the same blobs the selftest loads, so
the tests' text never lives in this repository (it is GPL):

- the tree is ``$BPFEMU_KERNEL_SRC`` (``tools/fetch_kernel_source.sh`` puts
  one there), else the first of :data:`TREES` that exists;
- a small C reader (comments, ``#define`` macros, designated initializers,
  string literals, integer expressions with ``sizeof``) evaluates the
  ``raw_tests`` array;
- :func:`raw_tests` returns :class:`RawTest` records: ``descr``, ``blob``
  (bytes, exactly what ``btf_raw_create`` plus the header deltas produce),
  ``btf_load_err``, ``err_str``, and the map the selftest creates with it.

Nothing here is specific to one test: a test the reader cannot evaluate is
reported in ``RawTest.error`` rather than skipped silently.
"""
import ctypes
import os
import re
import struct

from bpfemu import uapi as bpf_uapi
from bpfemu.btf import uapi as btf_uapi

TREES = ("/work/ref/linux-6.12", "/work/ref/linux-6.1", "/usr/src/linux-source-6.1", "/usr/src/linux")
SELFTEST = "tools/testing/selftests/bpf/prog_tests/btf.c"
MACROS = "tools/testing/selftests/bpf/test_btf.h"

NAME_TBD = 0xDEADB33F
BTF_END_RAW = 0xDEADBEEF
MAX_NR_RAW_U32 = 1024


def kernel_tree():
    """The kernel source tree to read the selftests from, or None."""
    cands = [os.environ.get("BPFEMU_KERNEL_SRC")] + list(TREES)
    for c in cands:
        if c and os.path.exists(os.path.join(c, SELFTEST)) and os.path.exists(os.path.join(c, MACROS)):
            return c
    return None


# -- a C reader, just enough for static initializers ----------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<chr>'(?:[^'\\\n]|\\.)+')
  | (?P<num>0[xX][0-9a-fA-F]+[uUlL]*|\d+[uUlL]*)
  | (?P<id>[A-Za-z_]\w*)
  | (?P<op><<|>>|<=|>=|==|!=|&&|\|\||\.\.\.|[-+*/%&|^~!<>?:=,.;(){}\[\]\#])
""", re.X)


def strip_comments(src):
    out = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == '"' or c == "'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            out.append(src[i:j + 1])
            i = j + 1
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            out.append(" ")
            i = n if j < 0 else j + 2
        elif src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tokenize(src):
    toks = []
    pos = 0
    while pos < len(src):
        m = _TOKEN.match(src, pos)
        if not m:
            raise SyntaxError("cannot read C at %r" % src[pos:pos + 40])
        pos = m.end()
        kind = m.lastgroup
        if kind != "ws":
            toks.append((kind, m.group()))
    return toks


def read_defines(src):
    """{name: (params or None, body tokens)} of the #define lines (continuations joined)."""
    src = src.replace("\\\n", " ")
    defs = {}
    for line in src.splitlines():
        m = re.match(r"\s*#\s*define\s+(\w+)(\(([^)]*)\))?\s*(.*)$", line)
        if not m:
            continue
        params = None
        if m.group(2) is not None:
            params = [p.strip() for p in m.group(3).split(",") if p.strip()]
        defs[m.group(1)] = (params, tokenize(m.group(4)))
    return defs


def expand(tokens, defs, hide=frozenset()):
    """Macro-expand a token list (object- and function-like macros, no # or ##)."""
    out = []
    i = 0
    n = len(tokens)
    while i < n:
        kind, text = tokens[i]
        if kind == "id" and text in defs and text not in hide:
            params, body = defs[text]
            if params is None:
                out.extend(expand(body, defs, hide | {text}))
                i += 1
                continue
            if i + 1 < n and tokens[i + 1][1] == "(":
                args, i = _macro_args(tokens, i + 2)
                if len(args) == 1 and not args[0] and not params:
                    args = []
                if len(args) != len(params):
                    raise SyntaxError("macro %s takes %d args, got %d" % (text, len(params), len(args)))
                ex_args = [expand(a, defs, hide) for a in args]
                subst = []
                for tk in body:
                    if tk[0] == "id" and tk[1] in params:
                        subst.extend(ex_args[params.index(tk[1])])
                    else:
                        subst.append(tk)
                out.extend(expand(subst, defs, hide | {text}))
                continue
        out.append(tokens[i])
        i += 1
    return out


def _macro_args(tokens, i):
    args, cur, depth = [], [], 0
    while i < len(tokens):
        t = tokens[i][1]
        if t in "([{" and tokens[i][0] == "op":
            depth += 1
        elif t in ")]}" and tokens[i][0] == "op":
            if depth == 0 and t == ")":
                args.append(cur)
                return args, i + 1
            depth -= 1
        elif t == "," and depth == 0:
            args.append(cur)
            cur = []
            i += 1
            continue
        cur.append(tokens[i])
        i += 1
    raise SyntaxError("unterminated macro call")


def c_string(lit):
    """The bytes of a C string literal token (escapes decoded, no terminating NUL)."""
    s = lit[1:-1]
    out = bytearray()
    i = 0
    simple = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "\\": 92, "'": 39, '"': 34, "?": 63}
    while i < len(s):
        c = s[i]
        if c != "\\":
            out += c.encode("latin-1")
            i += 1
            continue
        i += 1
        c = s[i]
        if c in "01234567":
            j = i
            while j < len(s) and j < i + 3 and s[j] in "01234567":
                j += 1
            out.append(int(s[i:j], 8) & 0xFF)
            i = j
        elif c == "x":
            j = i + 1
            while j < len(s) and s[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(s[i + 1:j], 16) & 0xFF)
            i = j
        else:
            out.append(simple[c])
            i += 1
    return bytes(out)


class SizeT(int):
    """An integer of type size_t (what sizeof gives), so sizeof(sizeof(x)) is 8."""


_TYPE_SIZES = {"int": 4, "unsigned": 4, "char": 1, "short": 2, "long": 8, "__u8": 1, "__u16": 2, "__u32": 4,
               "__u64": 8, "__s8": 1, "__s16": 2, "__s32": 4, "__s64": 8, "u32": 4, "u64": 8}
_STRUCT_SIZES = {"btf_header": 24, "btf_type": 12, "btf_member": 12, "btf_array": 12, "btf_enum": 8,
                 "btf_param": 8, "btf_var_secinfo": 12}


class Expr:
    """Evaluates a C integer expression (or a string literal) from tokens."""

    def __init__(self, toks, consts):
        self.t = toks
        self.i = 0
        self.consts = consts

    def peek(self, k=0):
        j = self.i + k
        return self.t[j] if j < len(self.t) else ("eof", "")

    def take(self, text=None):
        tok = self.peek()
        if text is not None and tok[1] != text:
            raise SyntaxError("expected %r, got %r" % (text, tok[1]))
        self.i += 1
        return tok

    def parse(self):
        return self.ternary()

    def ternary(self):
        c = self.binary(0)
        if self.peek()[1] == "?":
            self.take()
            a = self.ternary()
            self.take(":")
            b = self.ternary()
            return a if c else b
        return c

    _PREC = [("||",), ("&&",), ("|",), ("^",), ("&",), ("==", "!="), ("<", ">", "<=", ">="), ("<<", ">>"),
             ("+", "-"), ("*", "/", "%")]

    def binary(self, level):
        if level == len(self._PREC):
            return self.unary()
        left = self.binary(level + 1)
        while self.peek()[0] == "op" and self.peek()[1] in self._PREC[level]:
            op = self.take()[1]
            right = self.binary(level + 1)
            left = self.apply(op, left, right)
        return left

    @staticmethod
    def apply(op, a, b):
        size_t = isinstance(a, SizeT) or isinstance(b, SizeT)
        r = {"||": lambda: int(bool(a) or bool(b)), "&&": lambda: int(bool(a) and bool(b)),
             "|": lambda: a | b, "^": lambda: a ^ b, "&": lambda: a & b, "==": lambda: int(a == b),
             "!=": lambda: int(a != b), "<": lambda: int(a < b), ">": lambda: int(a > b),
             "<=": lambda: int(a <= b), ">=": lambda: int(a >= b), "<<": lambda: a << b, ">>": lambda: a >> b,
             "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b,
             "/": lambda: int(a / b), "%": lambda: a - b * int(a / b)}[op]()
        return SizeT(r) if size_t and op in "+-*/%|&^<<>>" else r

    def unary(self):
        kind, text = self.peek()
        if kind == "op" and text in ("-", "+", "~", "!"):
            self.take()
            v = self.unary()
            return {"-": lambda: -v, "+": lambda: v, "~": lambda: ~v, "!": lambda: int(not v)}[text]()
        if kind == "id" and text == "sizeof":
            self.take()
            return SizeT(self.sizeof())
        if kind == "op" and text == "(" and self._is_cast():
            self.take()
            while self.peek()[1] != ")":
                self.take()
            self.take(")")
            return self.unary()
        return self.postfix()

    def _is_cast(self):
        j = 1
        seen = False
        while True:
            k, t = self.peek(j)
            if k == "id" and (t in _TYPE_SIZES or t in ("struct", "unsigned", "signed", "const") or
                              (self.peek(j - 1)[1] == "struct")):
                seen = True
            elif t == "*" and seen:
                pass
            elif t == ")":
                return seen
            else:
                return False
            j += 1

    def sizeof(self):
        self.take("(")
        k, t = self.peek()
        if k == "str":
            v = self.postfix()
            self.take(")")
            return len(v) + 1
        if k == "id" and t == "struct":
            self.take()
            name = self.take()[1]
            self.take(")")
            return _STRUCT_SIZES[name]
        if k == "id" and (t in _TYPE_SIZES or t == "void"):
            words = []
            while self.peek()[1] != ")":
                words.append(self.take()[1])
            self.take(")")
            if "*" in words:
                return 8
            return _TYPE_SIZES[words[0]] if words[0] != "long" or words.count("long") else 8
        if k == "id" and self.peek(1)[1] == "[":  # sizeof(array[0]): the u32 raw words
            while self.peek()[1] != ")":
                self.take()
            self.take(")")
            return 4
        v = self.ternary()
        self.take(")")
        return 8 if isinstance(v, SizeT) else 4

    def postfix(self):
        kind, text = self.take()
        if kind == "num":
            return int(text.rstrip("uUlL"), 0)
        if kind == "str":
            v = c_string(text)
            while self.peek()[0] == "str":
                v += c_string(self.take()[1])
            return v
        if kind == "chr":
            return c_string('"' + text[1:-1] + '"')[0]
        if kind == "op" and text == "(":
            v = self.ternary()
            self.take(")")
            return v
        if kind == "id":
            if text in ("true", "false"):
                return int(text == "true")
            if text == "NULL":
                return None
            if text in self.consts:
                return self.consts[text]
            raise KeyError("unknown identifier %s" % text)
        raise SyntaxError("unexpected %r" % text)


def _constants():
    c = {}
    for name in dir(btf_uapi):
        if name.startswith("BTF_") and isinstance(getattr(btf_uapi, name), int):
            c[name] = getattr(btf_uapi, name)
    for name, value in bpf_uapi.ENUMS.get("bpf_map_type", ()):
        c[name] = value
    c.update({"UINT_MAX": 0xFFFFFFFF, "INT_MAX": 0x7FFFFFFF, "U32_MAX": 0xFFFFFFFF,
              "PPRINT_MAPV_KIND_BASIC": 0, "PPRINT_MAPV_KIND_INT128": 1})
    return c


class _Init:
    """Parses a brace initializer into nested lists (positional) and dicts (designated)."""

    def __init__(self, toks, consts):
        self.e = Expr(toks, consts)

    def value(self):
        if self.e.peek()[1] == "{":
            return self.braced()
        return self.e.ternary()

    def braced(self):
        e = self.e
        e.take("{")
        items, named = [], {}
        while e.peek()[1] != "}":
            if e.peek()[1] == "." and e.peek(1)[0] == "id":
                e.take()
                name = e.take()[1]
                e.take("=")
                named[name] = self.value()
            elif e.peek()[1] == "[":
                e.take()
                idx = e.ternary()
                e.take("]")
                e.take("=")
                while len(items) <= idx:
                    items.append(0)
                items[idx] = self.value()
            else:
                items.append(self.value())
            if e.peek()[1] == ",":
                e.take()
        e.take("}")
        return named if named and not items else (items if not named else (items, named))


def _array_text(src, decl):
    i = src.find(decl)
    if i < 0:
        raise KeyError("no %s in the selftest" % decl)
    j = src.index("{", i)
    depth = 0
    k = j
    in_str = None
    while True:
        c = src[k]
        if in_str:
            if c == "\\":
                k += 2
                continue
            if c == in_str:
                in_str = None
        elif c in "\"'":
            in_str = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return src[j:k + 1]
        k += 1


class RawTest:
    """One entry of raw_tests[]: the blob the selftest loads and what it expects."""

    __slots__ = ("index", "descr", "blob", "btf_load_err", "err_str", "map_type", "map_name", "key_size",
                 "value_size", "key_type_id", "value_type_id", "max_entries", "map_create_err", "error")

    def __init__(self, index, descr):
        self.index = index
        self.descr = descr
        self.blob = None
        self.error = None

    def __repr__(self):
        return "<RawTest #%d %r>" % (self.index, self.descr)


def build_blob(fields):
    """btf_raw_create() of the selftest, then the header deltas: the blob bytes."""
    raw = list(fields.get("raw_types", []))
    raw = [(v & 0xFFFFFFFF) for v in raw] + [0] * (MAX_NR_RAW_U32 - len(raw))
    end = -1
    for i in range(MAX_NR_RAW_U32 - 1, -1, -1):
        if raw[i] == BTF_END_RAW:
            end = i
            break
    if end < 0:
        raise ValueError("no BTF_END_RAW")
    str_sec = fields.get("str_sec") or b""
    str_size = fields.get("str_sec_size", 0)
    strs = (str_sec + b"\0" + bytes(max(0, str_size)))[:str_size]
    idx = []
    p = 0
    while p < str_size - 1:
        p += 1
        idx.append(p)
        q = strs.find(b"\0", p)
        p = q if q >= 0 else str_size
    types = []
    nxt = 0
    for v in raw[:end]:
        if v == NAME_TBD:
            if nxt >= len(idx):
                raise ValueError("NAME_TBD without a string left")
            v = idx[nxt]
            nxt += 1
        elif v & 0xFFFF0000 == 0xFFFE0000:
            n = v & 0xFFFF
            if n <= 0 or n > len(idx):
                raise ValueError("NAME_NTH(%d) out of range" % n)
            v = idx[n - 1]
        types.append(v)
    ts = struct.pack("<%dI" % len(types), *types)
    hdr = [btf_uapi.BTF_MAGIC, btf_uapi.BTF_VERSION, 0, 24, 0, len(ts), len(ts), str_size]
    for k, d in ((3, "hdr_len_delta"), (4, "type_off_delta"), (6, "str_off_delta"), (7, "str_len_delta")):
        hdr[k] = (hdr[k] + fields.get(d, 0)) & 0xFFFFFFFF
    return btf_uapi.HDR.pack(*hdr) + ts + strs


def raw_tests(tree=None):
    """[RawTest] of the tree's prog_tests/btf.c, in order (index from 1 as the selftest numbers them)."""
    tree = tree or kernel_tree()
    if tree is None:
        return []
    with open(os.path.join(tree, SELFTEST), encoding="latin-1") as f:
        src = strip_comments(f.read())
    with open(os.path.join(tree, MACROS), encoding="latin-1") as f:
        hdr = strip_comments(f.read())
    defs = read_defines(hdr)
    defs.update(read_defines(src))
    consts = _constants()
    body = _array_text(src, "struct btf_raw_test raw_tests[]")
    toks = expand(tokenize(body), defs)
    # split the top-level entries so that one unreadable test does not hide the others
    entries = []
    depth = 0
    cur = []
    for tk in toks[1:-1]:
        if tk[1] == "{" and tk[0] == "op":
            depth += 1
        elif tk[1] == "}" and tk[0] == "op":
            depth -= 1
        if depth == 0 and tk[1] == ",":
            if cur:
                entries.append(cur)
            cur = []
            continue
        cur.append(tk)
    if cur:
        entries.append(cur)
    out = []
    for n, ent in enumerate(entries, 1):
        descr = ""
        for j in range(len(ent) - 3):
            if ent[j][1] == "." and ent[j + 1][1] == "descr" and ent[j + 3][0] == "str":
                descr = c_string(ent[j + 3][1]).decode("latin-1")
                break
        rt = RawTest(n, descr)
        try:
            fields = _Init(ent, consts).value()
            if isinstance(fields, tuple):
                fields = fields[1]
            rt.btf_load_err = bool(fields.get("btf_load_err", 0))
            rt.map_create_err = bool(fields.get("map_create_err", 0))
            es = fields.get("err_str")
            rt.err_str = es.decode("latin-1") if isinstance(es, bytes) else None
            mn = fields.get("map_name")
            rt.map_name = mn.decode("latin-1") if isinstance(mn, bytes) else ""
            for k in ("map_type", "key_size", "value_size", "key_type_id", "value_type_id", "max_entries"):
                setattr(rt, k, fields.get(k, 0))
            rt.blob = build_blob(fields)
        except (SyntaxError, KeyError, ValueError, IndexError, TypeError) as e:
            rt.error = "%s: %s" % (type(e).__name__, e)
        out.append(rt)
    return out


# -- BPF_BTF_LOAD on either backend ---------------------------------------------------------------

LOG_SIZE = 65535  # what the selftest gives its log


def btf_load(task, blob, log_level=1, log_size=LOG_SIZE, log_buf=None, btf_size=None):
    """BPF_BTF_LOAD of ``blob`` through ``task.bpf()``: (errno or 0, raw log buffer bytes, log_true_size).

    ``log_buf``: give a buffer (of max(log_size, 1) bytes) or not; by default
    one when log_size is nonzero. ``task`` is any task (an emulator task, ``bpfemu.Host()``, a host
    child); a loaded BTF's fd is closed again.
    """
    data = ctypes.create_string_buffer(bytes(blob), max(len(blob), 1))
    if log_buf is None:
        log_buf = bool(log_size)
    lb = ctypes.create_string_buffer(max(1, min(log_size, 1 << 24))) if log_buf else None
    attr = bpf_uapi.make_attr(btf=ctypes.addressof(data), btf_size=len(blob) if btf_size is None else btf_size,
                              btf_log_level=log_level, btf_log_size=log_size,
                              btf_log_buf=ctypes.addressof(lb) if lb is not None else 0)
    try:
        fd = task.bpf(bpf_uapi.BPF_BTF_LOAD, attr)
        task.close(fd)
        err = 0
    except OSError as e:
        err = e.errno
    return err, (lb.raw if lb is not None else b""), attr.btf_log_true_size


def log_text(raw):
    """The log as a C string (up to the first NUL)."""
    i = raw.find(b"\0")
    return raw if i < 0 else raw[:i]


def log_cause(raw):
    """The last line of the log: where the kernel says why it refused (or the last type it checked)."""
    lines = log_text(raw).rstrip(b"\n").split(b"\n")
    return lines[-1] if lines else b""


def btf_task(name):
    """A task for conformance tests: an emulator task, or the session's real kernel (bpfemu.Host(), the real
    syscall in this process, or the VM's of ``--bpf-backend=vm:VERSION``)."""
    if name == "host":
        from bpfemu.testing.backends import real_kernel
        return real_kernel()
    from bpfemu.testing.backends import twin_kernel
    return twin_kernel().spawn()  # the real kernel's version, to compare with it


# -- the host's outcomes, recorded -----------------------------------------------------------------

RECORD_PATH = os.path.join(os.path.dirname(__file__), "btf_host.json")


def blob_key(blob):
    import hashlib
    return hashlib.sha256(blob).hexdigest()


def outcome(task, blob):
    """What a backend does with ``blob``: errno, cause, log digest and size with a log; errno without."""
    import hashlib
    err, raw, true_size = btf_load(task, blob)
    err_nolog = btf_load(task, blob, log_level=0, log_size=0)[0]
    text = log_text(raw)
    return {"errno": err, "errno_nolog": err_nolog, "cause": log_cause(raw).decode("latin-1"),
            "log_sha256": hashlib.sha256(text).hexdigest(), "log_true_size": true_size}


def load_record(path=RECORD_PATH):
    import json
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"kernel": None, "cases": {}}


def record(path=RECORD_PATH, tree=None):
    """Run every raw test on the host kernel and write the outcomes (keyed by the blob's sha256)."""
    import json
    import platform
    data = load_record(path)
    data["kernel"] = platform.release()
    host = btf_task("host")
    for t in raw_tests(tree):
        if t.blob is None:
            continue
        o = outcome(host, t.blob)
        o["descr"] = t.descr
        data["cases"][blob_key(t.blob)] = o
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    return data


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] == ["record"]:
        d = record(tree=sys.argv[2] if len(sys.argv) > 2 else None)
        print("recorded %d outcomes of kernel %s in %s" % (len(d["cases"]), d["kernel"], RECORD_PATH))
    else:
        for t in raw_tests():
            print(t.index, t.descr, t.error or "", len(t.blob or b""))
