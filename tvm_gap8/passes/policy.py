"""The fusion policy: may a DW/PW pair the rules allow be fused, on this target?

Asked by the formation pass of a fused family for every match its rules allow. The fused
kernel is read off the match exactly as the lowering will read the composite (the family's own
reader, per-channel tensors included), and planned by the family's own tiler:

* under every policy, a pair whose fused kernel fits no tile stays unfused (the reason gives
  the bytes its smallest tile needs and the L1 budget);
* ``profitable`` also refuses a pair whose fused kernel's modelled cycles do not beat the two
  kernels it splits into (a PW->DW->PW chain: every way to run its block without it, for
  every layout of its input and output, ``pw_dw_pw.chain_problem``; the pipeline asks this of
  chains under ``--fusion auto`` too, where the planner cannot split a chain) (``FusedKernelSpec.split``, planned by the conv family's tiler, and
  the integer ops between the convs as their own kernels, ``split_steps``).
"""

from __future__ import annotations

from types import SimpleNamespace

from tvm import relax

from ..errors import Gap8Error, TilingError

POLICIES = ("all", "profitable")


def policy_problem(family, ctx, hw, policy: str, plans, layout: str = "chw") -> str | None:
    """Why the match ``ctx`` of the fused ``family`` must not be fused under ``policy`` (None:
    it may); kernels planned through the compile's ``plans`` (``kernels.KernelPlans``).
    ``layout``: the compile's layout policy (a family with ``compare``, the chain, weighs itself
    against its layers without it under the layouts the planner may choose)."""
    try:
        spec, _ = family.read(_matched_function(ctx), [], hw.requant)
    except Gap8Error as err:
        if family.compare is not None:  # optional kernel: what it cannot read stays apart
            return f"not a {family.kind} kernel: {err}"
        return None  # the lowering will say what it cannot read
    problem = _unfit(spec, hw, plans)
    if problem is None and policy == "profitable":
        problem = family.compare(spec, hw, layout, plans, ctx) if family.compare is not None \
            else _unprofitable(spec, hw, plans)
    return problem


def _unfit(spec, hw, plans) -> str | None:
    """Why a fused kernel fits no tile of L1 (the bytes its smallest tile needs and the
    budget), or None when some tile fits."""
    try:
        plans.plan(spec, hw)
    except TilingError as err:
        return f"the fused kernel cannot fit L1 on {hw.name}: {err.reason}"
    return None


def _unprofitable(spec, hw, plans) -> str | None:
    fused = plans.plan(spec, hw).cycles
    try:
        apart = sum(plans.plan(s, hw).cycles for s in spec.split()) + \
            sum(plans.plan(s, hw).cycles for s in spec.split_steps())
    except TilingError:
        return None  # only the fused form fits
    if fused >= apart:
        return (f"fusion not profitable on {hw.name}: fused {fused:,.0f} modelled "
                f"cycles vs {apart:,.0f} as two kernels (--fusion profitable)")
    return None


def _matched_function(ctx):
    """The match as ``read_composite`` reads a composite function: its bindings in dataflow
    order (no parameters: values from outside stay free variables)."""

    pending = dict(ctx.matched_bindings.items())
    order = []
    while pending:
        ready = [v for v, value in pending.items()
                 if not any(u in pending for u in relax.analysis.free_vars(value))]
        if not ready:
            raise RuntimeError("cyclic match")  # cannot happen in SSA dataflow
        for v in ready:
            order.append(SimpleNamespace(var=v, value=pending.pop(v)))
    return SimpleNamespace(params=[], body=SimpleNamespace(
        blocks=[SimpleNamespace(bindings=order)]))
