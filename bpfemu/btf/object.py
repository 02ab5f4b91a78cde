"""BTF objects: a loaded BTF as the kernel keeps it (``struct btf``'s id, refcount and name; btf_fops).

A :class:`BtfObject` is what BPF_BTF_LOAD makes and what a BTF fd, a map (``map->btf``) and later a
program hold. Its types are a :class:`~bpfemu.btf.btf.Btf` (``obj.btf``), shared and immutable; the
object adds what belongs to one emulated kernel: the id from the kernel's btf idr, the holders, the
name and whether it is the kernel's own.

Each :class:`~bpfemu.kernel.Kernel` has one kernel BTF object, ``vmlinux`` (:func:`vmlinux_object`),
which takes the first id of the btf idr as on the host, where the kernel registers its own BTF at boot
(6.18: id 1, ``kernel_btf`` 1, name "vmlinux"). It is held by the kernel for good (``BUILT_IN``), and its
types are read only when first needed, so creating a Kernel costs nothing.
"""
from ..objects import BUILT_IN, BpfObject
from .vmlinux import VMLINUX_PATH, vmlinux_btf


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
            self._btf = self._loader()
        return self._btf

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
