#!/usr/bin/env python3
"""Fetch the pinned Debian kernels the VM backend boots, into a cache outside git.

    python3 tools/fetch_kernels.py            # every pinned kernel
    python3 tools/fetch_kernels.py 6.1 6.12   # some of them
    python3 tools/fetch_kernels.py --list     # the pins and what is cached

For each kernel, ``apt-get download`` fetches the exact package version pinned in
``bpfemu.host.vm.kernels.PINS`` (Debian 12's archives: bookworm and bookworm-security),
``dpkg-deb -x`` unpacks it, and the cache ``<cache>/kernels/<version>/`` keeps:

- ``vmlinuz`` and ``config`` (the kernel and its build configuration);
- ``modules/*.ko``: the virtio and 9p modules the launcher loads (and what they
  depend on, found from each module's ``depends=`` modinfo field), decompressed,
  with ``modules.order`` listing them in load order;
- ``manifest.json``: the package, its version and the kernel release.

The cache is ``$BPFEMU_CACHE`` or ``$XDG_CACHE_HOME/bpfemu`` or ``~/.cache/bpfemu``.
A kernel whose manifest matches its pin is left alone, so the script is idempotent
and prints nothing when everything is there. Needs apt-get and dpkg-deb (Debian).
"""
import importlib.util
import os
import sys

# bpfemu/host/vm/kernels.py needs only the standard library: loaded by path, so that this runs before
# bpfemu's own dependencies are installed
_spec = importlib.util.spec_from_file_location(
    "bpfemu_vm_kernels", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                      "bpfemu", "host", "vm", "kernels.py"))
kernels = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kernels)


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("versions", nargs="*", help="kernel versions to fetch (default: all pinned: %s)"
                    % " ".join(kernels.PINS))
    ap.add_argument("--list", action="store_true", help="print the pins and the cache state, fetch nothing")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    versions = args.versions or list(kernels.PINS)
    for v in versions:
        if v not in kernels.PINS:
            sys.stderr.write("fetch_kernels: no pinned kernel %r (pinned: %s)\n" % (v, " ".join(kernels.PINS)))
            return 2
    if args.list:
        for v in versions:
            pin = kernels.PINS[v]
            have = kernels.cached(v)
            print("%-5s %s=%s  %s" % (v, pin.package, pin.version, have.directory if have else "(not cached)"))
        return 0
    status = 0
    for v in versions:
        try:
            k = kernels.fetch(v, verbose=args.verbose)
        except kernels.KernelUnavailable as e:
            sys.stderr.write("fetch_kernels: %s\n" % e)
            status = 1
            continue
        if args.verbose:
            print("%s: %s" % (v, k.directory))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
