"""Array maps on the emulator alone: what no host can be asked (a 16 GiB array)."""
import time

import bpfemu
from bpfemu import uapi as u
from bpfemu.testing.support import create_map, map_info, u32, u64, update


def test_info_of_a_2g_entry_array_does_not_walk_it():
    """Emulator only (no host can allocate 16 GiB of array): without memory limit a
    (2^31 - 1)-entry ARRAY exists, and its info (no hash asked) is immediate."""
    t = bpfemu.Kernel(memory_limit=None).spawn()
    fd = create_map(t, u.BPF_MAP_TYPE_ARRAY, 4, 8, max_entries=(1 << 31) - 1)
    update(t, fd, u32(7), u64(1))
    start = time.monotonic()
    assert map_info(t, fd).max_entries == (1 << 31) - 1
    assert time.monotonic() - start < 1
