r"""Precision and calibration diagnostics of amplitude surrogates.

For predictions :math:`A_\text{NN}` with uncertainties σ and exact values
:math:`A_\text{true}` (per event, for one flavour channel or the sum):

* precision :math:`\Delta = (A_\text{NN} - A_\text{true}) / A_\text{true}`, with the
  fractions of events with :math:`|\Delta| < 10^{-3}, 10^{-2}, 10^{-1}` and the tail
  fraction with :math:`|\Delta| > 0.1`;
* pull :math:`(A_\text{NN} - A_\text{true}) / \sigma`, σ propagated from log space
  (:math:`\sigma = A_\text{NN}\, \sigma_{\log}`), with its mean, standard deviation and
  the robust width (half the 16–84 % quantile distance).

:func:`plot_precision` draws Δ and pull histograms (one curve per label, e.g. per
training-set size) and the |Δ| fractions against training-set size, into a PNG file
and/or the caller's ``ax=`` (:mod:`forward.plotting`: Agg canvas, no display needed,
mplhep style when installed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import torch

from forward._validation import check_finite

__all__ = ["PrecisionSummary", "plot_precision", "precision_summary"]

_LEVELS = (1e-3, 1e-2, 1e-1)


@dataclass(frozen=True)
class PrecisionSummary:
    """Precision and pull statistics of a surrogate on n test points.

    Attributes:
        n: number of points.
        frac_below: fractions with |Δ| < 0.1 %, 1 %, 10 % (in that order).
        tail: fraction with |Δ| > 10 %.
        median_abs_delta: median |Δ|.
        pull_mean, pull_std: mean and standard deviation of the pulls.
        pull_width68: half the distance between the 16 % and 84 % pull quantiles.
    """

    n: int
    frac_below: tuple[float, float, float]
    tail: float
    median_abs_delta: float
    pull_mean: float
    pull_std: float
    pull_width68: float

    def as_dict(self) -> dict:
        """Plain-type dictionary (for JSON)."""
        return asdict(self)


def _check(name: str, x, n: int | None = None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (n,), got {type(x).__name__}")
    if x.ndim != 1 or x.numel() == 0 or (n is not None and x.numel() != n):
        want = f"({n},)" if n is not None else "(n,) with n >= 1"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")
    check_finite(name, x)
    return x.detach().to(torch.float64)


def _quantile(x: torch.Tensor, q: float) -> float:
    """Quantile by sorting (torch.quantile is limited to 16M entries)."""
    s = torch.sort(x).values
    pos = q * (s.numel() - 1)
    lo = int(pos)
    hi = min(lo + 1, s.numel() - 1)
    return float(s[lo] + (pos - lo) * (s[hi] - s[lo]))


def precision_summary(pred: torch.Tensor, sigma: torch.Tensor, true: torch.Tensor):
    """Δ and pull statistics, see the module docstring.

    Args:
        pred: surrogate values A_NN, shape (n,).
        sigma: their uncertainties, shape (n,), > 0.
        true: exact values A_true, shape (n,), non-zero.

    Returns:
        (summary, delta, pull): a :class:`PrecisionSummary` and the per-point Δ and
        pulls, each float64 of shape (n,).

    Raises:
        TypeError, ValueError: non-tensors, shapes that differ, NaN/inf, σ <= 0 or
        A_true = 0.
    """
    pred = _check("pred", pred)
    n = pred.numel()
    sigma = _check("sigma", sigma, n)
    true = _check("true", true, n)
    if not bool((sigma > 0).all()):
        raise ValueError(f"sigma: expected positive values, got {int((sigma <= 0).sum())} <= 0")
    if not bool((true != 0).all()):
        raise ValueError(f"true: expected non-zero values, got {int((true == 0).sum())} zeros")
    delta = (pred - true) / true
    pull = (pred - true) / sigma
    a = delta.abs()
    summary = PrecisionSummary(
        n=n,
        frac_below=tuple(float((a < lv).to(torch.float64).mean()) for lv in _LEVELS),
        tail=float((a > 0.1).to(torch.float64).mean()),
        median_abs_delta=_quantile(a, 0.5),
        pull_mean=float(pull.mean()),
        pull_std=float(pull.std()),
        pull_width68=0.5 * (_quantile(pull, 0.84) - _quantile(pull, 0.16)),
    )
    return summary, delta, pull


def plot_precision(
    path,
    deltas: Mapping[str, torch.Tensor],
    pulls: Mapping[str, torch.Tensor],
    *,
    sizes: Sequence[int] | None = None,
    summaries: Sequence[PrecisionSummary] | None = None,
    title: str = "",
    overwrite: bool = False,
    ax=None,
):
    """Histograms of Δ and pulls, and |Δ| fractions against training-set size.

    Args:
        path: output PNG file, or None to write nothing (then ``ax`` or the returned
            figure is the output).
        deltas: label -> Δ values, each shape (n,).
        pulls: label -> pulls, each shape (n,) (same labels or a subset).
        sizes: training-set sizes, one per summary, for the third panel (optional).
        summaries: :class:`PrecisionSummary` per size (with ``sizes``).
        title: figure title (a new figure's suptitle; with ``ax``, the first panel's
            title).
        overwrite: replace an existing file.
        ax: None to make a figure (mplhep style when installed), or the Axes to draw
            into: 2 (Δ, pulls), or 3 with ``sizes``.

    Returns:
        The path written, or the ``matplotlib.figure.Figure`` when ``path`` is None.

    Raises:
        FileExistsError: the file exists and ``overwrite`` is false.
        ValueError: ``sizes`` and ``summaries`` of different lengths.
    """
    from forward.plotting import plot_axes, save_png

    if (sizes is None) != (summaries is None) or (
            sizes is not None and len(sizes) != len(summaries)):
        raise ValueError("sizes, summaries: expected both or neither, of equal length")
    panels = 3 if sizes is not None else 2
    with plot_axes(ax, panels, figsize=(5 * panels, 4)) as (fig, axes, own):
        for label, d in deltas.items():
            d = _check(f"deltas[{label!r}]", d)
            x = torch.log10(d.abs().clamp(min=1e-8))
            axes[0].hist(x.numpy(), bins=80, range=(-6, 1), histtype="step", label=label,
                         density=True)
        axes[0].set_xlabel(r"$\log_{10}|\Delta|$, $\Delta = (A_{NN} - A_{true})/A_{true}$")
        axes[0].set_ylabel("density")
        axes[0].legend(fontsize=7)
        for label, p in pulls.items():
            p = _check(f"pulls[{label!r}]", p)
            axes[1].hist(p.clamp(-6, 6).numpy(), bins=80, range=(-6, 6), histtype="step",
                         label=label, density=True)
        g = torch.linspace(-6, 6, 241, dtype=torch.float64)
        axes[1].plot(g.numpy(), (torch.exp(-0.5 * g * g) / (2 * torch.pi) ** 0.5).numpy(),
                     "k--", lw=0.8, label="N(0, 1)")
        axes[1].set_xlabel(r"pull $(A_{NN} - A_{true})/\sigma$")
        axes[1].legend(fontsize=7)
        if sizes is not None:
            for i, lv in enumerate(_LEVELS):
                axes[2].plot(list(sizes), [s.frac_below[i] for s in summaries], "o-",
                             label=f"|Δ| < {lv:g}")
            axes[2].set_xscale("log")
            axes[2].set_xlabel("training points")
            axes[2].set_ylabel("fraction of test points")
            axes[2].set_ylim(0, 1.02)
            axes[2].legend(fontsize=7)
        if title:
            if own:
                fig.suptitle(title)
            else:
                axes[0].set_title(title)
        if path is None:
            return fig
        return save_png(fig, path, overwrite=overwrite, dpi=110)
