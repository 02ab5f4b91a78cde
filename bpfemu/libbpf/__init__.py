"""What libbpf does in userspace, for any bpf(2) backend: open a clang-compiled BPF object file and load it.

``Object`` (``object.py``: bpf_object__open/load), ``elf.py`` (the ELF sections, with pyelftools),
``section_defs.py`` (program types by ``SEC()`` name), ``maps.py`` (BTF-defined, legacy and global data
maps), ``btf_edit.py`` (the object's BTF as libbpf fixes it up, and ``.BTF.ext``), ``relo_core.py`` (CO-RE
relocations against the target kernel's BTF). Sits above ``api/`` (it hands out ``bpfemu.Program`` and
``bpfemu.Map``) and below ``testing/``. docs/objects.md says what is supported.
"""
from .elf import ObjectError, ObjectFormatError  # noqa: F401
from .maps import MapSpec  # noqa: F401
from .object import GlobalData, Object, ProgramSpec  # noqa: F401
from .section_defs import find_sec_def  # noqa: F401

__all__ = ["Object", "ProgramSpec", "MapSpec", "GlobalData", "ObjectError", "ObjectFormatError", "find_sec_def"]
