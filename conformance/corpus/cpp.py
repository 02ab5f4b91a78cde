"""A small C preprocessor: enough of C99 translation phases 1-4 to read the kernel's selftest sources.

It tokenizes C text, obeys ``#define`` (object-like and function-like, with ``#`` stringizing, ``##`` pasting,
``__VA_ARGS__`` and GNU's named variadics and ``, ## args``), ``#undef``, ``#if``/``#ifdef``/``#ifndef``/``#elif``/``#else``/``#endif`` (with
``defined``), ignores ``#include``/``#pragma``/``#error`` lines, and expands macros with hide sets as the
standard describes (plus ``__COUNTER__``), so macro bodies that build other macros (``BPF_SK_LOOKUP(func)``, the files' own test
generators) come out as the compiler sees them.

Identifiers listed in ``keep`` are never expanded even when a header defines them: the corpus loader uses
that to evaluate the kernel's instruction macros (``BPF_MOV64_IMM`` ...) with ``bpfemu.prog.insn`` builders
instead of their C bodies.

Shapes::

    pp = Preprocessor(predefined={"__x86_64__": "1"}, keep={"BPF_MOV64_IMM"})
    pp.harvest(header_text)          # only directives count: learn the header's macros
    toks = pp.run(source_text)       # [Tok], macro-expanded, directives consumed

Errors are :class:`CppError` with the file and line.
"""
import re

__all__ = ["Tok", "CppError", "Preprocessor", "tokenize", "spell"]


class CppError(Exception):
    pass


class Tok:
    """One preprocessing token. kind: 'id', 'num', 'str', 'chr', 'op'; ``space``: whitespace came before it."""
    __slots__ = ("kind", "text", "line", "space", "hide", "bol")

    def __init__(self, kind, text, line=0, space=False, hide=frozenset(), bol=False):
        self.kind, self.text, self.line, self.space, self.hide, self.bol = kind, text, line, space, hide, bol

    def copy(self, **kw):
        t = Tok(self.kind, self.text, self.line, self.space, self.hide, self.bol)
        for k, v in kw.items():
            setattr(t, k, v)
        return t

    def __repr__(self):
        return "Tok(%s %r @%d)" % (self.kind, self.text, self.line)


_PUNCT = sorted("""... <<= >>= -> ++ -- << >> <= >= == != && || *= /= %= += -= &= ^= |= ## # { } [ ] ( ) ; : ?
. + - * / % ^ & | ~ ! = < > ,""".split(), key=len, reverse=True)
_MULTI = [p for p in _PUNCT if len(p) > 1]
_TOKEN_RE = re.compile(r"""
  (?P<ws>(?:[ \t\r\f\v]|\\\r?\n)+)
| (?P<id>[A-Za-z_]\w*)
| (?P<nl>\n)
| (?P<lc>//[^\n]*)
| (?P<bc>/\*.*?\*/)
| (?P<num>\.?\d(?:[eEpP][+-]|[\w.])*)
| (?P<str>"(?:[^"\\\n]|\\(?:.|\n))*")
| (?P<chr>'(?:[^'\\\n]|\\.)*')
| (?P<op>""" + "|".join(re.escape(p) for p in _MULTI) + r"""|[{}\[\]();:?.+\-*/%^&|~!=<>,#])
| (?P<bad>.)
""", re.S | re.X)


def tokenize(text, first_line=1):
    """Tokens of C text, with newlines kept as ('nl') tokens so directives can be found."""
    out = []
    line = first_line
    space = False
    bol = True
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        s = m.group()
        if kind == "nl":
            out.append(Tok("nl", "\n", line))
            line += 1
            space, bol = False, True
            continue
        if kind in ("ws", "lc", "bc"):
            line += s.count("\n")
            space = True
            continue
        if kind == "bad":
            if s == "\\":
                space = True
                continue
            raise CppError("line %d: stray character %r" % (line, s))
        out.append(Tok(kind, s, line, space, frozenset(), bol))
        space, bol = False, False
        line += s.count("\n")
    return out


def spell(toks):
    """The text of a token list, one space where whitespace separated tokens (what ``#`` produces)."""
    parts = []
    for i, t in enumerate(toks):
        if i and t.space:
            parts.append(" ")
        parts.append(t.text)
    return "".join(parts)


def _stringize(toks):
    s = spell(toks)
    # escape \ and " inside string and char literals only, as the standard says
    res = []
    for piece in re.split(r'("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\')', s):
        if piece[:1] in ('"', "'"):
            res.append(piece.replace("\\", "\\\\").replace('"', '\\"'))
        else:
            res.append(piece)
    return '"' + "".join(res) + '"'


class Macro:
    __slots__ = ("name", "params", "variadic", "body")

    def __init__(self, name, params, variadic, body):
        self.name, self.params, self.variadic, self.body = name, params, variadic, body


class Preprocessor:
    def __init__(self, predefined=None, keep=(), filename="<input>"):
        self.macros = {}
        self.counter = 0  # __COUNTER__
        self.keep = frozenset(keep)
        self.filename = filename
        for k, v in (predefined or {}).items():
            self.define_text("%s %s" % (k, v))

    # -- definitions ------------------------------------------------------------------------------
    def define_text(self, text):
        """Define from the text after ``#define``."""
        self._define(tokenize(text), 0)

    def _define(self, toks, line):
        if not toks or toks[0].kind != "id":
            raise CppError("%s:%d: #define without a name" % (self.filename, line))
        name = toks[0].text
        rest = toks[1:]
        params = None
        variadic = False
        if rest and rest[0].text == "(" and not rest[0].space:
            params = []
            i = 1
            while True:
                if i >= len(rest):
                    raise CppError("%s:%d: unterminated macro parameter list" % (self.filename, line))
                t = rest[i]
                if t.text == ")":
                    i += 1
                    break
                if t.text == ",":
                    i += 1
                    continue
                if t.text == "...":
                    variadic = True
                    params.append("__VA_ARGS__")
                elif t.kind == "id" and i + 1 < len(rest) and rest[i + 1].text == "...":
                    variadic = True  # GNU named variadic parameter: 'args...'
                    params.append(t.text)
                    i += 1
                elif t.kind == "id":
                    params.append(t.text)
                else:
                    raise CppError("%s:%d: bad macro parameter %r" % (self.filename, line, t.text))
                i += 1
            rest = rest[i:]
        if name in self.keep:
            return
        body = [t.copy(bol=False) for t in rest]
        if body:
            body[0] = body[0].copy(space=False)
        self.macros[name] = Macro(name, params, variadic, body)

    # -- the directive loop -------------------------------------------------------------------------
    def harvest(self, text, filename=None):
        """Learn the macros a header or source defines; its other text is ignored."""
        self._process(text, filename, collect=False)

    def run(self, text, filename=None):
        """The macro-expanded tokens of ``text`` (directives obeyed, newlines dropped)."""
        return self._process(text, filename, collect=True)

    def _process(self, text, filename, collect):
        if filename:
            self.filename = filename
        toks = tokenize(text)
        out = []
        pending = []
        stack = []  # [(active, taken_branch, parent_active)]
        active = True
        i, n = 0, len(toks)
        while i < n:
            t = toks[i]
            if t.kind == "nl":
                i += 1
                continue
            if t.text == "#" and t.bol:
                j = i + 1
                while j < n and toks[j].kind != "nl":
                    j += 1
                line = [x for x in toks[i + 1:j]]
                i = j
                if not line:
                    continue
                d = line[0].text
                args = line[1:]
                if d in ("if", "ifdef", "ifndef"):
                    if active:
                        if d == "if":
                            cond = self._eval_if(args, t.line)
                        elif d == "ifdef":
                            cond = args[0].text in self.macros
                        else:
                            cond = args[0].text not in self.macros
                    else:
                        cond = False
                    stack.append((active, cond))
                    active = active and cond
                elif d == "elif":
                    if not stack:
                        raise CppError("%s:%d: #elif without #if" % (self.filename, t.line))
                    parent, taken = stack[-1]
                    cond = parent and not taken and self._eval_if(args, t.line)
                    stack[-1] = (parent, taken or cond)
                    active = cond
                elif d == "else":
                    if not stack:
                        raise CppError("%s:%d: #else without #if" % (self.filename, t.line))
                    parent, taken = stack[-1]
                    active = parent and not taken
                    stack[-1] = (parent, True)
                elif d == "endif":
                    if not stack:
                        raise CppError("%s:%d: #endif without #if" % (self.filename, t.line))
                    active = stack.pop()[0]
                elif not active:
                    pass
                elif d == "define":
                    if collect and pending:
                        out.extend(self.expand(pending))
                        pending = []
                    self._define(args, t.line)
                elif d == "undef":
                    if collect and pending:
                        out.extend(self.expand(pending))
                        pending = []
                    self.macros.pop(args[0].text, None)
                elif d in ("include", "pragma", "error", "warning", "line"):
                    pass
                else:
                    raise CppError("%s:%d: unknown directive #%s" % (self.filename, t.line, d))
                continue
            if active and collect:
                pending.append(t)
            i += 1
        if stack:
            raise CppError("%s: unterminated #if" % self.filename)
        if collect and pending:
            out.extend(self.expand(pending))
        return out

    def _eval_if(self, args, line):
        # defined X / defined(X) first, then expand, then unknown identifiers are 0
        toks = []
        k = 0
        while k < len(args):
            a = args[k]
            if a.text == "defined":
                if k + 1 < len(args) and args[k + 1].text == "(":
                    name = args[k + 2].text
                    k += 4
                else:
                    name = args[k + 1].text
                    k += 2
                toks.append(Tok("num", "1" if name in self.macros else "0", line))
                continue
            toks.append(a)
            k += 1
        toks = self.expand(toks)
        from .cexpr import eval_pp_condition
        try:
            return bool(eval_pp_condition(toks))
        except Exception as e:  # noqa: BLE001 - report where
            raise CppError("%s:%d: cannot evaluate #if: %s" % (self.filename, line, e))

    # -- expansion ------------------------------------------------------------------------------------
    def expand(self, toks):
        """Macro-expand a token list (no newlines) the way the standard rescans: with hide sets."""
        out = []
        work = list(reversed(toks))  # a stack: the next token is work[-1]
        while work:
            t = work.pop()
            if t.kind != "id" or t.text in t.hide:
                out.append(t)
                continue
            if t.text == "__COUNTER__":
                out.append(Tok("num", str(self.counter), t.line, t.space))
                self.counter += 1
                continue
            m = self.macros.get(t.text)
            if m is None:
                out.append(t)
                continue
            if m.params is None:
                hide = t.hide | {m.name}
                body = self._subst(m, {}, hide)
                if body:
                    body[0] = body[0].copy(space=t.space)
                work.extend(reversed(body))
                continue
            # function-like: needs a '(' next
            if not work or work[-1].text != "(":
                out.append(t)
                continue
            work.pop()
            args, rparen = self._collect_args(work, m, t)
            hide = (t.hide & rparen.hide) | {m.name}
            body = self._subst(m, args, hide)
            if body:
                body[0] = body[0].copy(space=t.space)
            work.extend(reversed(body))
        return out

    def _collect_args(self, work, m, at):
        args = [[]]
        depth = 0
        while True:
            if not work:
                raise CppError("%s:%d: unterminated call of macro %s" % (self.filename, at.line, m.name))
            t = work.pop()
            if t.text == "(":
                depth += 1
            elif t.text == ")":
                if depth == 0:
                    break
                depth -= 1
            elif t.text == "," and depth == 0 and not (m.variadic and len(args) == len(m.params)):
                args.append([])
                continue
            args[-1].append(t)
        if len(m.params) == 0 and args == [[]]:
            args = []
        if len(args) != len(m.params):
            if m.variadic and len(args) == len(m.params) - 1:
                args.append([])
            else:
                raise CppError("%s:%d: macro %s takes %d arguments, got %d"
                               % (self.filename, at.line, m.name, len(m.params), len(args)))
        return dict(zip(m.params, args)), t

    def _subst(self, m, args, hide):
        body = m.body
        res = []
        i = 0
        expanded = {}
        vararg = m.params[-1] if m.variadic else None
        while i < len(body):
            t = body[i]
            # GNU: ', ## args' drops the comma when the variadic arguments are empty
            if (t.text == "," and vararg and i + 2 < len(body) and body[i + 1].text == "##"
                    and body[i + 2].text == vararg):
                if args.get(vararg):
                    res.append(t.copy())
                    res.extend(a.copy() for a in args[vararg])
                i += 3
                continue
            if t.text == "#" and m.params is not None and i + 1 < len(body) and body[i + 1].text in args:
                res.append(Tok("str", _stringize(args[body[i + 1].text]), t.line, t.space))
                i += 2
                continue
            if t.kind == "id" and t.text in args:
                nxt_paste = i + 1 < len(body) and body[i + 1].text == "##"
                prev_paste = i > 0 and body[i - 1].text == "##"
                if nxt_paste or prev_paste:
                    arg = [a.copy() for a in args[t.text]]
                else:
                    if t.text not in expanded:
                        expanded[t.text] = self.expand([a.copy() for a in args[t.text]])
                    arg = [a.copy() for a in expanded[t.text]]
                if arg:
                    arg[0] = arg[0].copy(space=t.space)
                elif prev_paste or nxt_paste:
                    arg = [Tok("placemarker", "", t.line, t.space)]
                res.extend(arg)
                i += 1
                continue
            res.append(t.copy())
            i += 1
        # ## pasting
        out = []
        i = 0
        while i < len(res):
            t = res[i]
            if t.text == "##" and t.kind == "op" and out and i + 1 < len(res):
                left = out.pop()
                right = res[i + 1]
                text = left.text + right.text
                if text == "":
                    out.append(Tok("placemarker", "", left.line, left.space))
                else:
                    new = [x for x in tokenize(text) if x.kind != "nl"]
                    if len(new) != 1:
                        raise CppError("%s: pasting %r and %r does not give a token"
                                       % (self.filename, left.text, right.text))
                    out.append(new[0].copy(line=left.line, space=left.space))
                i += 2
                continue
            out.append(t)
            i += 1
        final = []
        for t in out:
            if t.kind == "placemarker":
                continue
            t.hide = t.hide | hide
            final.append(t)
        return final
