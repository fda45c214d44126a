"""Plain numpy references for the kernels (float64 accumulation)."""

import numpy as np


def conv2d_nchw(x, w, stride=1, padding=(0, 0, 0, 0), groups=1):
    """Direct NCHW/OIHW convolution, float64."""
    x = x.astype(np.float64)
    w = w.astype(np.float64)
    t, l, b, r = padding
    xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))
    n, _, hp, wp = xp.shape
    o, cg, kh, kw = w.shape
    oh, ow = (hp - kh) // stride + 1, (wp - kw) // stride + 1
    y = np.zeros((n, o, oh, ow))
    opg = o // groups
    for oc in range(o):
        g = oc // opg
        for i in range(kh):
            for j in range(kw):
                patch = xp[:, g * cg:(g + 1) * cg, i:i + stride * oh:stride, j:j + stride * ow:stride]
                y[:, oc] += np.einsum("nchw,c->nhw", patch, w[oc, :, i, j])
    return y
