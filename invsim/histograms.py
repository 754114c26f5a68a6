"""Binned counts in torch and their conversion to Scikit-HEP ``hist.Hist`` objects.

* :func:`bin_counts`: weighted counts per bin and their variances from a torch sample (the
  one binning used by the diagnostics: :func:`invsim.unfold_diagnostics.histogram_ratio`,
  rank histograms of :class:`invsim.unfold_diagnostics.Calibration` and
  :class:`invsim.calibration.SBCResult`).
* :func:`to_hist`: edges, counts and (optionally) variances as a ``hist.Hist`` with a
  named ``Variable`` axis (label with its unit, e.g. ``"m_ll [GeV]"``), no flow bins
  (entries outside the edges are not counted), ``Weight()`` storage when variances are
  given and ``Double()`` otherwise; an optional ``StrCategory`` axis in front holds one
  histogram per parameter or observable.

``hist`` (the ``plot`` extra) is imported only by :func:`to_hist`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from forward._validation import as_tensor, check_finite

__all__ = ["axis_label", "bin_counts", "to_hist"]


def axis_label(name: str, unit: str | None = None) -> str:
    """``"name [unit]"``, or ``name`` when ``unit`` is None or empty."""
    return f"{name} [{unit}]" if unit else name


def bin_counts(x, edges: torch.Tensor, weights=None, *,
               name: str = "x") -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted counts per bin and their variances, float64 on the CPU.

    A 1-D sample holds independent events: the variance per bin is Σ w². A 2-D sample
    of shape (m, n) is m independent groups of n correlated values: the variance is
    Σ_i c_i², c_i the summed weight of group i in the bin. Bins are
    [e_k, e_{k+1}), the last one closed; values outside the edges are not counted.

    Args:
        x: sample, shape (n,) or (m, n).
        edges: increasing bin edges, shape (bins + 1,).
        weights: per-value weights of x's shape; default 1.
        name: the argument's name in error messages (``weights_<name>`` for weights).

    Returns:
        ``(counts, variances)``, each float64 of shape (bins,); errors are their square
        roots.

    Raises:
        ValueError: x not 1-D or 2-D, weights of another shape, non-finite values.
    """
    x = as_tensor(name, x).detach().to("cpu", torch.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"{name}: expected shape (n,) or (m, n), got {tuple(x.shape)}")
    check_finite(name, x)
    if weights is None:
        w = torch.ones_like(x)
    else:
        w = as_tensor(f"weights_{name}", weights).detach().to("cpu", torch.float64)
        if w.shape != x.shape:
            raise ValueError(f"weights_{name}: expected shape {tuple(x.shape)} to match {name}, "
                             f"got {tuple(w.shape)}")
        check_finite(f"weights_{name}", w)
    edges = edges.to("cpu", torch.float64)
    nb = len(edges) - 1
    rows = x.reshape(-1, x.shape[-1]) if x.ndim == 2 else x.reshape(-1, 1)
    w = w.reshape(rows.shape)
    idx = torch.bucketize(rows.contiguous(), edges, right=True) - 1
    idx = torch.where(rows == edges[-1], torch.full_like(idx, nb - 1), idx)
    inside = (idx >= 0) & (idx < nb)
    # per group (row) and bin: the group's summed weight; groups are independent
    flat = (idx + nb * torch.arange(len(rows)).unsqueeze(-1))[inside]
    per_group = torch.bincount(flat, weights=w[inside], minlength=len(rows) * nb)
    per_group = per_group.reshape(len(rows), nb)
    return per_group.sum(0), per_group.pow(2).sum(0)


def to_hist(
    edges,
    counts,
    variances=None,
    *,
    name: str = "x",
    label: str | None = None,
    unit: str | None = None,
    value_label: str = "events",
    categories: Sequence[str] | None = None,
    category_name: str = "parameter",
):
    """A ``hist.Hist`` holding binned results computed in torch.

    Args:
        edges: increasing finite bin edges, shape (bins + 1,).
        counts: value per bin, shape (bins,), or (len(categories), bins) with
            ``categories``.
        variances: variance per bin (e.g. Σ w², the square of an error), the shape of
            ``counts``, or None when unknown.
        name: name of the binned axis (``h.axes[name]``, ``h[{name: ...}]``).
        label: its label without the unit; default ``name``.
        unit: unit appended as ``"label [unit]"`` (e.g. ``"GeV"``), or None.
        value_label: the histogram's label (what the values count).
        categories: names of a ``StrCategory`` axis in front, one per row of ``counts``.
        category_name: the name of that axis.

    Returns:
        ``hist.Hist`` with the axes above (no flow bins) and ``Weight()`` storage
        (values and variances as given) when ``variances`` is given, else ``Double()``.
        NaN values (e.g. an undefined ratio) are kept.

    Raises:
        ImportError: ``hist`` is not installed (the message has the pip command).
        ValueError: edges not increasing, or counts/variances of the wrong shape, or
            negative variances.
    """
    try:
        import hist
    except ImportError as err:
        raise ImportError("to_hist needs hist: pip install hist (or pip install "
                          "'invsim[plot]')") from err
    e = as_tensor("edges", edges, dtype=torch.float64).detach().cpu().reshape(-1)
    check_finite("edges", e)
    if e.numel() < 2 or not bool((e[1:] > e[:-1]).all()):
        raise ValueError(f"edges: expected at least 2 increasing edges, got {e.tolist()}")
    nb = e.numel() - 1
    shape = (nb,) if categories is None else (len(categories), nb)
    c = as_tensor("counts", counts, dtype=torch.float64).detach().cpu()
    if tuple(c.shape) != shape:
        raise ValueError(f"counts: expected shape {shape} (edges have {nb} bins"
                         f"{'' if categories is None else ', one row per category'}), "
                         f"got {tuple(c.shape)}")
    axes = [hist.axis.Variable(e.numpy(), name=name, label=axis_label(label or name, unit),
                               flow=False)]
    if categories is not None:
        cats = [str(k) for k in categories]
        if len(set(cats)) != len(cats):
            raise ValueError(f"categories: expected distinct names, got {cats}")
        axes.insert(0, hist.axis.StrCategory(cats, name=category_name, label=category_name))
    if variances is None:
        h = hist.Hist(*axes, storage=hist.storage.Double(), label=value_label)
        h.view()[...] = c.numpy()
        return h
    v = as_tensor("variances", variances, dtype=torch.float64).detach().cpu()
    if v.shape != c.shape:
        raise ValueError(f"variances: expected the shape of counts {shape}, got "
                         f"{tuple(v.shape)}")
    if bool((v < 0).any()):
        raise ValueError("variances: expected values >= 0 (or NaN), got negative ones")
    h = hist.Hist(*axes, storage=hist.storage.Weight(), label=value_label)
    view = h.view()
    view.value = c.numpy()
    view.variance = v.numpy()
    return h
