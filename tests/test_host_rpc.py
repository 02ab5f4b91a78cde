"""The host backend's child processes carry the memory of every declared command (bpfemu/syscall/table.py),
including the ones the emulator does not implement yet: the same PROG_LOAD, PROG_TEST_RUN,
OBJ_GET_INFO_BY_FD of a program and BTF_LOAD made by this process (bpfemu.Host, the raw syscall) and by a
HostTask (a child that gets copies of the declared buffers) give the same results and the same bytes.

Host only: skipped where the real syscall is unusable, failed then with BPFEMU_REQUIRE_HOST=1.
"""
import ctypes
import struct

import pytest

from bpfemu import uapi as u
from bpfemu.host import Host
from bpfemu.prog.insn import BPF_EXIT_INSN, BPF_MOV64_IMM, BPF_REG_0, encode
from bpfemu.testing.backends import need_host
from bpfemu.testing.support import addr, buf, make_attr


@pytest.fixture
def both():
    need_host()
    host = Host()
    child = host.spawn()
    yield host, child
    child.exit()
    host.exit()


def prog_load(task, log_size=4096):
    insns = buf(encode([BPF_MOV64_IMM(BPF_REG_0, 0), BPF_EXIT_INSN()]))
    license, log = buf(b"GPL\0"), buf(log_size)
    a = make_attr(prog_type=u.BPF_PROG_TYPE_SOCKET_FILTER, insn_cnt=2, insns=addr(insns), license=addr(license),
                  log_level=2, log_size=log_size, log_buf=addr(log))
    fd = task.bpf(u.BPF_PROG_LOAD, a)
    return fd, log.raw, a.log_true_size


def test_prog_load_carries_insns_license_and_log(both):
    (hfd, hlog, hsize), (cfd, clog, csize) = (prog_load(t) for t in both)
    assert hfd > 2 and cfd > 2
    assert b"processed 2 insns" in hlog and (clog, csize) == (hlog, hsize)


def test_prog_test_run_carries_data_in_and_out(both):
    out = []
    for t in both:
        fd = prog_load(t)[0]
        data_in, data_out = buf(bytes(range(64))), buf(b"\xee" * 128)
        a = make_attr(**{"test.prog_fd": fd, "test.data_in": addr(data_in), "test.data_size_in": 64,
                         "test.data_out": addr(data_out), "test.data_size_out": 128, "test.repeat": 1})
        assert t.bpf(u.BPF_PROG_TEST_RUN, a) == 0
        out.append((a.test.retval, a.test.data_size_out, data_out.raw))
    assert out[0] == out[1] and out[0][1] == 64 and out[0][2][64:] == b"\xee" * 64


def test_prog_info_carries_the_nested_buffers(both):
    out = []
    for t in both:
        fd = prog_load(t)[0]
        xlated = buf(64)
        info = u.bpf_prog_info(xlated_prog_len=64, xlated_prog_insns=addr(xlated))
        a = make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info), "info.info": addr(info)})
        t.bpf(u.BPF_OBJ_GET_INFO_BY_FD, a)
        out.append((info.type, info.xlated_prog_len, xlated.raw))
    assert out[0] == out[1] and out[0][0] == u.BPF_PROG_TYPE_SOCKET_FILTER and out[0][1] == 16
    assert out[0][2][:16] == encode([BPF_MOV64_IMM(BPF_REG_0, 0), BPF_EXIT_INSN()])


def minimal_btf():
    """BTF with one type, 'int' (4 bytes, 32 bits)."""
    strings = b"\0int\0"
    types = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", 32)  # BTF_KIND_INT, then its bits
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings


def test_btf_load_carries_the_blob_and_its_log(both):
    out = []
    for t in both:
        blob, log = buf(minimal_btf()), buf(1024)
        a = make_attr(btf=addr(blob), btf_size=len(minimal_btf()), btf_log_buf=addr(log), btf_log_size=1024,
                      btf_log_level=1)
        fd = t.bpf(u.BPF_BTF_LOAD, a)
        assert fd > 2
        out.append((log.raw, a.btf_log_true_size))
    assert out[0] == out[1] and out[0][1] > 0
