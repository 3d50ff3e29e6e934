"""Window partition and the weighted condense (paper Sec. 3.1-3.2, Algorithm 1).

A feature map (B, H, W, C) is cut into a grid of gh x gw windows, stacked on a
leading group axis (P, B, h, w, C) in row-major order (top-left, top-right,
bottom-left, bottom-right for 2 x 2). Normal windows tile the map. Dilated windows
are 1.5x larger per split axis and sit at the corners, evenly spaced, so that
neighbours overlap (for 2 x 2 on L x L: size 3L/4, offset L/4).

Recompose is the weighted condense: each pixel is the mean of the windows that
cover it. Spike maps then pass a region threshold (Th_R = 0.1) so they stay
binary; ``region_threshold=None`` keeps the "median spikes" (0.25, 0.5, ...).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from snnjax import _checks

Array = jax.Array


def _pair(grid, name="grid") -> tuple[int, int]:
    if isinstance(grid, int):
        grid = (grid, grid)
    try:
        gh, gw = (int(g) for g in grid)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair of ints, got {grid!r}") from None
    if gh < 1 or gw < 1 or (gh, gw) != tuple(grid):
        raise ValueError(f"{name} must hold positive integers, got {grid!r}")
    return gh, gw


def _axis(length: int, g: int, dilated: bool, axis: str) -> tuple[int, tuple[int, ...]]:
    """Window size and start offsets along one axis."""
    if not dilated or g == 1:  # a single window along an axis cannot dilate
        if length % g:
            raise ValueError(f"grid {g} along {axis} does not divide the map {axis} {length}")
        size = length // g
        return size, tuple(i * size for i in range(g))
    if (3 * length) % (2 * g):
        raise ValueError(
            f"dilated windows impossible: 1.5 x {axis} {length} / grid {g} is not an integer"
        )
    size = 3 * length // (2 * g)
    if (length - size) % (g - 1):
        raise ValueError(
            f"dilated windows impossible: {g} windows of size {size} cannot "
            f"be spaced evenly over {axis} {length}"
        )
    stride = (length - size) // (g - 1)
    return size, tuple(i * stride for i in range(g))


@dataclasses.dataclass(frozen=True)
class WindowLayout:
    """Where every window lies on an (H, W) map."""

    map_shape: tuple[int, int]
    grid: tuple[int, int]
    dilated: bool
    window_shape: tuple[int, int]
    starts: tuple[tuple[int, int], ...]  # row-major (top, left) of every window

    @property
    def num_windows(self) -> int:
        return len(self.starts)

    @property
    def overlapping(self) -> bool:
        h, w = self.window_shape
        return h * w * self.num_windows > self.map_shape[0] * self.map_shape[1]

    def coverage(self) -> np.ndarray:
        """How many windows cover each pixel, (H, W) int."""
        count = np.zeros(self.map_shape, np.int32)
        h, w = self.window_shape
        for r, c in self.starts:
            count[r : r + h, c : c + w] += 1
        return count


@functools.cache
def _layout(map_shape, grid, dilated) -> WindowLayout:
    (H, W), (gh, gw) = map_shape, grid
    h, rows = _axis(H, gh, dilated, "height")
    w, cols = _axis(W, gw, dilated, "width")
    return WindowLayout(
        (H, W),
        (gh, gw),
        bool(dilated) and (gh, gw) != (1, 1),
        (h, w),
        tuple((r, c) for r in rows for c in cols),
    )


def window_layout(map_shape, grid=(2, 2), dilated: bool = False) -> WindowLayout:
    """The :class:`WindowLayout` of ``grid`` on a map of ``map_shape`` (H, W)."""
    return _layout(_pair(map_shape, "map_shape"), _pair(grid), bool(dilated))


def partition(x: Array, grid=(2, 2), dilated: bool = False) -> Array:
    """Cuts NHWC maps into windows stacked on a leading axis: (P, B, h, w, C)."""
    _checks.rank(x, 4, "x (B, H, W, C)")
    B, H, W, C = x.shape
    layout = window_layout((H, W), grid, dilated)
    (gh, gw), (h, w) = layout.grid, layout.window_shape
    if not layout.dilated:
        x = x.reshape(B, gh, h, gw, w, C).transpose(1, 3, 0, 2, 4, 5)
        return x.reshape(gh * gw, B, h, w, C)
    return jnp.stack([x[:, r : r + h, c : c + w] for r, c in layout.starts])


def recompose(
    windows: Array,
    grid,
    out_shape,
    dilated: bool = False,
    *,
    spikes: bool = True,
    region_threshold: float | None = 0.1,
) -> Array:
    """Inverse of :func:`partition` with the weighted condense (Algorithm 1).

    Args:
      windows: (P, B, h, w, C) window outputs.
      grid, dilated: the layout used by :func:`partition`.
      out_shape: the map's (H, W) or (B, H, W, C).
      spikes: the windows hold spikes; apply the region threshold.
      region_threshold: Th_R; where windows overlap, a condensed value above it
        becomes 1, else 0. The backward pass is straight-through (the gradient of
        the mean). None keeps median spikes. Ignored for membranes
        (``spikes=False``), which are condensed by the mean alone.

    Returns:
      (B, H, W, C) map.
    """
    _checks.rank(windows, 5, "windows (P, B, h, w, C)")
    if len(out_shape) not in (2, 4):
        raise ValueError(f"out_shape must be (H, W) or (B, H, W, C), got {out_shape!r}")
    H, W = (out_shape[0], out_shape[1]) if len(out_shape) == 2 else out_shape[1:3]
    layout = window_layout((H, W), grid, dilated)
    P, B, h, w, C = windows.shape
    if (P, (h, w)) != (layout.num_windows, layout.window_shape):
        raise ValueError(
            f"windows of shape {windows.shape} do not fit grid {layout.grid} "
            f"(dilated={layout.dilated}) on a {H}x{W} map: expected "
            f"({layout.num_windows}, B, {layout.window_shape[0]}, "
            f"{layout.window_shape[1]}, C)"
        )
    if len(out_shape) == 4 and tuple(out_shape) != (B, H, W, C):
        raise ValueError(f"out_shape {tuple(out_shape)} does not match windows {windows.shape}")
    if region_threshold is not None and not 0 <= region_threshold < 1:
        raise ValueError(f"region_threshold must be in [0, 1) or None, got {region_threshold!r}")
    gh, gw = layout.grid
    if not layout.overlapping:
        x = windows.reshape(gh, gw, B, h, w, C).transpose(2, 0, 3, 1, 4, 5)
        return x.reshape(B, H, W, C)
    total = sum(
        jnp.pad(win, ((0, 0), (r, H - r - h), (c, W - c - w), (0, 0)))
        for win, (r, c) in zip(windows, layout.starts)
    )
    weight = jnp.asarray(1.0 / layout.coverage(), windows.dtype)[None, :, :, None]
    mean = total * weight
    if not spikes or region_threshold is None:
        return mean
    binary = (mean > region_threshold).astype(mean.dtype)
    return mean + jax.lax.stop_gradient(binary - mean)
