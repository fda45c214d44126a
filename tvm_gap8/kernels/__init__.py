"""TE computes + ``tvm.s_tir`` schedules for GAP8 kernels, driven by tile plans."""
