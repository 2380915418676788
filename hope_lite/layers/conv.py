"""Depthwise causal convolution with a streaming cache (Titans sec. 4.4, after Mamba2 / GDN).

Index letters: b batch, n tokens, c channels, w window.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


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
        xt = torch.cat((cache.to(x.dtype), x.transpose(1, 2)), dim=-1)  # [b, c, w-1+n]
        y = F.conv1d(xt, self.weight.to(x.dtype), groups=self.channels)  # [b, c, n]
        return y.transpose(1, 2), xt[..., xt.shape[-1] - (self.window - 1) :]
