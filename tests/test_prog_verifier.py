"""The verifier called directly (bpf_check): global functions from a program BTF built with bpfemu.btf, the
log buffer modes, and what the walk reports. The verdicts and log lines are the host's (6.18), asked with
the same programs; conformance/test_prog_load.py and the corpus compare the rest on both backends."""
import struct

import pytest

from bpfemu import btf as B
from bpfemu.btf import Builder
from bpfemu.prog.insn import (BPF_ADD, BPF_ALU64_IMM, BPF_CALL_REL, BPF_EXIT_INSN, BPF_JEQ, BPF_JMP_IMM,
                              BPF_LDX_MEM, BPF_MOV64_IMM, BPF_MOV64_REG, BPF_ST_MEM, BPF_W)
from bpfemu.prog.types import PROG_TYPES
from bpfemu.prog.verifier import bpf_check
from bpfemu.prog.verifier.cfg import FuncInfo
from bpfemu.prog.verifier.log import VerifierLog

SCHED_CLS = 3


def prog_btf(arg="int", ret_int=True, tags=()):
    """int main(struct __sk_buff *ctx) and a global foo(<arg> x) returning int (or void)."""
    b = Builder()
    b.int("int", 4, signed=True)
    i = b.last
    b.struct("__sk_buff", [], size=0)
    skb = b.last
    b.ptr(skb)
    pskb = b.last
    b.ptr(i)
    pint = b.last
    b.func_proto(i, [("ctx", pskb)])
    b.func("main", b.last, linkage=1)
    main = b.last
    b.func_proto(i if ret_int else 0, [("x", {"int": i, "ctx": pskb, "ptrint": pint}[arg])])
    b.func("foo", b.last, linkage=1)
    foo = b.last
    for t in tags:
        b.decl_tag("arg:" + t, foo, 0)
    btf, err, log, _ = B.load(b.blob())
    assert err == 0, log
    return btf, main, foo


def check(insns, arg="int", ret_int=True, tags=(), level=2):
    btf, main, foo = prog_btf(arg, ret_int, tags)
    call = next(i for i, x in enumerate(insns) if x[0] == 0x85 and x[2] == 1)
    recs = [struct.pack("<II", 0, main), struct.pack("<II", call + insns[call][4] + 1, foo)]
    fi = FuncInfo(2, 8, lambda i: recs[i])
    return bpf_check([tuple(i) for i in insns], SCHED_CLS, PROG_TYPES[SCHED_CLS], log_level=level,
                     log_size=1 << 20, has_log_buf=True, func_info=fi, btf_of_fd=lambda fd: btf, prog_btf_fd=1)


def test_a_global_function_is_assumed_valid_at_the_call_and_verified_after_main():
    r = check([BPF_MOV64_IMM(1, 5), BPF_CALL_REL(2), BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN(),
               BPF_MOV64_REG(0, 1), BPF_ALU64_IMM(BPF_ADD, 0, 1), BPF_EXIT_INSN()])
    assert r.errno == 0
    lines = r.log.splitlines()
    assert "Func#1 ('foo') is global and assumed valid." in lines
    assert lines.index("Validating foo() func#1...") > lines.index("3: (95) exit")
    assert "4: R1=scalar() R10=fp0" in lines   # the argument is any scalar
    assert "Func#1 ('foo') is safe for any args that match its prototype" in lines


def test_a_ctx_argument_and_a_caller_that_passes_a_scalar():
    prog = [BPF_CALL_REL(2), BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN(), BPF_LDX_MEM(BPF_W, 0, 1, 0), BPF_EXIT_INSN()]
    r = check(prog, arg="ctx")
    assert r.errno == 0 and "3: R1=ctx() R10=fp0" in r.log.splitlines()
    r = check([BPF_MOV64_IMM(1, 0)] + prog, arg="ctx")   # r1 = 0 is no ctx
    assert r.errno == 22
    assert "Caller passes invalid args into func#1 ('foo')" in r.log.splitlines()


def test_a_pointer_argument_may_be_null_unless_tagged_nonnull():
    prog = [BPF_ST_MEM(BPF_W, 10, -4, 7), BPF_MOV64_REG(1, 10), BPF_ALU64_IMM(BPF_ADD, 1, -4),
            BPF_CALL_REL(2), BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN(), BPF_LDX_MEM(BPF_W, 0, 1, 0), BPF_EXIT_INSN()]
    r = check(prog, arg="ptrint")
    assert r.errno == 13 and "R1 invalid mem access 'mem_or_null'" in r.log.splitlines()
    assert "6: R1=mem_or_null(id=1,sz=4) R10=fp0" in r.log.splitlines()
    assert check(prog, arg="ptrint", tags=("nonnull",)).errno == 0
    checked = prog[:6] + [BPF_MOV64_IMM(0, 0), BPF_JMP_IMM(BPF_JEQ, 1, 0, 1), BPF_LDX_MEM(BPF_W, 0, 1, 0),
                          BPF_EXIT_INSN()]
    assert check(checked, arg="ptrint").errno == 0


def test_a_global_function_must_return_a_scalar():
    r = check([BPF_MOV64_IMM(1, 5), BPF_CALL_REL(2), BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN(),
               BPF_MOV64_IMM(0, 0), BPF_EXIT_INSN()], ret_int=False)
    assert r.errno == 22
    assert "Global function foo() doesn't return scalar. Only those are supported." in r.log.splitlines()


@pytest.mark.parametrize("fixed", [False, True])
def test_the_log_keeps_the_tail_or_the_head_and_reports_the_true_size(fixed):
    text = "".join("line %d\n" % i for i in range(100))
    log = VerifierLog(1 | (8 if fixed else 0), True, 64)
    log.write(text)
    data, true_size, err = log.finalize()
    assert err == 28 and true_size == len(text) + 1
    want = text[:63] if fixed else text[-63:]
    assert data.rstrip(b"\0") == want.encode()
