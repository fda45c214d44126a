#!/bin/sh
# Installs GVSOC (pulp-open target) and pulp-runtime into .tools/gvsoc/ for `--run gvsoc` and its
# tests. Sources, in order: $GVSOC_SHARED, ../shared/tools/gvsoc, /work/shared/tools/gvsoc (the
# prebuilt tarball, pulp-runtime's sources and pulp_compat.h), else GitHub (the pinned revisions,
# built from source: needs cmake, g++ and network). Never fails: without it the GVSOC tests skip
# and say why (tvm_gap8.emitc.gvsoc.gvsoc_available()).
HERE=$(cd "$(dirname "$0")/.." && pwd)
DEST="$HERE/.tools/gvsoc"
GVSOC_REV=209c147cbd29
PULPRT_REV=415a028
if [ -x "$DEST/gvsoc/bin/gvsoc" ] && [ -d "$DEST/pulp-runtime" ] && [ -x "$DEST/venv/bin/python" ] \
   && [ -f "$DEST/pulp_compat.h" ]; then
  exit 0
fi
SRC=""
for d in "$GVSOC_SHARED" "$HERE/../shared/tools/gvsoc" "/work/shared/tools/gvsoc"; do
  if [ -n "$d" ] && ls "$d"/gvsoc-*-pulp-open-*.tar.xz >/dev/null 2>&1; then SRC="$d"; break; fi
done
mkdir -p "$DEST" || { echo "ensure_gvsoc: cannot create $DEST: GVSOC tests will be skipped" >&2; exit 0; }
if [ -n "$SRC" ]; then
  echo "ensure_gvsoc: unpacking GVSOC and pulp-runtime from $SRC into .tools/gvsoc" >&2
  [ -x "$DEST/gvsoc/bin/gvsoc" ] || tar -xJf "$SRC"/gvsoc-*-pulp-open-*.tar.xz -C "$DEST" || exit 0
  [ -d "$DEST/pulp-runtime" ] || tar -xJf "$SRC"/pulp-runtime-*-src.tar.xz -C "$DEST" || exit 0
  cp "$SRC/pulp_compat.h" "$DEST/pulp_compat.h" || exit 0
else
  echo "ensure_gvsoc: no local GVSOC tarballs; trying GitHub (gvsoc $GVSOC_REV, pulp-runtime $PULPRT_REV)" >&2
  command -v git >/dev/null 2>&1 && command -v cmake >/dev/null 2>&1 || {
    echo "ensure_gvsoc: git/cmake missing: GVSOC tests will be skipped" >&2; exit 0; }
  (cd "$DEST" && timeout 120 git clone -q https://github.com/pulp-platform/pulp-runtime.git \
     && cd pulp-runtime && git checkout -q $PULPRT_REV) || {
    echo "ensure_gvsoc: cannot reach GitHub: GVSOC tests will be skipped" >&2; rm -rf "$DEST"; exit 0; }
  (cd "$DEST" && timeout 600 git clone -q --recursive https://github.com/gvsoc/gvsoc.git gvsoc-src \
     && cd gvsoc-src && git checkout -q $GVSOC_REV && git submodule update -q --init --recursive \
     && python3 -m venv ../venv && ../venv/bin/pip install -q pyelftools prettytable pexpect rich \
        psutil Mako PyYAML hjson lz4 pycryptodome tabulate six setuptools typing_extensions \
     && PATH="$DEST/venv/bin:$PWD/gapy/bin:$PATH" make gvrun.build INSTALLDIR="$DEST/gvsoc" CMAKE_FLAGS="-j 2" \
     && PATH="$DEST/venv/bin:$PATH" cmake -S . -B build -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_INSTALL_PREFIX="$DEST/gvsoc" \
        -DGVSOC_MODULES="$PWD/core/models;$PWD/pulp;$PWD/pulp/targets;$PWD/gvrun/python;" \
        -DGVSOC_TARGETS="pulp-open" -DCMAKE_SKIP_INSTALL_RPATH=false -DBUILD_PROFILE=OFF -DBUILD_DEBUG=OFF \
     && cmake --build build -j 2 && cmake --install build) || {
    echo "ensure_gvsoc: building GVSOC from source failed: GVSOC tests will be skipped" >&2; exit 0; }
  # pulp_compat.h: the six __builtin_pulp_* helpers pulp-runtime's HAL uses, shipped in the repo
  cp "$HERE/tools/pulp_compat.h" "$DEST/pulp_compat.h"
fi
if [ ! -x "$DEST/venv/bin/python" ]; then   # the Python packages GVSOC's launcher imports
  python3 -m venv "$DEST/venv" && "$DEST/venv/bin/pip" install -q -r "$HERE/tools/gvsoc-requirements.txt" \
    || { echo "ensure_gvsoc: pip install for GVSOC's launcher failed: GVSOC tests will be skipped" >&2; exit 0; }
fi
exit 0
