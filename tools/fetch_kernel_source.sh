#!/bin/sh
# Fetch the Linux 6.1 source tree that conformance/corpus reads the verifier selftests from.
#
# The selftests are GPL and are not part of this repository; the corpus loader reads them from a kernel tree
# at run time. This puts one at $BPFEMU_KERNEL_SRC (default ~/.cache/bpfemu/linux-6.1) and prints its path:
#   - nothing to do when that directory already holds tools/testing/selftests/bpf/verifier;
#   - without BPFEMU_KERNEL_SRC, a tree at /work/ref/linux-6.1 is reused (linked, not copied);
#   - otherwise Debian's linux-source-6.1 package is downloaded with `apt-get download` (needs the apt lists;
#     run `apt-get update` first on a fresh machine) and only the parts the corpus reads are unpacked:
#     tools/testing/selftests/bpf, tools/include, include/uapi and the top Makefile (the version).
# Idempotent and quiet: prints the tree's path on success, errors on stderr.
#
# Use: tools/fetch_kernel_source.sh            then: python -m conformance.corpus.verifier --count
set -eu

DEST="${BPFEMU_KERNEL_SRC:-${XDG_CACHE_HOME:-$HOME/.cache}/bpfemu/linux-6.1}"
WANT=tools/testing/selftests/bpf/verifier

if [ -d "$DEST/$WANT" ]; then
    echo "$DEST"
    exit 0
fi

if [ -z "${BPFEMU_KERNEL_SRC:-}" ] && [ -d "/work/ref/linux-6.1/$WANT" ]; then
    mkdir -p "$(dirname "$DEST")"
    ln -sfn /work/ref/linux-6.1 "$DEST"
    echo "$DEST"
    exit 0
fi

for tool in apt-get dpkg-deb tar xz; do
    command -v "$tool" >/dev/null 2>&1 || { echo "fetch_kernel_source: $tool is needed" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$DEST.partial"' EXIT INT TERM

(cd "$tmp" && apt-get download -qq linux-source-6.1 >/dev/null) || {
    echo "fetch_kernel_source: apt-get download linux-source-6.1 failed (apt-get update first?)" >&2
    exit 1
}
deb=$(ls "$tmp"/linux-source-6.1_*.deb)
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" ./usr/src/linux-source-6.1.tar.xz
rm -f "$deb"

rm -rf "$DEST.partial"
mkdir -p "$DEST.partial"
tar -xJf "$tmp/usr/src/linux-source-6.1.tar.xz" -C "$DEST.partial" --strip-components=1 \
    linux-source-6.1/Makefile \
    linux-source-6.1/include/uapi \
    linux-source-6.1/tools/include \
    linux-source-6.1/tools/testing/selftests/bpf
[ -d "$DEST.partial/$WANT" ] || { echo "fetch_kernel_source: no $WANT in the package" >&2; exit 1; }
mkdir -p "$(dirname "$DEST")"
mv "$DEST.partial" "$DEST"
echo "$DEST"
