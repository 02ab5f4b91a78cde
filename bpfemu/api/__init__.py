"""The typed user API: :class:`Map` (a map fd with Python keys and values), its codecs and BpfError.

Built only on a task's raw ``bpf()`` entry, so the same code drives an emulated task, ``bpfemu.Host()`` and
a ``HostTask``. ``handle`` holds Handle, the owned fd every typed object builds on (stale use is EBADF,
threads, the finalizer); ``map`` holds Map, MapInfo and Batch; ``codecs`` the key/value encodings;
``errors`` BpfError, whose message names the command and the map.
"""
from .codecs import Codec, codec  # noqa: F401
from .errors import BpfError, detail_for, make_error  # noqa: F401
from .handle import Handle  # noqa: F401
from .map import Batch, Map, MapInfo, issues, map_type_number  # noqa: F401
from .program import Program, ProgInfo, TestRun, prog_type_number  # noqa: F401

__all__ = ["Map", "MapInfo", "Batch", "BpfError", "Codec", "codec", "map_type_number", "Handle", "Program",
           "ProgInfo", "TestRun", "prog_type_number"]
