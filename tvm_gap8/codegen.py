"""C source of the GAP8 kernels (the device side of a deployment).

Every gap8 PrimFunc of the lowered module is built for the ``greenwaves/gap8`` target (kind
``c``): the same scheduled IR the host check runs, L1 buffers and copy stages included. The
functions use TVM's packed calling convention (``int32_t __tvm_ffi_<kernel>(void*, void* args,
int32_t, void*)``) and compile with a C99 compiler given TVM's and tvm-ffi's include
directories; the network's sequencing (Relax ``main``) is not emitted.
"""

from __future__ import annotations

import os

import tvm
import tvm.libinfo
import tvm_ffi

from .target import tvm_target
from .vocab import KIND_ATTR


def gap8_kernels(lowered: tvm.IRModule) -> dict:
    return {gv.name_hint: f for gv, f in lowered.functions_items()
            if isinstance(f, tvm.tirx.PrimFunc) and f.attrs and KIND_ATTR in f.attrs}


def emit_c(lowered: tvm.IRModule) -> str:
    kernels = {name: f.with_attr("global_symbol", name)
               for name, f in sorted(gap8_kernels(lowered).items())}
    if not kernels:
        return "/* no GAP8 kernels in this model */\n"
    lib = tvm.tirx.build(tvm.IRModule(kernels), target=tvm_target(host=False))
    return lib.inspect_source()


def include_dirs() -> list[str]:
    """Where the generated C finds its headers."""


    dirs = tvm.libinfo.find_include_path()
    dirs = [dirs] if isinstance(dirs, str) else list(dirs)

    ffi = os.path.join(os.path.dirname(tvm_ffi.__file__), "include")
    if os.path.isdir(ffi):
        dirs.append(ffi)
    return dirs
