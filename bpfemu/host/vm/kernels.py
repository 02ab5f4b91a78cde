"""The real kernels the VM backend boots: pinned Debian packages, fetched into a cache outside git.

The cache keeps, per version, ``vmlinuz``, ``config``, the modules the launcher loads and, when
the payload can be decompressed here (xz, gzip; zstd with the ``zstd`` tool), ``vmlinux``: the
uncompressed ELF, which QEMU boots through its PVH entry without decompressing it under TCG
(3 s for an xz kernel). ``Cached.vmlinuz`` is the image to boot (vmlinux when there is one).

``PINS`` maps a version name ("6.1", "6.12") to the exact Debian package and version.
``fetch(version)`` downloads it with ``apt-get download`` and keeps the kernel image,
its config and the few modules the launcher needs under
``<cache>/kernels/<version>/``; ``cached(version)`` finds it there without the network.
"""
import collections
import json
import lzma
import os
import re
import shutil
import subprocess
import tempfile

Pin = collections.namedtuple("Pin", "package version")

# Debian 12 (bookworm): 6.1 LTS from the point release, 6.12 LTS from bookworm-security.
PINS = {
    "6.1": Pin("linux-image-6.1.0-50-amd64-unsigned", "6.1.176-1"),
    "6.12": Pin("linux-image-6.12.117+deb12-amd64-unsigned", "6.12.117-1~deb12u1"),
}

# What the guest needs beyond the built-in drivers: the virtio PCI transport, the
# virtio-serial port the RPC runs over, and 9p over virtio for the shared root.
# (Built in on some kernels, modules on others; dependencies are added from modinfo.)
WANTED_MODULES = ("virtio_pci", "virtio_console", "9pnet_virtio", "9p")


class KernelUnavailable(RuntimeError):
    """A pinned kernel is not in the cache and cannot be fetched (no apt, no network, package gone)."""


Cached = collections.namedtuple("Cached", "version directory vmlinuz modules release manifest")
LAYOUT = 2  # of the cache directory; a cache of another layout is fetched again


def cache_root():
    """``$BPFEMU_CACHE``, else ``$XDG_CACHE_HOME/bpfemu``, else ``~/.cache/bpfemu``."""
    root = os.environ.get("BPFEMU_CACHE")
    if root:
        return root
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(xdg, "bpfemu")


def kernel_dir(version):
    return os.path.join(cache_root(), "kernels", version)


def cached(version):
    """The cached kernel of ``version`` (a :class:`Cached`), or None when absent or of another pin."""
    d = kernel_dir(version)
    try:
        with open(os.path.join(d, "manifest.json")) as f:
            man = json.load(f)
    except (OSError, ValueError):
        return None
    pin = PINS.get(version)
    if pin is not None and (man.get("package"), man.get("version")) != (pin.package, pin.version):
        return None
    if man.get("layout") != LAYOUT:
        return None
    vmlinuz = os.path.join(d, "vmlinux" if man.get("vmlinux") else "vmlinuz")
    if not os.path.exists(vmlinuz):
        return None
    mods = [os.path.join(d, "modules", m) for m in man.get("modules", [])]
    return Cached(version, d, vmlinuz, mods, man.get("release"), man)


def config_option(kernel, name):
    """The value of build option ``name`` ("CONFIG_BPF_PRELOAD") in a :class:`Cached` kernel's config: "y",
    "m", a string, or None when it is not set."""
    try:
        with open(os.path.join(kernel.directory, "config")) as f:
            for line in f:
                if line.startswith(name + "="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return None


def fetch(version, verbose=False):
    """Make sure the pinned kernel of ``version`` is in the cache; return its :class:`Cached`.

    Raises KernelUnavailable with the reason when it cannot be fetched."""
    have = cached(version)
    if have is not None:
        return have
    pin = PINS.get(version)
    if pin is None:
        raise KernelUnavailable("no pinned kernel for version %r (pinned: %s)" % (version, ", ".join(PINS)))
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise KernelUnavailable("%s: %s not found (fetching kernels needs a Debian system)" % (version, tool))
    os.makedirs(os.path.join(cache_root(), "kernels"), exist_ok=True)
    work = tempfile.mkdtemp(prefix="fetch-%s-" % version, dir=os.path.join(cache_root(), "kernels"))
    try:
        os.chmod(work, 0o755)  # apt's _apt user downloads into it when it can
        spec = "%s=%s" % (pin.package, pin.version)
        r = subprocess.run(["apt-get", "download", "-q", spec], cwd=work, capture_output=True, text=True)
        debs = [f for f in os.listdir(work) if f.endswith(".deb")]
        if r.returncode != 0 or not debs:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise KernelUnavailable("%s: apt-get download %s failed: %s" % (
                version, spec, msg[-1] if msg else "exit %d" % r.returncode))
        tree = os.path.join(work, "tree")
        r = subprocess.run(["dpkg-deb", "-x", os.path.join(work, debs[0]), tree], capture_output=True, text=True)
        if r.returncode != 0:
            raise KernelUnavailable("%s: dpkg-deb -x failed: %s" % (version, r.stderr.strip()))
        out = os.path.join(work, "out")
        os.makedirs(os.path.join(out, "modules"))
        release = _install(tree, out)
        manifest = {"package": pin.package, "version": pin.version, "release": release, "layout": LAYOUT,
                    "vmlinux": _extract_vmlinux(os.path.join(out, "vmlinuz"), os.path.join(out, "vmlinux")),
                    "modules": _modules(tree, release, os.path.join(out, "modules"))}
        with open(os.path.join(out, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
        dest = kernel_dir(version)
        if os.path.exists(dest):
            shutil.rmtree(dest)
        os.rename(out, dest)
        if verbose:
            print("%s: %s=%s -> %s" % (version, pin.package, pin.version, dest))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    have = cached(version)
    if have is None:
        raise KernelUnavailable("%s: the cache at %s is unusable after fetching" % (version, kernel_dir(version)))
    return have


def _install(tree, out):
    boot = os.path.join(tree, "boot")
    images = [f for f in os.listdir(boot) if f.startswith("vmlinuz-")]
    if len(images) != 1:
        raise KernelUnavailable("expected one vmlinuz in the package, found %r" % images)
    release = images[0][len("vmlinuz-"):]
    shutil.copyfile(os.path.join(boot, images[0]), os.path.join(out, "vmlinuz"))
    shutil.copyfile(os.path.join(boot, "config-" + release), os.path.join(out, "config"))
    return release


def _extract_vmlinux(vmlinuz, dest):
    """Write the uncompressed kernel ELF inside a bzImage to dest; False when it cannot be had here.

    The payload's place is in the setup header (boot protocol 2.08+: payload_offset at 0x248,
    payload_length at 0x24c, relative to the protected-mode code after the setup sectors)."""
    import struct
    with open(vmlinuz, "rb") as f:
        img = f.read()
    if img[0x202:0x206] != b"HdrS":
        return False
    setup_sects = img[0x1F1] or 4
    off, n = struct.unpack_from("<II", img, 0x248)
    payload = img[(setup_sects + 1) * 512 + off:][:n]
    elf = None
    if payload[:6] == b"\xfd7zXZ\x00":
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload[:2] == b"\x1f\x8b":
        import zlib
        elf = zlib.decompressobj(31).decompress(payload)
    elif payload[:4] == b"\x28\xb5\x2f\xfd" and shutil.which("zstd"):
        r = subprocess.run(["zstd", "-dcq"], input=payload, capture_output=True)
        elf = r.stdout if r.stdout[:4] == b"\x7fELF" else None
    if not elf or elf[:4] != b"\x7fELF":
        return False
    with open(dest, "wb") as f:
        f.write(elf)
    return True


def _read_module(path):
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        data = lzma.decompress(data)
    elif path.endswith(".zst"):
        raise KernelUnavailable("zstd-compressed modules are not supported: %s" % path)
    return data


def _modinfo(data, key):
    m = re.search(rb"\0" + key.encode() + rb"=([^\0]*)\0", b"\0" + data)
    return m.group(1).decode() if m else ""


def _modules(tree, release, dest):
    """Copy WANTED_MODULES (those built as modules) and their dependencies into dest, in load order."""
    root = os.path.join(tree, "lib", "modules", release)
    by_name = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            m = re.match(r"(.+)\.ko(\.xz|\.zst|\.gz)?$", f)
            if m:
                by_name[m.group(1).replace("-", "_")] = os.path.join(dirpath, f)
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen or name not in by_name:  # not a module: built in
            return
        seen.add(name)
        data = _read_module(by_name[name])
        for dep in filter(None, _modinfo(data, "depends").split(",")):
            visit(dep)
        fname = name + ".ko"
        with open(os.path.join(dest, fname), "wb") as f:
            f.write(data)
        order.append(fname)

    for name in WANTED_MODULES:
        visit(name)
    return order
