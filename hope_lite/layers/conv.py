"""Depthwise causal convolution with a streaming cache (Titans sec. 4.4, after Mamba2 / GDN).

Two implementations that agree in float64 (tests/test_conv.py):

- :func:`causal_conv_reference`: ``F.conv1d`` on the channels-first layout, the textbook form.
- :func:`causal_conv`: the same sum written as ``w`` shifted multiply-adds in the layer's own
  tokens-by-channels layout, with a hand-written backward. conv1d works channels-first, so its
  output reaches the SiLU after it transposed, and mixing layouts slows the SiLU's backward
  (measured: docs/measurements/code_notes.md).

Index letters: b batch, n tokens, c channels, w window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def causal_conv_reference(xt: Tensor, weight: Tensor) -> Tensor:
    """``y_t[c] = sum_j weight[c, j] xt_{t+j}[c]`` for ``xt [b, w-1+n, c]``, ``weight [c, w]``: ``[b, n, c]``."""
    return F.conv1d(xt.transpose(1, 2), weight.unsqueeze(1), groups=weight.shape[0]).transpose(1, 2)


class _ShiftedSum(torch.autograd.Function):
    """:func:`causal_conv_reference` as ``w`` multiply-adds of shifted token slices."""

    @staticmethod
    def forward(ctx, xt: Tensor, weight: Tensor) -> Tensor:
        w = weight.t().contiguous()  # [w, c]: contiguous rows broadcast fast
        n = xt.shape[1] - w.shape[0] + 1
        y = xt[:, :n] * w[0]
        for j in range(1, w.shape[0]):
            y.addcmul_(xt[:, j : j + n], w[j])
        ctx.save_for_backward(xt, w)
        return y

    @staticmethod
    def backward(ctx, dy: Tensor) -> tuple[Tensor, Tensor]:
        xt, w = ctx.saved_tensors
        n = dy.shape[1]
        dxt = torch.zeros_like(xt)
        dw = torch.empty_like(w)  # [w, c]
        for j in range(w.shape[0]):
            dxt[:, j : j + n].addcmul_(dy, w[j])  # y_t reads xt_{t+j}
            dw[j] = torch.linalg.vecdot(dy, xt[:, j : j + n], dim=1).sum(0)  # sum over b and t
        return dxt, dw.t()


def causal_conv(xt: Tensor, weight: Tensor) -> Tensor:
    """The fast form of :func:`causal_conv_reference` (same arguments and result)."""
    return _ShiftedSum.apply(xt.contiguous(), weight)


class CausalDepthwiseConv(nn.Module):
    """``y_t[c] = sum_{j<w} weight[c, j] x_{t-w+1+j}[c]``: each channel sees its last ``w`` inputs.

    The cache holds the last ``w - 1`` inputs, so a stream fed in pieces matches one call.
    """

    def __init__(self, channels: int, window: int = 4):
        super().__init__()
        if window < 1:
            raise ValueError(f"window={window} must be >= 1")
        self.channels, self.window = channels, window
        self.weight = nn.Parameter(torch.empty(channels, 1, window))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # as nn.Conv1d

    def empty_cache(self, batch: int, device=None, dtype=None) -> Tensor:
        """Zeros ``[b, c, w-1]``: the sequence is treated as preceded by zeros."""
        return torch.zeros(batch, self.channels, self.window - 1, device=device, dtype=dtype)

    def forward(self, x: Tensor, cache: Tensor) -> tuple[Tensor, Tensor]:
        """``x [b, n, c]``, ``cache [b, c, w-1]`` -> ``(y [b, n, c], new cache)``."""
        xt = torch.cat((cache.to(x.dtype).transpose(1, 2), x), dim=1)  # [b, w-1+n, c]
        y = causal_conv(xt, self.weight[:, 0].to(x.dtype))
        return y, xt[:, xt.shape[1] - (self.window - 1) :].transpose(1, 2).contiguous()
