"""The command line of ``python3 -m bpfemu exec``."""
import argparse
import signal
import sys

from ..caps import CAP_NAMES


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python3 -m bpfemu exec",
        description="Run CMD with every bpf(2) call of its process tree served by one emulated kernel "
                    "(seccomp user notification; no root needed).")
    p.add_argument("--ncpus", type=int, default=None, help="possible CPUs of the emulated kernel (default: the host's)")
    p.add_argument("--state-dir", default=None, help="directory for the session's working files (default: a temporary one)")
    p.add_argument("--uid", type=int, default=0, help="the emulated uid of the processes (default 0)")
    p.add_argument("--cap", action="append", default=None, choices=sorted(CAP_NAMES),
                   help="an emulated capability (repeatable; default: all for uid 0, none otherwise)")
    p.add_argument("--debug", action="store_true", help="print every intercepted call and its answer on stderr")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        p.error("no command given")
    from .supervisor import run
    try:
        status = run(cmd, ncpus=args.ncpus, state_dir=args.state_dir, uid=args.uid, caps=args.cap, debug=args.debug)
    except OSError as e:
        sys.stderr.write("bpfemu exec: %s\n" % e)
        return 126
    if status < 0:
        return 128 - status if -status in signal.valid_signals() else 1
    return status
