"""The fast depthwise causal convolution against its conv1d reference (float64)."""

import pytest
import torch

from hope_lite.layers.conv import CausalDepthwiseConv, causal_conv, causal_conv_reference


@pytest.mark.parametrize("window", [1, 2, 4])
def test_fast_conv_matches_reference_with_gradients(window):
    torch.manual_seed(0)
    xt = torch.randn(2, window - 1 + 9, 5, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, window, dtype=torch.float64, requires_grad=True)
    dy = torch.randn(2, 9, 5, dtype=torch.float64)
    grads = []
    for conv in (causal_conv_reference, causal_conv):
        y = conv(xt, weight)
        grads.append((y, *torch.autograd.grad(y, (xt, weight), dy)))
    for fast, ref in zip(grads[1], grads[0]):
        torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)


def test_fast_conv_passes_gradcheck():
    torch.manual_seed(1)
    xt = torch.randn(2, 7, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(causal_conv, (xt, weight))


def test_stream_in_pieces_equals_one_call_and_cache_is_small():
    torch.manual_seed(2)
    conv = CausalDepthwiseConv(6, window=4).double()
    x = torch.randn(2, 11, 6, dtype=torch.float64)
    y_all, cache_all = conv(x, conv.empty_cache(2, dtype=torch.float64))
    y1, cache = conv(x[:, :2], conv.empty_cache(2, dtype=torch.float64))  # shorter than the window
    y2, cache = conv(x[:, 2:], cache)
    torch.testing.assert_close(torch.cat((y1, y2), 1), y_all)
    torch.testing.assert_close(cache, cache_all)
    assert cache.shape == (2, 6, 3) and cache.is_contiguous()
    assert cache.untyped_storage().nbytes() == cache.numel() * 8  # not a view into the whole input
