"""Build and run the emitted project: on the host (``cc``) or for rv32imc on QEMU (both link
``-lm``: leftover float code calls <math.h>)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import numpy as np

from ..errors import BuildError, LinkError

SOURCES = ["runner.c", "network.c", "kernels.c", "weights.c", "gap8_portable.c"]
RV32_GCC = "riscv64-unknown-elf-gcc"
RV32_NM = "riscv64-unknown-elf-nm"
RV32_SIZE = "riscv64-unknown-elf-size"
#: Sections of the rv32 build that GAP8 would hold in L2 beside the network's data
#: (``.gap8_l2``): code (``.init``, ``.text``, read-only data), the runtime's data, the
#: runner's buffers and the fabric controller's stack. (rv32imc picolibc code: a stand-in for
#: the size of GAP8's code, which its SDK build would give.)
L2_CODE_SECTIONS = (".init", ".text", ".rodata", ".srodata")
L2_RUNTIME_SECTIONS = (".data", ".sdata", ".bss", ".sbss", ".tdata", ".tbss", ".stack")
QEMU = "qemu-system-riscv32"
RV32_FLAGS = ["-march=rv32imc", "-mabi=ilp32", "-O2", "--specs=picolibc.specs",
              "--oslib=semihost", "--crt0=semihost",
              "-Wl,--defsym=__flash=0x80000000", "-Wl,--defsym=__flash_size=0x00400000",
              "-Wl,--defsym=__ram=0x80400000", "-Wl,--defsym=__ram_size=0x00100000"]
SOFT_FLOAT = re.compile(r"__[a-z]+[sd]f[0-9a-z]*$")
COUNTER_FIELDS = ("l2_to_l1_bytes", "l1_to_l2_bytes", "l3_to_l2_bytes", "l2_to_l1_transfers",
                  "l1_to_l2_transfers", "l3_to_l2_transfers", "macs", "tiles", "instructions",
                  "dma_instructions", "l2_to_l3_bytes", "l2_to_l3_transfers")


def rv32_available() -> str | None:
    """None when the rv32 toolchain and QEMU are here, else what is missing."""
    missing = [t for t in (RV32_GCC, RV32_NM, RV32_SIZE, QEMU) if shutil.which(t) is None]
    return ", ".join(missing) + " not found" if missing else None


def _run(cmd, cwd, what, timeout=600):
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BuildError(f"{what}: timed out after {timeout} s") from exc
    return proc


def _flags(instrument: bool, mac_count: bool = True):
    flags = ["-DGAP8_INSTRUMENT"] if instrument else []
    if instrument and not mac_count:
        flags.append("-DGAP8_NO_MAC_COUNT")
    return flags


def build_host(project: str, instrument: bool = False, extra_flags=()) -> str:
    exe = os.path.join(project, "gap8_host")
    cmd = ["cc", "-std=c99", "-Wall", "-Werror", "-O2", *_flags(instrument), *extra_flags,
           *SOURCES, "-o", exe, "-lm"]
    proc = _run(cmd, project, "host build")
    if proc.returncode:
        raise BuildError(f"host build of {project} failed: {proc.stderr.strip()[-2000:]}")
    return exe


def _link_error(stderr: str):
    m = re.search(r"region `([^']+)' overflowed by (\d+) bytes", stderr)
    if m:
        raise LinkError(f"the network does not fit GAP8's {m.group(1)}: region `{m.group(1)}' "
                        f"overflowed by {int(m.group(2)):,} bytes (rv32 link)")


def build_rv32(project: str, instrument: bool = False, mac_count: bool = True,
               extra_flags=()) -> str:
    missing = rv32_available()
    if missing:
        raise BuildError(f"--run rv32 needs the RISC-V toolchain and QEMU ({missing}): "
                         "apt-get install gcc-riscv64-unknown-elf "
                         "picolibc-riscv64-unknown-elf qemu-system-misc")
    elf = os.path.join(project, "gap8_rv32.elf")
    cmd = [RV32_GCC, "-std=c99", "-Wall", "-Werror", *RV32_FLAGS, "-DGAP8_SECTIONS",
           *_flags(instrument, mac_count), *extra_flags, *SOURCES, "-T", "gap8_memory.ld",
           "-o", elf, "-lm"]
    proc = _run(cmd, project, "rv32 build")
    if proc.returncode:
        _link_error(proc.stderr)
        raise BuildError(f"rv32 build of {project} failed: {proc.stderr.strip()[-2000:]}")
    check_l2_with_code(elf, l2_account(elf)["l2_bytes"])
    return elf


def section_sizes(elf: str) -> dict:
    """{section: bytes} of a linked ELF (``size -A``)."""
    proc = _run([RV32_SIZE, "-A", elf], os.path.dirname(elf), "size")
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(\.\S+)\s+(\d+)\s+\d+$", proc.stdout, re.M)}


def l2_account(elf: str) -> dict:
    """What GAP8's L2 would hold of this build: the network's data (``.gap8_l2``: arena, L2
    weights, L3 stage), code and runtime data (the linked sizes), and the L2 size the project
    was emitted for (``gap8_memory.ld``)."""
    sizes = section_sizes(elf)
    script = open(os.path.join(os.path.dirname(elf), "gap8_memory.ld"), encoding="utf-8").read()
    l2 = int(re.search(r"L2 \(rw\) : ORIGIN = \S+, LENGTH = (\d+)", script).group(1))
    return {"network_data_bytes": sizes.get(".gap8_l2", 0),
            "code_bytes": sum(sizes.get(s, 0) for s in L2_CODE_SECTIONS),
            "runtime_data_bytes": sum(sizes.get(s, 0) for s in L2_RUNTIME_SECTIONS),
            "l2_bytes": l2}


def check_l2_with_code(elf: str, l2_bytes: int) -> None:
    """On GAP8 code lives in L2 too: the linked code and runtime data plus the network's L2
    data must fit L2 (the rv32 map links code elsewhere, so the linker cannot tell)."""
    acc = l2_account(elf)
    total = acc["network_data_bytes"] + acc["code_bytes"] + acc["runtime_data_bytes"]
    if total > l2_bytes:
        raise LinkError(f"the network does not fit GAP8's L2: {acc['network_data_bytes']:,} B "
                        f"of network data (.gap8_l2) + {acc['code_bytes']:,} B of code + "
                        f"{acc['runtime_data_bytes']:,} B of runtime data and stack = "
                        f"{total:,} B, over {l2_bytes:,} B by {total - l2_bytes:,} bytes "
                        "(rv32 link, section sizes)")


def soft_float_symbols(elf: str) -> list[str]:
    proc = _run([RV32_NM, elf], os.path.dirname(elf), "nm")
    return sorted({line.split()[-1] for line in proc.stdout.splitlines()
                   if line.split() and SOFT_FLOAT.search(line.split()[-1])})


def _exec(cmd, project, what, timeout):
    t0 = time.perf_counter()
    proc = _run(["timeout", str(timeout), *cmd], project, what, timeout + 10)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise BuildError(f"{what} exited with {proc.returncode}: "
                         f"{(proc.stdout + proc.stderr).strip()[-1000:]}")
    return seconds


def qemu_command(elf: str) -> list[str]:
    return [QEMU, "-machine", "virt", "-nographic", "-bios", "none", "-semihosting-config",
            "enable=on,target=native", "-icount", "shift=0", "-kernel", os.path.abspath(elf)]


def run_project(project: str, exe: str, platform: str, data, out_shapes, out_dtypes,
                timeout: int = 300) -> dict:
    """Runs one inference: returns {"output", "seconds", "counters" (per layer, if any)}.
    ``data``: the inputs in the entry's order (a list; written to ``gap8_in<i>.bin``) and
    ``out_shapes``/``out_dtypes`` one per output (``output`` then a list); or one array, shape
    and dtype for a network of one input and one output (``output`` then that array)."""
    single = not isinstance(data, (list, tuple))
    datas = [data] if single else list(data)
    shapes = [out_shapes] if single else list(out_shapes)
    dtypes = [out_dtypes] if single else list(out_dtypes)
    for name in os.listdir(project):
        if re.fullmatch(r"gap8_(in|out)\d+\.bin|gap8_counters\.txt", name):
            os.remove(os.path.join(project, name))
    for i, d in enumerate(datas):
        np.ascontiguousarray(d).tofile(os.path.join(project, f"gap8_in{i}.bin"))
    if platform == "host":
        cmd = [os.path.abspath(exe)]
    else:
        cmd = qemu_command(exe)
    seconds = _exec(cmd, project, f"the {platform} run", timeout)
    outs = [np.fromfile(os.path.join(project, f"gap8_out{i}.bin"), dtype=dt).reshape(shape)
            for i, (shape, dt) in enumerate(zip(shapes, dtypes))]
    return {"output": outs[0] if single else outs, "seconds": seconds,
            "counters": read_counters(project)}


def read_counters(project: str) -> list[dict] | None:
    path = os.path.join(project, "gap8_counters.txt")
    if not os.path.exists(path):
        return None
    rows = []
    with open(path) as f:
        for line in f:
            vals = [int(v) for v in line.split()]
            rows.append(dict(zip(COUNTER_FIELDS, vals[1:])))
    return rows
