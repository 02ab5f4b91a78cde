"""C constant expressions and initializers over preprocessed tokens, evaluated as an LP64 compiler would.

Integers carry their C type (:class:`CInt`: width and signedness) so that ``-1U``, ``~0``, ``0x80000000``,
``1ULL << 63``, casts and the usual arithmetic conversions come out as gcc computes them on x86_64/arm64.
Initializers (``{ .a = 1, [3] = x, { ... } }``) become :class:`InitList` trees; what an identifier, a call,
``sizeof``/``offsetof`` or a compound literal means is asked of an *environment* object:

- ``env.ident(name) -> value``            (an enum constant, a macro-free constant, ...)
- ``env.call(name, args) -> value``       (a builder such as ``BPF_MOV64_IMM``; args are evaluated values)
- ``env.sizeof(ctype) -> int`` and ``env.offsetof(ctype, path) -> (offset, size)``; path is
  ``[("field", name) | ("index", n)]``
- ``env.compound(ctype, initlist) -> value`` for ``(struct x){ ... }``

Errors are :class:`CExprError` naming the token line.
"""
from .cpp import Tok

__all__ = ["CInt", "CStr", "InitList", "CExprError", "Parser", "eval_pp_condition", "to_int"]


class CExprError(Exception):
    pass


class CInt:
    """A C integer value of a given width (8..64) and signedness; ``v`` is already reduced to that type."""
    __slots__ = ("v", "bits", "uns")

    def __init__(self, v, bits=32, uns=False):
        mask = (1 << bits) - 1
        v &= mask
        if not uns and v >> (bits - 1):
            v -= 1 << bits
        self.v, self.bits, self.uns = v, bits, uns

    def __int__(self):
        return self.v

    __index__ = __int__

    def __repr__(self):
        return "CInt(%d, %d%s)" % (self.v, self.bits, "u" if self.uns else "")

    def __eq__(self, other):
        return int(self) == int(other) if isinstance(other, (int, CInt)) else NotImplemented

    def __hash__(self):
        return hash(self.v)


class CStr(bytes):
    """A string literal's bytes (without the terminating NUL)."""


class InitList(list):
    """A brace initializer: a list of (designators or None, value); designators are
    ``[("field", name) | ("index", int)]``."""


def to_int(v):
    if isinstance(v, CInt):
        return v.v
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    raise CExprError("not an integer: %r" % (v,))


def _int(x):
    return x if isinstance(x, CInt) else CInt(to_int(x), 64, False) if not isinstance(x, CInt) else x


# -- types -----------------------------------------------------------------------------------------------
_FIXED = {}
for _b in (8, 16, 32, 64):
    for _n in ("__u%d", "u%d", "uint%d_t"):
        _FIXED[_n % _b] = ("int", _b, True)
    for _n in ("__s%d", "s%d", "int%d_t"):
        _FIXED[_n % _b] = ("int", _b, False)
_FIXED.update({"size_t": ("int", 64, True), "ssize_t": ("int", 64, False), "uintptr_t": ("int", 64, True),
               "intptr_t": ("int", 64, False), "bool": ("int", 8, True), "_Bool": ("int", 8, True),
               "__be16": ("int", 16, True), "__be32": ("int", 32, True), "__le16": ("int", 16, True),
               "__le32": ("int", 32, True), "__be64": ("int", 64, True), "__le64": ("int", 64, True)})
_BASIC_WORDS = {"unsigned", "signed", "char", "short", "int", "long", "void", "const", "volatile"}


def _promote(a):
    if a.bits < 32:
        return CInt(a.v, 32, False)
    return a


def _common(a, b):
    a, b = _promote(a), _promote(b)
    if a.bits == b.bits:
        return a.bits, a.uns or b.uns
    hi, lo = (a, b) if a.bits > b.bits else (b, a)
    return hi.bits, hi.uns  # a wider signed type holds every value of a narrower unsigned one


def _literal(text, line):
    t = text.lower()
    suffix = ""
    while t and t[-1] in "ul":
        suffix = t[-1] + suffix
        t = t[:-1]
    try:
        if t.startswith("0x"):
            v, based = int(t, 16), True
        elif t.startswith("0b"):
            v, based = int(t[2:], 2), True
        elif len(t) > 1 and t.startswith("0"):
            v, based = int(t, 8), True
        else:
            v, based = int(t, 10), False
    except ValueError:
        raise CExprError("line %d: bad number %r" % (line, text))
    uns = "u" in suffix
    long_ = "l" in suffix
    cands = []
    if not long_:
        cands += [(32, False)] if not uns else []
        cands += [(32, True)] if (uns or based) else []
    cands += [(64, False)] if not uns else []
    cands += [(64, True)] if (uns or based) else []
    for bits, u in cands:
        if (u and v < (1 << bits)) or (not u and v < (1 << (bits - 1))):
            return CInt(v, bits, u)
    return CInt(v, 64, True)


_ESC = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11, "\\": 92, "'": 39, '"': 34, "?": 63,
        "e": 27}


def unescape(body, line=0):
    """Bytes of a C string/char literal body (without quotes)."""
    out = bytearray()
    i, n = 0, len(body)
    while i < n:
        c = body[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        i += 1
        c = body[i]
        if c in "01234567":
            j = i
            while j < n and j < i + 3 and body[j] in "01234567":
                j += 1
            out.append(int(body[i:j], 8) & 0xff)
            i = j
        elif c == "x":
            j = i + 1
            while j < n and body[j] in "0123456789abcdefABCDEF":
                j += 1
            out.append(int(body[i + 1:j], 16) & 0xff)
            i = j
        elif c in _ESC:
            out.append(_ESC[c])
            i += 1
        elif c == "\n":
            i += 1
        else:
            raise CExprError("line %d: unknown escape \\%s" % (line, c))
    return bytes(out)


class Parser:
    """Recursive descent over a token list; ``pos`` moves as things are parsed."""

    def __init__(self, toks, env):
        self.toks = toks
        self.pos = 0
        self.env = env

    # -- token helpers ------------------------------------------------------------------------------------
    def peek(self, k=0):
        p = self.pos + k
        return self.toks[p] if p < len(self.toks) else None

    def at(self, text, k=0):
        t = self.peek(k)
        return t is not None and t.text == text and t.kind in ("op", "id")

    def next(self):
        t = self.peek()
        if t is None:
            raise CExprError("unexpected end of input")
        self.pos += 1
        return t

    def expect(self, text):
        t = self.next()
        if t.text != text:
            raise CExprError("line %d: expected %r, got %r" % (t.line, text, t.text))
        return t

    def line(self):
        t = self.peek() or (self.toks[-1] if self.toks else Tok("op", "", 0))
        return t.line

    # -- initializers --------------------------------------------------------------------------------------
    def initializer(self):
        if self.at("{"):
            return self.init_list()
        return self.assign()

    def init_list(self):
        self.expect("{")
        items = InitList()
        while not self.at("}"):
            desig = None
            if self.at(".") or self.at("["):
                desig = []
                while self.at(".") or self.at("["):
                    if self.at("."):
                        self.next()
                        desig.append(("field", self.next().text))
                    else:
                        self.next()
                        desig.append(("index", to_int(self.conditional())))
                        self.expect("]")
                self.expect("=")
            items.append((desig, self.initializer()))
            if self.at(","):
                self.next()
            elif not self.at("}"):
                t = self.peek()
                raise CExprError("line %d: expected ',' or '}' in initializer, got %r"
                                 % (t.line if t else 0, t.text if t else "EOF"))
        self.expect("}")
        return items

    # -- expressions -----------------------------------------------------------------------------------------
    def assign(self):
        return self.conditional()

    def conditional(self):
        c = self.binary(0)
        if self.at("?"):
            self.next()
            a = self.assign()
            self.expect(":")
            b = self.conditional()
            return a if to_int(c) else b
        return c

    # binary operators by precedence (higher binds tighter)
    _PREC = {"||": 1, "&&": 2, "|": 3, "^": 4, "&": 5, "==": 6, "!=": 6, "<": 7, ">": 7, "<=": 7, ">=": 7,
             "<<": 8, ">>": 8, "+": 9, "-": 9, "*": 10, "/": 10, "%": 10}

    def binary(self, min_prec):
        """Precedence climbing: operators of at least ``min_prec`` (0: all), left-associative."""
        left = self.unary()
        prec_of = self._PREC
        while True:
            t = self.peek()
            if t is None or t.kind != "op":
                return left
            prec = prec_of.get(t.text)
            if prec is None or prec < min_prec:
                return left
            self.pos += 1
            right = self.binary(prec + 1)
            left = self.apply(t.text, left, right, t.line)

    def apply(self, op, a, b, line):
        if op == "&&":
            return CInt(1 if to_int(a) and to_int(b) else 0)
        if op == "||":
            return CInt(1 if to_int(a) or to_int(b) else 0)
        a, b = _int(a), _int(b)
        if op in ("<<", ">>"):
            pa = _promote(a)
            n = to_int(b)
            if op == "<<":
                return CInt(pa.v << n, pa.bits, pa.uns)
            return CInt(pa.v >> n, pa.bits, pa.uns)
        bits, uns = _common(a, b)
        x, y = CInt(a.v, bits, uns).v, CInt(b.v, bits, uns).v
        if op in ("==", "!=", "<", ">", "<=", ">="):
            r = {"==": x == y, "!=": x != y, "<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]
            return CInt(int(r))
        if op == "+":
            r = x + y
        elif op == "-":
            r = x - y
        elif op == "*":
            r = x * y
        elif op in ("/", "%"):
            if y == 0:
                raise CExprError("line %d: division by zero" % line)
            q = abs(x) // abs(y)
            if (x < 0) != (y < 0):
                q = -q
            r = q if op == "/" else x - q * y
        elif op == "&":
            r = x & y
        elif op == "|":
            r = x | y
        elif op == "^":
            r = x ^ y
        else:
            raise CExprError("line %d: operator %s" % (line, op))
        return CInt(r, bits, uns)

    def unary(self):
        t = self.peek()
        if t is None:
            raise CExprError("unexpected end of expression")
        if t.kind == "op" and t.text in ("-", "+", "~", "!"):
            self.next()
            v = self.unary()
            if t.text == "!":
                return CInt(0 if to_int(v) else 1)
            a = _promote(_int(v))
            if t.text == "-":
                return CInt(-a.v, a.bits, a.uns)
            if t.text == "~":
                return CInt(~a.v, a.bits, a.uns)
            return a
        if t.kind == "op" and t.text == "(" and self.is_type(1):
            self.next()
            ctype = self.type_name()
            self.expect(")")
            if self.at("{"):
                return self.postfix(self.env.compound(ctype, self.init_list()))
            v = self.unary()
            if ctype[0] == "int":
                return CInt(to_int(v), ctype[1], ctype[2])
            if ctype[0] == "ptr":
                return CInt(to_int(v), 64, True)
            if ctype[0] == "void":
                return v
            raise CExprError("line %d: cast to %r" % (t.line, ctype))
        if t.kind == "id" and t.text == "sizeof":
            self.next()
            if self.at("(") and self.is_type(1):
                self.next()
                ctype = self.type_name()
                self.expect(")")
                return CInt(self.sizeof(ctype), 64, True)
            v = self.unary()
            if isinstance(v, CInt):
                return CInt(v.bits // 8, 64, True)
            if isinstance(v, CStr):
                return CInt(len(v) + 1, 64, True)
            raise CExprError("line %d: sizeof of %r" % (t.line, v))
        return self.postfix(self.primary())

    def postfix(self, v):
        while self.at("[") or self.at("."):
            if self.at("["):
                self.next()
                i = to_int(self.assign())
                self.expect("]")
                v = v[i]
            else:
                self.next()
                v = getattr(v, self.next().text)
        return v

    def primary(self):
        t = self.next()
        if t.kind == "num":
            return _literal(t.text, t.line)
        if t.kind == "chr":
            body = t.text[t.text.index("'") + 1:-1]
            b = unescape(body, t.line)
            return CInt(b[0] if len(b) == 1 else int.from_bytes(b, "big"), 32, False)
        if t.kind == "str":
            s = bytearray()
            s += unescape(t.text[t.text.index('"') + 1:-1], t.line)
            while self.peek() is not None and self.peek().kind == "str":
                u = self.next()
                s += unescape(u.text[u.text.index('"') + 1:-1], u.line)
            return CStr(bytes(s))
        if t.text == "(":
            v = self.assign()
            while self.at(","):  # the comma operator
                self.next()
                v = self.assign()
            self.expect(")")
            return v
        if t.kind == "id":
            if t.text in ("offsetof", "offsetofend", "__builtin_offsetof"):
                self.expect("(")
                ctype = self.type_name()
                self.expect(",")
                path = self.member_path()
                self.expect(")")
                off, size = self.env.offsetof(ctype, path)
                return CInt(off + (size if t.text == "offsetofend" else 0), 64, True)
            if self.at("("):
                self.next()
                args = []
                while not self.at(")"):
                    args.append(self.assign())
                    if self.at(","):
                        self.next()
                    elif not self.at(")"):
                        raise CExprError("line %d: expected ',' or ')' in call of %s" % (t.line, t.text))
                self.expect(")")
                try:
                    return self.env.call(t.text, args)
                except (TypeError, ValueError, KeyError) as e:
                    raise CExprError("line %d: %s(...): %s" % (t.line, t.text, e))
            return self.env.ident(t.text)
        raise CExprError("line %d: unexpected %r" % (t.line, t.text))

    def member_path(self):
        path = [("field", self.next().text)]
        while self.at(".") or self.at("["):
            if self.at("."):
                self.next()
                path.append(("field", self.next().text))
            else:
                self.next()
                path.append(("index", to_int(self.assign())))
                self.expect("]")
        return path

    # -- type names ----------------------------------------------------------------------------------------
    def is_type(self, k=0):
        t = self.peek(k)
        if t is None or t.kind != "id":
            return False
        return t.text in _FIXED or t.text in _BASIC_WORDS or t.text in ("struct", "union", "enum")

    def type_name(self):
        words = []
        ctype = None
        while self.peek() is not None and self.peek().kind == "id":
            w = self.peek().text
            if w in ("struct", "union", "enum"):
                self.next()
                ctype = (w, self.next().text)
            elif w in _FIXED:
                self.next()
                ctype = _FIXED[w]
            elif w in _BASIC_WORDS:
                self.next()
                if w not in ("const", "volatile"):
                    words.append(w)
            else:
                break
        if ctype is None:
            if words == ["void"]:
                ctype = ("void",)
            else:
                uns = "unsigned" in words
                if "char" in words:
                    bits = 8
                elif "short" in words:
                    bits = 16
                elif words.count("long") >= 1:
                    bits = 64
                else:
                    bits = 32
                ctype = ("int", bits, uns)
        while self.at("*"):
            self.next()
            ctype = ("ptr", ctype)
        return ctype

    def sizeof(self, ctype):
        if ctype[0] == "int":
            return ctype[1] // 8
        if ctype[0] == "ptr":
            return 8
        if ctype[0] == "enum":
            return 4
        return self.env.sizeof(ctype)


class _PPEnv:
    def ident(self, name):
        return CInt(0)  # identifiers left after expansion are 0 in #if

    def call(self, name, args):
        raise CExprError("function call %s in #if" % name)


def eval_pp_condition(toks):
    p = Parser(toks, _PPEnv())
    v = p.conditional()
    if p.peek() is not None:
        raise CExprError("trailing tokens in #if: %r" % p.peek().text)
    return to_int(v)
