#!/bin/sh
# Fetch a Linux source tree that conformance/corpus reads verifier selftests from.
#
# The selftests are GPL and are not part of this repository; the corpus loaders read them from a kernel tree
# at run time. `fetch_kernel_source.sh [6.1|6.12]` (default 6.1) puts one in place and prints its path:
#   6.1   verifier/*.c            at $BPFEMU_KERNEL_SRC       (default ~/.cache/bpfemu/linux-6.1)
#   6.12  progs/verifier_*.c      at $BPFEMU_KERNEL_SRC_6_12  (default ~/.cache/bpfemu/linux-6.12)
# - nothing to do when that directory already holds the selftests;
# - without the environment variable, a tree at /work/ref/linux-<version> is reused (linked, not copied);
# - otherwise Debian's linux-source-<version> package is downloaded with `apt-get download` (needs the apt
#   lists: run `apt-get update` first on a fresh machine) and only the parts the corpus reads are unpacked:
#   tools/testing/selftests/bpf, tools/include, tools/lib/bpf, include/uapi and the top Makefile.
# Idempotent and quiet: prints the tree's path on success, errors on stderr.
#
# Use: tools/fetch_kernel_source.sh            then: python -m conformance.corpus.verifier --count
#      tools/fetch_kernel_source.sh 6.12       then: python -m conformance.corpus.verifier --count --corpus progs
set -eu

VERSION="${1:-6.1}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/bpfemu"
case "$VERSION" in
    6.1)  DEST="${BPFEMU_KERNEL_SRC:-$CACHE/linux-6.1}"; SET="${BPFEMU_KERNEL_SRC:-}"
          WANT=tools/testing/selftests/bpf/verifier ;;
    6.12) DEST="${BPFEMU_KERNEL_SRC_6_12:-$CACHE/linux-6.12}"; SET="${BPFEMU_KERNEL_SRC_6_12:-}"
          WANT=tools/testing/selftests/bpf/progs ;;
    *)    echo "fetch_kernel_source: version 6.1 or 6.12, not $VERSION" >&2; exit 2 ;;
esac
PKG="linux-source-$VERSION"

if [ -d "$DEST/$WANT" ]; then
    echo "$DEST"
    exit 0
fi

if [ -z "$SET" ] && [ -d "/work/ref/linux-$VERSION/$WANT" ]; then
    mkdir -p "$(dirname "$DEST")"
    ln -sfn "/work/ref/linux-$VERSION" "$DEST"
    echo "$DEST"
    exit 0
fi

for tool in apt-get dpkg-deb tar xz; do
    command -v "$tool" >/dev/null 2>&1 || { echo "fetch_kernel_source: $tool is needed" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp" "$DEST.partial"' EXIT INT TERM

(cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$PKG" >"$tmp/apt.log" 2>&1) || {
    cat "$tmp/apt.log" >&2
    echo "fetch_kernel_source: apt-get download $PKG failed (apt-get update first?)" >&2
    exit 1
}
deb=$(ls "$tmp"/"$PKG"_*.deb)
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" "./usr/src/$PKG.tar.xz"
rm -f "$deb"

rm -rf "$DEST.partial"
mkdir -p "$DEST.partial"
tar -xJf "$tmp/usr/src/$PKG.tar.xz" -C "$DEST.partial" --strip-components=1 \
    "$PKG/Makefile" \
    "$PKG/include/uapi" \
    "$PKG/tools/include" \
    "$PKG/tools/lib/bpf" \
    "$PKG/tools/testing/selftests/bpf"
[ -d "$DEST.partial/$WANT" ] || { echo "fetch_kernel_source: no $WANT in the package" >&2; exit 1; }
mkdir -p "$(dirname "$DEST")"
mv "$DEST.partial" "$DEST"
echo "$DEST"
