"""The clang-compiled BPF objects of the suite: C sources in ``conformance/objects/``, compiled on demand.

:func:`compile_object` compiles one ``.bpf.c`` (a path, or a name of ``conformance/objects/``) with
``clang -O2 -g -target bpf -mcpu=v3`` into a cache directory (``$BPFEMU_OBJECT_CACHE``, else
``$XDG_CACHE_HOME/bpfemu/objects``, else ``~/.cache/bpfemu/objects``), keyed by a hash of the source,
the flags and the clang version, and returns the object's path. Compiled objects never enter git.
:func:`compile_source` does the same for C text held by a test.

The headers are the system's: ``linux/bpf.h`` (linux-libc-dev) and ``bpf/bpf_helpers.h`` (libbpf-dev);
CI installs them with clang (``.ci/run``). Without clang or the headers a test skips, or fails under
``BPFEMU_REQUIRE_HOST=1`` (:func:`require_clang`).
"""
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = os.path.join(os.path.dirname(HERE), "testing", "conformance", "objects")
CFLAGS = ["-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror", "-Wno-unused-function"]

# the objects of conformance/objects/, by name
OBJECTS = ("xdp_counter", "socket_filter", "rawtp_counter", "globals_core")


def sources_dir():
    """conformance/objects/ (through the package's testing/conformance link, or next to this checkout)."""
    if os.path.isdir(SOURCES):
        return SOURCES
    return os.path.join(os.path.dirname(os.path.dirname(HERE)), "conformance", "objects")


def cache_dir():
    d = os.environ.get("BPFEMU_OBJECT_CACHE")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        d = os.path.join(base, "bpfemu", "objects")
    try:
        os.makedirs(d, exist_ok=True)
    except OSError:
        d = os.path.join(tempfile.gettempdir(), "bpfemu-objects-%d" % os.getuid())
        os.makedirs(d, exist_ok=True)
    return d


@functools.lru_cache(maxsize=None)
def clang():
    """(clang path, version text, include flags) or None when clang or the headers are missing."""
    cc = os.environ.get("BPFEMU_CLANG") or shutil.which("clang")
    if cc is None:
        return None
    try:
        ver = subprocess.run([cc, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             timeout=60).stdout.decode("utf-8", "replace").splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
    incs = []
    machine = os.uname().machine if hasattr(os, "uname") else ""
    multiarch = "/usr/include/%s-linux-gnu" % machine   # asm/types.h on Debian (-target bpf has no multiarch)
    if os.path.isdir(os.path.join(multiarch, "asm")):
        incs += ["-I", multiarch]
    if not os.path.exists("/usr/include/bpf/bpf_helpers.h") or not os.path.exists("/usr/include/linux/bpf.h"):
        return None
    return cc, ver, tuple(incs)


def why_not():
    """Why objects cannot be compiled here, or None."""
    if shutil.which(os.environ.get("BPFEMU_CLANG") or "clang") is None:
        return "clang is not installed (CI installs it: apt-get install clang libbpf-dev)"
    if clang() is None:
        return "the BPF headers are missing (linux/bpf.h, bpf/bpf_helpers.h: apt-get install libbpf-dev)"
    return None


def require_clang():
    why = why_not()
    if why:
        if os.environ.get("BPFEMU_REQUIRE_HOST") == "1":
            pytest.fail("BPFEMU_REQUIRE_HOST=1 but: %s" % why)
        pytest.skip(why)


def compile_source(text, name="prog", flags=()):
    """Compile C text into a cached object; returns its path. Raises RuntimeError with clang's output."""
    cc = clang()
    if cc is None:
        raise RuntimeError(why_not())
    path, ver, incs = cc
    argv = CFLAGS + list(incs) + list(flags)
    key = hashlib.sha256(("\0".join([ver] + argv) + "\0" + text).encode()).hexdigest()[:20]
    odir = os.path.join(cache_dir(), key)
    out = os.path.join(odir, name + ".bpf.o")   # the file name is the object's name (global data map names)
    if os.path.exists(out):
        return out
    d = tempfile.mkdtemp(prefix="bpfemu-cc-")
    try:
        src = os.path.join(d, name + ".bpf.c")
        with open(src, "w") as f:
            f.write(text)
        tmp = os.path.join(d, name + ".bpf.o")
        r = subprocess.run([path] + argv + ["-c", src, "-o", tmp], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
        if r.returncode:
            raise RuntimeError("clang failed on %s:\n%s" % (name, r.stdout.decode("utf-8", "replace")))
        os.makedirs(odir, exist_ok=True)
        shutil.move(tmp, out + ".tmp")
        os.replace(out + ".tmp", out)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return out


def compile_object(name, flags=()):
    """The compiled object of ``conformance/objects/<name>.bpf.c`` (or of a path to a ``.bpf.c``)."""
    src = name if os.sep in name else os.path.join(sources_dir(), name + ".bpf.c")
    with open(src) as f:
        text = f.read()
    base = os.path.basename(src)
    if base.endswith(".bpf.c"):
        base = base[:-len(".bpf.c")]
    elif base.endswith(".c"):
        base = base[:-2]
    return compile_source(text, base, flags)


def object_path(name):
    """For tests: the compiled object, skipping (or failing under BPFEMU_REQUIRE_HOST=1) without clang."""
    require_clang()
    return compile_object(name)


def need_kernel_types(sys, *names):
    """Skip unless the target's kernel BTF has these: struct names, FUNCs (kfuncs), or ``struct.member``
    (CO-RE and externs resolve against it, and off Linux the emulator's kernel BTF is bpfemu's small
    fallback, whose structs have few members)."""
    from ..btf import uapi as BU
    obj = getattr(getattr(sys, "kernel", None), "btf_vmlinux", None)
    if obj is not None:
        kb = obj.btf
    else:
        from ..btf.vmlinux import vmlinux_btf
        kb = vmlinux_btf(fallback=False)

    def has_member(tid, member, depth=0):
        t = kb.type_by_id(tid)
        for m in t.members:
            name = kb.str_by_offset(m[0])
            if name == member.encode():
                return True
            mt = kb.type_by_id(m[1])
            if not name and depth < 8 and mt.kind in (BU.BTF_KIND_STRUCT, BU.BTF_KIND_UNION) and \
                    has_member(m[1], member, depth + 1):
                return True
        return False

    for n in names:
        struct_name, _, member = n.partition(".")
        sid = kb.find_by_name_kind(struct_name, BU.BTF_KIND_STRUCT) if kb is not None else -1
        ok = sid > 0 and (not member or has_member(sid, member))
        if not ok and not member and kb is not None:
            ok = kb.find_by_name_kind(n, BU.BTF_KIND_FUNC) > 0
        if not ok:
            pytest.skip("the kernel BTF here has no %s (off Linux the emulator describes itself with bpfemu's "
                        "small fallback BTF)" % n)
