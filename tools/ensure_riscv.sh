#!/bin/sh
# Installs the rv32 toolchain and QEMU the --emit-c --run rv32 tests use (Debian packages), when
# missing and possible (root + apt-get). Never fails: the tests skip with a reason otherwise.
if command -v riscv64-unknown-elf-gcc >/dev/null 2>&1 && command -v qemu-system-riscv32 >/dev/null 2>&1 ; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_riscv: not root or no apt-get: rv32 tests will be skipped" >&2
  exit 0
fi
apt-get update -qq >/dev/null 2>&1 && \
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc >/dev/null 2>&1 \
  || echo "ensure_riscv: apt-get install failed: rv32 tests will be skipped" >&2
exit 0
