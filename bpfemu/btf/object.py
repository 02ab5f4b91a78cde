"""BTF objects: a loaded BTF as the kernel keeps it (``struct btf``'s id, refcount and name; btf_fops).

A :class:`BtfObject` is what BPF_BTF_LOAD makes and what a BTF fd, a map (``map->btf``) and later a
program hold. Its types are a :class:`~bpfemu.btf.btf.Btf` (``obj.btf``), shared and immutable; the
object adds what belongs to one emulated kernel: the id from the kernel's btf idr, the holders, the
name and whether it is the kernel's own.

Each :class:`~bpfemu.kernel.Kernel` has one kernel BTF object, ``vmlinux`` (:func:`vmlinux_object`),
which takes the first id of the btf idr as on the host, where the kernel registers its own BTF at boot
(6.18: id 1, ``kernel_btf`` 1, name "vmlinux"). It is held by the kernel for good (``BUILT_IN``), and its
types are read only when first needed, so creating a Kernel costs nothing. Where those types are bpfemu's own
(off Linux, or ``Kernel(btf_vmlinux=None)``), the object also notes the names the kernel looked up there and
did not find (:meth:`BtfObject.not_described`): what a program needed of the kernel's BTF that bpfemu's does
not describe, the likely reason a load refused off Linux is accepted on Linux.
"""
from ..objects import BUILT_IN, BpfObject
from .uapi import KIND_STR
from .vmlinux import VMLINUX_PATH, is_built_in, vmlinux_btf


class BuiltInKernelBtf:
    """bpfemu's own kernel BTF as one kernel uses it: the shared :class:`~bpfemu.btf.btf.Btf` (every
    attribute is its), except that :meth:`find_by_name_kind` notes each name it does not find."""

    def __init__(self, btf):
        self._btf = btf
        self.missed = {}   # name (bytes) -> {BTF kind} looked up in vain
        self.found = set()  # names found under some kind

    def find_by_name_kind(self, name, kind):
        i = self._btf.find_by_name_kind(name, kind)
        key = name.encode("latin-1") if isinstance(name, str) else bytes(name)
        if i is not None and i > 0:
            self.found.add(key)
        else:
            self.missed.setdefault(key, set()).add(kind)
        return i

    def __getattr__(self, name):
        value = getattr(self._btf, name)
        if callable(value):
            setattr(self, name, value)  # bound methods: looked up once
        return value


class BtfObject(BpfObject):
    """A BTF object: ``btf`` (the parsed types), ``name`` (bytes: b"vmlinux" for the kernel's, b"" for
    a loaded one), ``kernel_btf`` (bpf_btf_info.kernel_btf)."""

    kind = "btf"

    def __init__(self, kernel, btf=None, name=b"", kernel_btf=False, loader=None):
        super().__init__(kernel)
        self._btf = btf
        self._loader = loader  # () -> Btf, for the kernel's BTF (read on first use)
        self.name = name
        self.kernel_btf = kernel_btf

    @property
    def btf(self):
        """The :class:`~bpfemu.btf.btf.Btf` of this object (the kernel's is loaded on first use)."""
        if self._btf is None:
            b = self._loader()
            self._btf = BuiltInKernelBtf(b) if self.kernel_btf and is_built_in(b) else b
        return self._btf

    def not_described(self):
        """The names (str, sorted, with their kinds: ``'struct tcp_sock'``, ``'func dentry_open'``) this
        kernel looked up in its BTF and did not find, where that BTF is bpfemu's own (off Linux); [] for a
        kernel BTF read from a kernel's file, whose misses are the kernel's too."""
        b = self._btf
        if not isinstance(b, BuiltInKernelBtf):
            return []
        out = []
        for name in sorted(set(b.missed) - b.found):
            kinds = "/".join(KIND_STR[k].lower() if k < len(KIND_STR) else str(k) for k in sorted(b.missed[name]))
            out.append("%s %s" % (kinds, name.decode("latin-1")))
        return out

    @property
    def loaded(self):
        """Whether the types are in memory (always, except for a kernel BTF not read yet)."""
        return self._btf is not None

    @property
    def data_size(self):
        """btf->data_size: the blob's size in bytes (bpf_btf_info.btf_size)."""
        return self.btf.data_size

    def raw_bytes(self):
        """btf->data: the blob as loaded (what bpf_btf_info.btf receives)."""
        return self.btf.data

    def show_fdinfo(self):
        """bpf_btf_show_fdinfo."""
        return [("btf_id", str(self.id))]

    def type_name(self):
        return "btf"

    def __repr__(self):
        return "<btf %s id %d>" % (self.name.decode("latin-1") or "(anon)", self.id)


def vmlinux_object(kernel, path=VMLINUX_PATH):
    """The kernel's BTF object for ``kernel``: registered (the first btf id) and held for good.

    ``path``: the file its types come from (the host's /sys/kernel/btf/vmlinux by default; None, or a
    missing file, gives the BTF bpfemu builds). Nothing is read here."""
    obj = BtfObject(kernel, name=b"vmlinux", kernel_btf=True, loader=lambda: vmlinux_btf(path))
    kernel.register(obj)
    obj.hold(BUILT_IN)
    return obj
