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
    p.add_argument("--state-dir", default=None,
                   help="keep the emulated kernel alive in a daemon of this directory, so that pins survive to the "
                        "next bpfemu exec with the same --state-dir (default: a kernel for this command only)")
    p.add_argument("--stop", action="store_true", help="with --state-dir and no command: stop that directory's daemon")
    p.add_argument("--uid", type=int, default=0, help="the emulated uid of the processes (default 0)")
    p.add_argument("--cap", action="append", default=None, choices=sorted(CAP_NAMES),
                   help="an emulated capability (repeatable; default: all for uid 0, none otherwise)")
    p.add_argument("--debug", action="store_true", help="print every intercepted call and its answer on stderr")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD [ARGS...]")
    args = p.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if args.stop:
        if args.state_dir is None or cmd:
            p.error("--stop takes --state-dir DIR and no command")
        from .daemon import stop
        try:
            stop(args.state_dir)
        except OSError as e:
            sys.stderr.write("bpfemu exec: %s\n" % e)
            return 1
        return 0
    if not cmd:
        p.error("no command given")
    from . import run
    # The terminal sends SIGINT/SIGQUIT to the command too: the supervisor keeps serving until it is gone.
    # (A Python handler, not SIG_IGN, so that the command does not inherit it across exec.)
    saved = {sig: signal.signal(sig, lambda _sig, _frame: None) for sig in (signal.SIGINT, signal.SIGQUIT)}
    try:
        status = run(cmd, ncpus=args.ncpus, state_dir=args.state_dir, uid=args.uid, caps=args.cap, debug=args.debug)
    except OSError as e:
        sys.stderr.write("bpfemu exec: %s\n" % e)
        return 126
    finally:
        for sig, h in saved.items():
            signal.signal(sig, h)
    if status < 0:
        return 128 - status if -status in signal.valid_signals() else 1
    return status
