"""A tiny ViT and synthetic images: our stand-in for the paper's ImageNet-21K ViT (NL fig. 11).

NL §9.7 trains ViTs (patch 16, 24M and 86M parameters) on ImageNet-21K with AdamW, Muon and M3 and
reports that M3 reaches the best train and test loss (fig. 11, no numbers in the text). That run
is far out of reach here, so this module keeps its shape at toy scale:

- :class:`TinyViT`: linear patch embedding, a CLS token, learned position embeddings, pre-norm
  blocks of *non-causal* multi-head attention (``F.scaled_dot_product_attention``) and an MLP, a
  final LayerNorm and a linear classifier named ``head``. The parameters are laid out so that
  :func:`hope_lite.optim.param_groups` (hence M3 and Muon) gives the hidden matrices the
  orthogonalised update and everything else to AdamW: the CLS token is 1-D, the position table
  is an ``nn.Embedding``, norms are 1-D and the classifier is called ``head``.
- :class:`OrientedBars`: procedurally generated, seeded 16x16 grey images of one anti-aliased
  bar with random centre, length, width and contrast plus Gaussian pixel noise; the class
  (10 of them) is the bar's orientation, ``angle = class * 18 deg + jitter``. Every batch is a
  pure function of ``(seed, split, index)``; train and test draw from separate random streams.
  :func:`moment_label` is the independent check: it reads the orientation off a *clean* image's
  second intensity moments (plain Python, no code shared with the generator) and re-derives the
  label.

Index letters: B batch, C channels, H/W pixels, P patches (+1 with CLS), D features, K classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from hope_lite.models.common import MLP
from hope_lite.tasks.base import rng_for
from hope_lite.validate import check_choice, check_int

__all__ = ["BarParams", "ImageBatch", "OrientedBars", "SelfAttention", "TinyViT", "ViTBlock",
           "moment_label"]  # fmt: skip


# --------------------------------------------------------------------------- the model


class SelfAttention(nn.Module):
    """Non-causal multi-head attention ``x [B, P, D] -> [B, P, D]``: every token sees all."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim={dim} must be divisible by heads={heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = rearrange(self.qkv(x), "b p (three h d) -> three b h p d", three=3, h=self.heads)
        y = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d)) v, [B, h, P, d]
        return self.out(rearrange(y, "b h p d -> b p (h d)"))


class ViTBlock(nn.Module):
    """Pre-norm residual block: ``x + attn(LN(x))``, then ``x + mlp(LN(x))``."""

    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.attn_norm = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, heads)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = MLP(dim, hidden)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.attn_norm(x))
        return x + self.mlp(self.mlp_norm(x))[0]


class TinyViT(nn.Module):
    """A small vision transformer: ``images [B, C, H, W] -> logits [B, K]``.

    Args:
        image_size: H = W, a multiple of ``patch_size``.
        patch_size: side of the square, non-overlapping patches.
        channels: C.
        num_classes: K.
        dim: D.
        depth: number of blocks.
        heads: attention heads (must divide ``dim``).
        mlp_ratio: MLP hidden width as a multiple of ``dim``.
    """

    def __init__(
        self,
        image_size: int = 16,
        patch_size: int = 4,
        channels: int = 1,
        num_classes: int = 10,
        dim: int = 64,
        depth: int = 3,
        heads: int = 4,
        mlp_ratio: int = 4,
    ):
        super().__init__()
        for name, value, low in (("image_size", image_size, 1), ("patch_size", patch_size, 1),
                                 ("channels", channels, 1), ("num_classes", num_classes, 2),
                                 ("dim", dim, 1), ("depth", depth, 1), ("heads", heads, 1),
                                 ("mlp_ratio", mlp_ratio, 1)):  # fmt: skip
            check_int(name, value, low)
        if image_size % patch_size:
            raise ValueError(
                f"image_size={image_size} must be a multiple of patch_size={patch_size}"
            )
        self.image_size, self.patch_size, self.channels = image_size, patch_size, channels
        self.num_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Linear(channels * patch_size**2, dim)  # a hidden matrix: M3 / Muon
        self.cls = nn.Parameter(torch.zeros(dim))  # 1-D: AdamW
        self.pos = nn.Embedding(self.num_patches + 1, dim)  # an embedding table: AdamW
        nn.init.normal_(self.pos.weight, std=0.02)
        self.blocks = nn.ModuleList(ViTBlock(dim, heads, mlp_ratio * dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)  # named "head": AdamW (hope_lite.optim.HEAD_NAMES)

    def forward(self, images: Tensor) -> Tensor:
        """``images [B, C, H, W]`` (float) -> ``logits [B, K]`` from the CLS token."""
        expected = (self.channels, self.image_size, self.image_size)
        if images.dim() != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"images has shape {tuple(images.shape)}; expected [batch, {expected[0]}, "
                f"{expected[1]}, {expected[2]}]"
            )
        s = self.patch_size
        patches = rearrange(images, "b c (h p) (w q) -> b (h w) (p q c)", p=s, q=s)  # [B, P, s*s*C]
        x = self.patch_embed(patches)  # [B, P, D]
        cls = self.cls.expand(x.shape[0], 1, -1)  # [B, 1, D]
        x = torch.cat([cls, x], dim=1) + self.pos.weight  # [B, P+1, D]
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x[:, 0]))  # [B, K]


# --------------------------------------------------------------------------- the data


class BarParams(NamedTuple):
    """Generating parameters of ``B`` images, each a float64 ``[B]`` array (angles in radians)."""

    angle: np.ndarray  # orientation in [-pi/20, pi), direction (cos, sin) in (column, row)
    cx: np.ndarray  # centre column, pixels
    cy: np.ndarray  # centre row, pixels
    length: np.ndarray
    width: np.ndarray
    contrast: np.ndarray


class ImageBatch(NamedTuple):
    """``images [B, 1, H, W]`` float32 and ``labels [B]`` long; unpacks like a Batch."""

    inputs: Tensor
    targets: Tensor


@dataclass(frozen=True)
class OrientedBars:
    """Seeded 16x16 images of one noisy oriented bar; the label is the orientation bin.

    Image ``i`` of class ``k`` (uniform over ``num_classes``) has a bar at angle
    ``k * pi / num_classes + u``, ``|u| <= jitter * pi / (2 num_classes)``, centre within
    ``max_shift`` pixels of the image centre, length in ``lengths``, width in ``widths``,
    contrast in ``contrasts``, drawn anti-aliased on a zero background, plus N(0, ``noise``^2)
    per pixel. Orientations are modulo pi (a bar has no direction), so classes are evenly spaced
    bins of width ``pi / num_classes`` centred on the class angles.

    ``batch(B, split, index)`` is a pure function of ``(seed, split, index)``; ``"train"`` and
    ``"test"`` use separate random streams (continuous parameters: no image is in both).
    """

    name: ClassVar[str] = "oriented_bars"
    splits: ClassVar[tuple[str, ...]] = ("train", "test")
    image_size: int = 16
    num_classes: int = 10
    noise: float = 0.3  # pixel noise std (the bar's contrast is 0.6 .. 1)
    jitter: float = 0.5  # angle jitter as a fraction of the half bin width (< 1 keeps labels exact)
    max_shift: float = 1.5
    lengths: tuple[float, float] = (7.0, 11.0)
    widths: tuple[float, float] = (1.5, 2.5)
    contrasts: tuple[float, float] = (0.6, 1.0)
    seed: int = 0

    def __post_init__(self) -> None:
        check_int("image_size", self.image_size, 4)
        check_int("num_classes", self.num_classes, 2)
        check_int("seed", self.seed, 0)
        if not self.noise >= 0:
            raise ValueError(f"noise={self.noise!r} must be >= 0")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter={self.jitter!r} must lie in [0, 1)")
        for name in ("lengths", "widths", "contrasts"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"{name}={(lo, hi)!r} must be (lo, hi) with 0 < lo <= hi")
        # farthest covered point from the image centre; the first pixel outside is (n+1)/2 away
        reach = self.max_shift + math.hypot(self.lengths[1] / 2 + 0.5, self.widths[1] / 2 + 0.5)
        if not 0 <= self.max_shift or reach >= (self.image_size + 1) / 2:
            raise ValueError(
                f"max_shift={self.max_shift!r} with lengths={self.lengths!r} lets a bar leave the "
                f"{self.image_size}x{self.image_size} image"
            )

    def sample_params(
        self, count: int, split: str = "train", index: int = 0
    ) -> tuple[BarParams, np.ndarray]:
        """``(parameters, labels [count])`` of batch ``index`` of ``split`` (before rendering)."""
        check_int("count", count, 1)
        check_choice("split", split, self.splits)
        check_int("index", index, 0)
        rng = rng_for(self.seed, self.name, self.splits.index(split), index)
        labels = rng.integers(0, self.num_classes, count)
        bin_width = math.pi / self.num_classes
        jitter = rng.uniform(-1, 1, count) * self.jitter * bin_width / 2
        centre = (self.image_size - 1) / 2
        params = BarParams(
            angle=labels * bin_width + jitter,
            cx=centre + rng.uniform(-self.max_shift, self.max_shift, count),
            cy=centre + rng.uniform(-self.max_shift, self.max_shift, count),
            length=rng.uniform(*self.lengths, count),
            width=rng.uniform(*self.widths, count),
            contrast=rng.uniform(*self.contrasts, count),
        )
        return params, labels

    def render(self, params: BarParams) -> np.ndarray:
        """Clean (noise-free) images ``[B, H, W]`` float64 in [0, 1] of ``params``."""
        n = self.image_size
        rows, cols = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")  # [H, W] each
        dx = cols[None] - params.cx[:, None, None]  # [B, H, W]
        dy = rows[None] - params.cy[:, None, None]
        c, s = np.cos(params.angle)[:, None, None], np.sin(params.angle)[:, None, None]
        along, across = dx * c + dy * s, -dx * s + dy * c
        # coverage of a pixel by the rectangle, linear over the last pixel: anti-aliased edges
        cover_along = np.clip(params.length[:, None, None] / 2 + 0.5 - np.abs(along), 0, 1)
        cover_across = np.clip(params.width[:, None, None] / 2 + 0.5 - np.abs(across), 0, 1)
        return params.contrast[:, None, None] * cover_along * cover_across

    def batch(self, batch_size: int, split: str = "train", index: int = 0) -> ImageBatch:
        """Batch ``index`` of ``split``: ``images [B, 1, H, W]`` float32, ``labels [B]`` long."""
        params, labels = self.sample_params(batch_size, split, index)
        clean = self.render(params)  # [B, H, W]
        rng = rng_for(self.seed, self.name, self.splits.index(split), index, 1)  # noise stream
        noisy = clean + self.noise * rng.standard_normal(clean.shape)
        images = torch.from_numpy(noisy.astype(np.float32)).unsqueeze(1)  # [B, 1, H, W]
        return ImageBatch(images, torch.from_numpy(labels.astype(np.int64)))


def moment_label(image: list[list[float]], num_classes: int = 10) -> int:
    """The orientation class of one clean image ``[H][W]``, read off its second moments.

    Independent of the generator: the principal axis of the intensity distribution of a
    rectangle is its long side, at angle ``0.5 atan2(2 mu_11, mu_20 - mu_02)`` (x = column,
    y = row); the class is the nearest multiple of ``pi / num_classes``, modulo pi.
    """
    total = sx = sy = 0.0
    for y, row in enumerate(image):
        for x, w in enumerate(row):
            total, sx, sy = total + w, sx + w * x, sy + w * y
    if total <= 0:
        raise ValueError("image has no positive intensity: no orientation to read")
    mx, my = sx / total, sy / total
    mxx = myy = mxy = 0.0
    for y, row in enumerate(image):
        for x, w in enumerate(row):
            mxx += w * (x - mx) ** 2
            myy += w * (y - my) ** 2
            mxy += w * (x - mx) * (y - my)
    angle = 0.5 * math.atan2(2 * mxy, mxx - myy)  # (-pi/2, pi/2]
    return round(angle / (math.pi / num_classes)) % num_classes
