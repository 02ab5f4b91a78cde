"""python -m bpfemu <command>

    conform    run the conformance suite on the emulator and the host kernel, print command x backend results
    commands   list every bpf(2) command of the kernel and whether bpfemu implements it
    exec       run a command with its bpf(2) calls served by the emulator: exec [OPTIONS] -- CMD [ARGS...]
"""
import sys


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "conform":
        from .testing.conform import main as conform
        return conform(rest)
    if cmd == "exec":
        from .exec.cli import main as exec_main
        return exec_main(rest)
    if cmd == "commands":
        from .syscall.sys_bpf import implemented
        for name, ok in implemented().items():
            print("%-34s %s" % (name, "implemented" if ok else "not implemented (EINVAL)"))
        return 0
    sys.stderr.write("unknown command %r\n\n%s\n" % (cmd, __doc__.strip()))
    return 2


if __name__ == "__main__":
    sys.exit(main())
