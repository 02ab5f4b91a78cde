"""Programs and maps at run time, on both backends: a map lookup gives the program the map's own value storage
(what it writes, userspace reads back through LOOKUP and through mmap, and the other way round); ring buffer
records read through mmap as libbpf's consumer reads them; BPF_ENABLE_STATS counts runs in the program's info;
BPF_PROG_BIND_MAP adds a map to the program's used maps; helpers that see the test's CPU.

Programs run through ``bpfemu.Program.test_run`` (BPF_PROG_TEST_RUN).
"""
import ctypes
import errno
import struct

import pytest

from bpfemu import Program, uapi as u
from bpfemu.prog.insn import *  # noqa: F401,F403 - builders read like the kernel's macros
from bpfemu.testing.support import array_map, create_map, hash_map, lookup, u32, u64, update

PAGE = 4096


def load(proc, insns, prog_type):
    return Program.load(proc, encode(insns), prog_type)


FRAME = bytes(range(1, 61))
BPF_F_TEST_RUN_ON_CPU = 1


def lookup_key0(map_fd, miss_ret=0):
    """r0 = bpf_map_lookup_elem(map, &(u32)0); on NULL return ``miss_ret``; r6 = the value pointer after."""
    return [BPF_ST_MEM(BPF_W, BPF_REG_10, -4, 0), BPF_MOV64_REG(BPF_REG_2, BPF_REG_10),
            BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, -4), BPF_LD_MAP_FD(BPF_REG_1, map_fd),
            BPF_EMIT_CALL(u.BPF_FUNC_map_lookup_elem), BPF_JMP_IMM(BPF_JNE, BPF_REG_0, 0, 2),
            BPF_MOV64_IMM(BPF_REG_0, miss_ret), BPF_EXIT_INSN(), BPF_MOV64_REG(BPF_REG_6, BPF_REG_0)]


def counter_prog(map_fd):
    """XDP: value[0] (u64) += 1 through the lookup's pointer; returns the new value."""
    return lookup_key0(map_fd) + [BPF_MOV64_IMM(BPF_REG_1, 1), BPF_STX_XADD(BPF_DW, BPF_REG_6, BPF_REG_1, 0),
                                  BPF_LDX_MEM(BPF_DW, BPF_REG_0, BPF_REG_6, 0), BPF_EXIT_INSN()]


def test_program_writes_reach_userspace_and_back(proc):
    fd = array_map(proc, value_size=8, max_entries=4)
    with load(proc, counter_prog(fd), "xdp") as p:
        r = p.test_run(data=FRAME, repeat=5)
        assert r.retval == 5
        assert lookup(proc, fd, u32(0), 8) == u64(5)
        update(proc, fd, u32(0), u64(100))
        assert p.test_run(data=FRAME).retval == 101
        assert lookup(proc, fd, u32(0), 8) == u64(101)
        assert lookup(proc, fd, u32(1), 8) == u64(0)


def test_percpu_array_counts_on_the_run_cpu(proc):
    """A per-CPU array's lookup gives the value of the CPU the program runs on (the test's CPU for a raw
    tracepoint run with BPF_F_TEST_RUN_ON_CPU); userspace sees one value per possible CPU."""
    from bpfemu.testing.support import possible_cpus
    ncpus = possible_cpus(proc)
    fd = create_map(proc, u.BPF_MAP_TYPE_PERCPU_ARRAY, value_size=8, max_entries=1)
    with load(proc, counter_prog(fd), "raw_tracepoint") as p:
        assert p.test_run(cpu=ncpus - 1).retval == 1
        assert p.test_run(cpu=ncpus - 1).retval == 2
        assert p.test_run(cpu=0).retval == 1
    vals = lookup(proc, fd, u32(0), 8 * ncpus)
    want = [0] * ncpus
    want[0] += 1
    want[ncpus - 1] += 2
    assert list(struct.unpack("<%dQ" % ncpus, vals)) == want


def test_hash_update_from_the_program(proc):
    """bpf_map_update_elem from the program: key 7 gets the packet's length; a lookup answers it."""
    fd = hash_map(proc, key_size=4, value_size=8, max_entries=8)
    prog = [BPF_LDX_MEM(BPF_W, BPF_REG_2, BPF_REG_1, 4), BPF_LDX_MEM(BPF_W, BPF_REG_3, BPF_REG_1, 0),
            BPF_ALU64_REG(BPF_SUB, BPF_REG_2, BPF_REG_3), BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_2, -16),
            BPF_ST_MEM(BPF_W, BPF_REG_10, -4, 7), BPF_MOV64_REG(BPF_REG_2, BPF_REG_10),
            BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, -4), BPF_MOV64_REG(BPF_REG_3, BPF_REG_10),
            BPF_ALU64_IMM(BPF_ADD, BPF_REG_3, -16), BPF_LD_MAP_FD(BPF_REG_1, fd), BPF_MOV64_IMM(BPF_REG_4, 0),
            BPF_EMIT_CALL(u.BPF_FUNC_map_update_elem), BPF_EXIT_INSN()]
    with load(proc, prog, "xdp") as p:
        assert p.test_run(data=FRAME).retval == 0
        assert lookup(proc, fd, u32(7), 8) == u64(len(FRAME))
        assert p.test_run(data=FRAME[:20]).retval == 0
        assert lookup(proc, fd, u32(7), 8) == u64(20)


def test_mmap_sees_what_the_program_wrote(proc):
    fd = array_map(proc, value_size=8, max_entries=4, flags=u.BPF_F_MMAPABLE)
    with proc.mmap(fd, PAGE) as m, load(proc, counter_prog(fd), "xdp") as p:
        p.test_run(data=FRAME, repeat=3)
        assert m[0:8] == u64(3)
        m[0:8] = u64(41)
        assert p.test_run(data=FRAME).retval == 42


def test_direct_value_access(proc):
    """ld_imm64 of a map value (BPF_PSEUDO_MAP_VALUE): the program stores into the array's first value."""
    fd = array_map(proc, value_size=16, max_entries=1)
    prog = [BPF_LD_MAP_VALUE(BPF_REG_1, fd, 8), BPF_ST_MEM(BPF_DW, BPF_REG_1, 0, 0x5566),
            BPF_MOV64_IMM(BPF_REG_0, 2), BPF_EXIT_INSN()]
    with load(proc, prog, "xdp") as p:
        assert p.test_run(data=FRAME).retval == 2
    assert lookup(proc, fd, u32(0), 16) == bytes(8) + u64(0x5566)


# -- ring buffers ------------------------------------------------------------------------------------------

RB_SIZE = PAGE
BUSY, DISCARD = 1 << 31, 1 << 30


def ringbuf_records(proc, fd):
    """Every record between the consumer and producer positions, as libbpf's ringbuf_process_ring reads them
    (the producer page and the data mapped read-only at page 1): [(len, flags, pg_off, data)]."""
    with proc.mmap(fd, PAGE, 0) as cons, proc.mmap(fd, PAGE + 2 * RB_SIZE, PAGE, writable=False) as m:
        c = struct.unpack("<Q", cons[0:8])[0]
        prod = struct.unpack("<Q", m[0:8])[0]
        out = []
        while c < prod:
            off = PAGE + (c & (RB_SIZE - 1))
            ln, pg = struct.unpack("<II", m[off:off + 8])
            size = ln & ~(BUSY | DISCARD)
            out.append((size, ln & (BUSY | DISCARD), pg, bytes(m[off + 8:off + 8 + size])))
            c += (size + 8 + 7) & ~7
        cons[0:8] = u64(c)
    return out


def test_ringbuf_output_and_reserve(proc):
    """bpf_ringbuf_output of 6 bytes of the stack, then a reserved record of 12 bytes written and submitted,
    then one discarded: the consumer reads three records with their headers (discard bit on the third)."""
    fd = create_map(proc, u.BPF_MAP_TYPE_RINGBUF, key_size=0, value_size=0, max_entries=RB_SIZE)
    prog = [BPF_LD_IMM64(BPF_REG_1, 0x0000665544332211), BPF_STX_MEM(BPF_DW, BPF_REG_10, BPF_REG_1, -8),
            BPF_LD_MAP_FD(BPF_REG_1, fd), BPF_MOV64_REG(BPF_REG_2, BPF_REG_10), BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, -8),
            BPF_MOV64_IMM(BPF_REG_3, 6), BPF_MOV64_IMM(BPF_REG_4, 0), BPF_EMIT_CALL(u.BPF_FUNC_ringbuf_output),
            BPF_MOV64_REG(BPF_REG_7, BPF_REG_0),
            BPF_LD_MAP_FD(BPF_REG_1, fd), BPF_MOV64_IMM(BPF_REG_2, 12), BPF_MOV64_IMM(BPF_REG_3, 0),
            BPF_EMIT_CALL(u.BPF_FUNC_ringbuf_reserve), BPF_JMP_IMM(BPF_JEQ, BPF_REG_0, 0, 14),
            BPF_ST_MEM(BPF_DW, BPF_REG_0, 0, 0x01020304), BPF_ST_MEM(BPF_W, BPF_REG_0, 8, -1),
            BPF_MOV64_REG(BPF_REG_1, BPF_REG_0), BPF_MOV64_IMM(BPF_REG_2, 0),
            BPF_EMIT_CALL(u.BPF_FUNC_ringbuf_submit),
            BPF_LD_MAP_FD(BPF_REG_1, fd), BPF_MOV64_IMM(BPF_REG_2, 4), BPF_MOV64_IMM(BPF_REG_3, 0),
            BPF_EMIT_CALL(u.BPF_FUNC_ringbuf_reserve), BPF_JMP_IMM(BPF_JEQ, BPF_REG_0, 0, 3),
            BPF_MOV64_REG(BPF_REG_1, BPF_REG_0), BPF_MOV64_IMM(BPF_REG_2, 0),
            BPF_EMIT_CALL(u.BPF_FUNC_ringbuf_discard),
            BPF_MOV64_REG(BPF_REG_0, BPF_REG_7), BPF_EXIT_INSN()]
    with load(proc, prog, "xdp") as p:
        assert p.test_run(data=FRAME).retval == 0
        recs = ringbuf_records(proc, fd)
        assert [(n, f, d) for n, f, _, d in recs] == [
            (6, 0, bytes.fromhex("112233445566")), (12, 0, u64(0x01020304) + b"\xff" * 4), (4, DISCARD, bytes(4))]
        assert len({pg for _, _, pg, _ in recs}) == 1      # all on the ring's first data page
        # the ring wraps: 100 runs of 3 records (64 bytes) go round a 4 KiB ring 1.5 times, each consumed
        for _ in range(100):
            assert p.test_run(data=FRAME).retval == 0
            assert [n for n, _, _, _ in ringbuf_records(proc, fd)] == [6, 12, 4]


def test_ringbuf_full(proc):
    """bpf_ringbuf_output with no room: -EAGAIN; a reserve past the ring's size: NULL."""
    fd = create_map(proc, u.BPF_MAP_TYPE_RINGBUF, key_size=0, value_size=0, max_entries=RB_SIZE)
    prog = [BPF_ST_MEM(BPF_DW, BPF_REG_10, -8, 0), BPF_LD_MAP_FD(BPF_REG_1, fd),
            BPF_MOV64_REG(BPF_REG_2, BPF_REG_10), BPF_ALU64_IMM(BPF_ADD, BPF_REG_2, -8),
            BPF_MOV64_IMM(BPF_REG_3, 8), BPF_MOV64_IMM(BPF_REG_4, 0), BPF_EMIT_CALL(u.BPF_FUNC_ringbuf_output),
            BPF_EXIT_INSN()]
    with load(proc, prog, "xdp") as p:
        rets = [p.test_run(data=FRAME).retval for _ in range(RB_SIZE // 16 + 1)]
    assert rets[:RB_SIZE // 16 - 1] == [0] * (RB_SIZE // 16 - 1)
    assert rets[-1] == (-errno.EAGAIN) & 0xFFFFFFFF


@pytest.mark.parametrize("offset,length,writable,want", [
    (0, PAGE, True, 0), (PAGE, PAGE, True, errno.EPERM), (0, 2 * PAGE, True, errno.EPERM),
    (PAGE, PAGE + 2 * RB_SIZE, False, 0), (PAGE, PAGE + 2 * RB_SIZE + PAGE, False, errno.EINVAL)])
def test_ringbuf_mmap_rules(proc, offset, length, writable, want):
    fd = create_map(proc, u.BPF_MAP_TYPE_RINGBUF, key_size=0, value_size=0, max_entries=RB_SIZE)
    try:
        with proc.mmap(fd, length, offset, writable=writable):
            got = 0
    except OSError as e:
        got = e.errno
    assert got == want


# -- BPF_ENABLE_STATS, BPF_PROG_BIND_MAP ---------------------------------------------------------------------

def prog_info(proc, fd, nr_map_ids=0):
    ids = (ctypes.c_uint32 * max(nr_map_ids, 1))()
    info = u.bpf_prog_info()
    info.nr_map_ids = nr_map_ids
    info.map_ids = ctypes.addressof(ids)
    proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, u.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info),
                                                      "info.info": ctypes.addressof(info)}))
    return info, list(ids[:min(info.nr_map_ids, nr_map_ids)])


def map_id(proc, fd):
    info = u.bpf_map_info()
    proc.bpf(u.BPF_OBJ_GET_INFO_BY_FD, u.make_attr(**{"info.bpf_fd": fd, "info.info_len": ctypes.sizeof(info),
                                                      "info.info": ctypes.addressof(info)}))
    return info.id


def test_enable_stats_counts_runs(proc):
    """While a BPF_ENABLE_STATS fd is open, each run of a test run counts (repeat runs count each); an
    unknown stats type is EINVAL."""
    with pytest.raises(OSError) as e:
        proc.bpf(u.BPF_ENABLE_STATS, u.make_attr(**{"enable_stats.type": 1}))
    assert e.value.errno == errno.EINVAL
    with load(proc, [BPF_MOV64_IMM(BPF_REG_0, 2), BPF_EXIT_INSN()], "xdp") as p:
        sfd = proc.bpf(u.BPF_ENABLE_STATS, u.make_attr(**{"enable_stats.type": 0}))
        try:
            before = prog_info(proc, p.fd)[0].run_cnt
            p.test_run(data=FRAME, repeat=4)
            p.test_run(data=FRAME)
            info = prog_info(proc, p.fd)[0]
            assert info.run_cnt - before == 5
        finally:
            proc.close(sfd)


def test_prog_bind_map(proc):
    """BPF_PROG_BIND_MAP adds the map to the program's map_ids once; flags must be 0; the map fd must be a
    map (EINVAL) and the program fd a program (EINVAL)."""
    m1 = array_map(proc, value_size=8, max_entries=1)
    m2 = hash_map(proc, key_size=4, value_size=8, max_entries=4)
    with load(proc, counter_prog(m1), "xdp") as p:
        def bind(prog_fd, map_fd, flags=0):
            return proc.bpf(u.BPF_PROG_BIND_MAP, u.make_attr(**{"prog_bind_map.prog_fd": prog_fd,
                                                                "prog_bind_map.map_fd": map_fd,
                                                                "prog_bind_map.flags": flags}))
        assert prog_info(proc, p.fd, 4)[1] == [map_id(proc, m1)]
        assert bind(p.fd, m2) == 0
        assert bind(p.fd, m2) == 0
        assert bind(p.fd, m1) == 0
        info, ids = prog_info(proc, p.fd, 4)
        assert info.nr_map_ids == 2 and ids == [map_id(proc, m1), map_id(proc, m2)]
        errs = {}
        for name, args in (("flags", (p.fd, m2, 1)), ("map is a prog", (p.fd, p.fd)),
                           ("prog is a map", (m1, m2)), ("bad map fd", (p.fd, 999)), ("bad prog fd", (999, m2))):
            try:
                bind(*args)
                errs[name] = 0
            except OSError as e:
                errs[name] = e.errno
        assert errs == {"flags": errno.EINVAL, "map is a prog": errno.EINVAL, "prog is a map": errno.EINVAL,
                        "bad map fd": errno.EBADF, "bad prog fd": errno.EBADF}


# -- helpers that see what the test chose ---------------------------------------------------------------------

def test_smp_processor_id_is_the_run_cpu(proc):
    from bpfemu.testing.support import possible_cpus
    with load(proc, [BPF_EMIT_CALL(u.BPF_FUNC_get_smp_processor_id), BPF_EXIT_INSN()],
                      "raw_tracepoint") as p:
        for cpu in sorted({0, possible_cpus(proc) - 1}):
            assert p.test_run(cpu=cpu).retval == cpu


def test_ktime_goes_forward(proc):
    """Two bpf_ktime_get_ns in one run: the second is not before the first (returns 1 when so)."""
    prog = [BPF_EMIT_CALL(u.BPF_FUNC_ktime_get_ns), BPF_MOV64_REG(BPF_REG_6, BPF_REG_0),
            BPF_EMIT_CALL(u.BPF_FUNC_ktime_get_ns), BPF_MOV64_REG(BPF_REG_1, BPF_REG_0),
            BPF_MOV64_IMM(BPF_REG_0, 1), BPF_JMP_REG(BPF_JGE, BPF_REG_1, BPF_REG_6, 1),
            BPF_MOV64_IMM(BPF_REG_0, 0), BPF_EXIT_INSN()]
    with load(proc, prog, "xdp") as p:
        assert p.test_run(data=FRAME, repeat=3).retval == 1
