"""Start the guest agent without importing all of bpfemu (the guest runs Python under TCG, slowly).

    python3 -S .../bpfemu/host/vm/guest_boot.py PROJECT_ROOT PORT

``bpfemu``, ``bpfemu.host`` and ``bpfemu.host.vm`` are put in sys.modules as bare packages, so the
host child loop (:mod:`bpfemu.host.rpc`) and what it needs load without ``bpfemu/__init__`` pulling in
every map type; ``-S`` skips the
site module (its .pth files cost most of a second in the guest), the launcher puts the
site-packages directories on PYTHONPATH instead.
"""
import os
import sys
import types


def _package(name, path):
    m = types.ModuleType(name)
    m.__path__ = [path]
    m.__package__ = name
    sys.modules[name] = m
    return m


def main():
    root = sys.argv[1]
    sys.path[0] = root  # not this file's directory
    _package("bpfemu", os.path.join(root, "bpfemu"))
    _package("bpfemu.host", os.path.join(root, "bpfemu", "host"))
    _package("bpfemu.host.vm", os.path.join(root, "bpfemu", "host", "vm"))
    from bpfemu.host.vm import guest
    guest.main(sys.argv[2:])


if __name__ == "__main__":
    main()
