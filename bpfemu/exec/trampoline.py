"""The first process of a ``bpfemu exec`` tree: install the seccomp filter, hand the listener to
the supervisor, exec the command.

Run as ``python3 -I -S trampoline.py SOCKFD FILTER_HEX -- CMD [ARGS...]`` (standalone: it imports
nothing from bpfemu, so it starts fast). FILTER_HEX is the classic BPF program, 8 bytes per
instruction (struct sock_filter). The listener fd goes to the supervisor over the unix socket
SOCKFD with SCM_RIGHTS; from then on every filtered syscall of this process and of everything
it forks or execs waits for the supervisor's answer.
"""
import ctypes
import os
import socket
import sys

PR_SET_NO_NEW_PRIVS = 38
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5
NR_SECCOMP = {"x86_64": 317}


class sock_fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def main(argv):
    sockfd, prog_hex = int(argv[1]), argv[2]
    if argv[3] != "--" or len(argv) < 5:
        sys.stderr.write("usage: trampoline.py SOCKFD FILTER_HEX -- CMD [ARGS...]\n")
        return 2
    cmd = argv[4:]
    prog = bytes.fromhex(prog_hex)
    buf = ctypes.create_string_buffer(prog, len(prog))
    fprog = sock_fprog(len(prog) // 8, ctypes.addressof(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    nr = NR_SECCOMP[os.uname().machine]
    sock = socket.socket(fileno=sockfd)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return _fail(sock, "prctl(PR_SET_NO_NEW_PRIVS)")
    flags = SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
    listener = libc.syscall(nr, SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(fprog))
    if listener < 0:  # before 5.19: no WAIT_KILLABLE_RECV
        listener = libc.syscall(nr, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, ctypes.byref(fprog))
    if listener < 0:
        return _fail(sock, "seccomp(SECCOMP_SET_MODE_FILTER, NEW_LISTENER)")
    socket.send_fds(sock, [b"L"], [listener])
    os.close(listener)
    sock.close()
    try:
        os.execvp(cmd[0], cmd)
    except OSError as e:
        sys.stderr.write("bpfemu exec: %s: %s\n" % (cmd[0], e.strerror))
        return 127 if e.errno == 2 else 126


def _fail(sock, what):
    e = ctypes.get_errno()
    msg = "%s: %s" % (what, os.strerror(e))
    sock.sendall(b"E" + msg.encode())
    sys.stderr.write("bpfemu exec: %s\n" % msg)
    return 125


if __name__ == "__main__":
    sys.exit(main(sys.argv))
