"""bpfemu.Program on both backends: load, info, a refused load with its log, ids and pins."""
import errno

import pytest

from bpfemu import BpfError, Map, Program
from bpfemu.prog.insn import BPF_EXIT_INSN, BPF_LD_MAP_FD, BPF_MOV64_IMM


def test_load_info_and_close(proc):
    m = Map.create(proc, "array", key="I", value="Q", max_entries=1)
    with Program.load(proc, list(BPF_LD_MAP_FD(1, m.fd)) + [BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN()],
                      "socket_filter", name="api_test") as p:
        info = p.info()
        assert info.name == "api_test" and info.type == 1 and info.gpl_compatible
        assert info.map_ids == [m.info().id]
        assert len(info.tag) == 8
        with Program.from_id(proc, info.id) as again:
            assert again.info().tag == info.tag
    m.close()


def test_a_refused_load_raises_with_the_verifier_log(proc):
    with pytest.raises(BpfError) as e:
        Program.load(proc, [BPF_EXIT_INSN()], "socket_filter")
    assert e.value.errno == errno.EACCES and isinstance(e.value, PermissionError)
    assert "R0 !read_ok" in e.value.log.splitlines()
    assert "R0 !read_ok" in str(e.value)


def test_pin_and_get(proc):
    p = Program.load(proc, [BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN()], "xdp")
    path = proc.bpffs + "/prog_api_pin"
    p.pin(path)
    try:
        with Program.from_pin(proc, path) as q:
            assert q.info().id == p.info().id
    finally:
        proc.unlink(path)
        p.close()
