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


# -- Program.test_run -------------------------------------------------------------------------------------

def test_test_run_xdp(proc):
    """data in and out, the xdp_md context back (data_end moved by the packet's length), the return value."""
    from bpfemu.prog.insn import BPF_LDX_MEM, BPF_W
    insns = [BPF_LDX_MEM(BPF_W, 2, 1, 4), BPF_LDX_MEM(BPF_W, 1, 1, 0), BPF_MOV64_IMM(0, 0),
             (0x1f, 2, 1, 0, 0),            # r2 -= r1: the packet's length
             (0xbf, 0, 2, 0, 0), BPF_EXIT_INSN()]
    with Program.load(proc, insns, "xdp") as p:
        frame = bytes(range(60))
        r = p.test_run(data=frame)
        assert (r.retval, r.data_out, r.ctx_out) == (60, frame, None)
        import struct
        md = struct.pack("<6I", 0, len(frame), 0, 1, 0, 0)   # xdp_md: data, data_end, meta, ifindex 1 (lo)
        r = p.test_run(data=frame, ctx=md, repeat=3)
        assert r.retval == 60 and len(r.ctx_out) == 24


def test_test_run_raw_tracepoint(proc):
    """A raw tracepoint takes its args as the context, runs on the CPU asked, gives no context back."""
    from bpfemu.prog.insn import BPF_DW, BPF_LDX_MEM
    with Program.load(proc, [BPF_LDX_MEM(BPF_DW, 0, 1, 8), BPF_EXIT_INSN()], "raw_tracepoint") as p:
        import struct
        r = p.test_run(ctx=struct.pack("<QQ", 1, 0x1234), cpu=0)
        assert (r.retval, r.data_out, r.ctx_out) == (0x1234, None, None)
        with pytest.raises(BpfError) as e:
            p.test_run(ctx=struct.pack("<QQ", 1, 2), repeat=2)   # no repeat for raw tracepoints
        assert e.value.errno == errno.EINVAL and e.value.command == "BPF_PROG_TEST_RUN"


def test_test_run_not_supported(proc):
    """A type the kernel has no test run for: ENOTSUPP (524), not EOPNOTSUPP."""
    with Program.load(proc, [BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN()], "kprobe") as p:
        with pytest.raises(BpfError) as e:
            p.test_run(ctx=bytes(8))
        assert e.value.errno == 524


@pytest.mark.parametrize("field,size,ok", [("func_info_rec_size", 8, True), ("func_info_rec_size", 16, False),
                                           ("line_info_rec_size", 16, True), ("line_info_rec_size", 32, False),
                                           ("jited_line_info_rec_size", 8, True),
                                           ("jited_line_info_rec_size", 4, False)])
def test_info_record_sizes(proc, field, size, ok):
    """bpf_prog_info's record sizes must be the kernel's (8, 16, 8) when given; they come back set either way."""
    import ctypes
    from bpfemu import uapi
    with Program.load(proc, [BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN()], "socket_filter") as p:
        info = uapi.bpf_prog_info()
        setattr(info, field, size)
        a = uapi.make_attr(**{"info.bpf_fd": p.fd, "info.info_len": ctypes.sizeof(info),
                              "info.info": ctypes.addressof(info)})
        if not ok:
            with pytest.raises(OSError) as e:
                proc.bpf(uapi.BPF_OBJ_GET_INFO_BY_FD, a)
            assert e.value.errno == errno.EINVAL
            return
        proc.bpf(uapi.BPF_OBJ_GET_INFO_BY_FD, a)
        assert (info.func_info_rec_size, info.line_info_rec_size, info.jited_line_info_rec_size) == (8, 16, 8)
        assert (info.nr_func_info, info.nr_line_info, info.btf_id) == (0, 0, 0)
