"""Shared figure handling of the plot functions: mplhep style, ``ax=`` and PNG output.

Every plot function of forward/ and invsim/ draws through :func:`plot_axes`:

* with ``ax=None`` it makes its own ``matplotlib.figure.Figure`` on the Agg canvas (no
  pyplot state is touched) inside :func:`hep_style`: mplhep's ROOT style (a neutral
  HEP look: ticks inside on all four sides, minor ticks, frameless legends, TeX Gyre
  Heros) with font and tick sizes scaled down to the few-inch panels used here, when
  mplhep is installed (the ``plot`` extra), matplotlib's defaults otherwise;
* with ``ax=`` (one ``matplotlib.axes.Axes``, or a sequence or array of them, one per
  panel) it draws into the caller's axes and leaves their figure's style alone.

:func:`save_png` writes a figure atomically (temporary file moved into place).
matplotlib and mplhep are imported only when a plot is made.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["HEP_STYLE_OVERRIDES", "hep_style", "plot_axes", "save_png"]

#: rcParams laid over ``mplhep.style.ROOT`` (made for a 10 × 10 inch figure at 26 pt)
#: so that its look fits panels of 3 to 6 inches.
HEP_STYLE_OVERRIDES: dict[str, float] = {
    "font.size": 10.0,
    "axes.linewidth": 1.0,
    "xtick.major.size": 6.0,
    "xtick.minor.size": 3.0,
    "ytick.major.size": 6.0,
    "ytick.minor.size": 3.0,
    "xtick.major.pad": 4.0,
    "ytick.major.pad": 4.0,
}


def hep_style() -> contextlib.AbstractContextManager:
    """Context in which matplotlib uses mplhep's ROOT style, if mplhep is installed.

    Returns:
        ``matplotlib.style.context([mplhep.style.ROOT, HEP_STYLE_OVERRIDES])`` when
        ``import mplhep`` succeeds (and has that style), else a context that changes
        nothing (matplotlib's defaults). Figures made and saved inside it get the style.
    """
    try:
        import mplhep
    except ImportError:
        return contextlib.nullcontext()
    root = getattr(getattr(mplhep, "style", None), "ROOT", None)
    if root is None:  # an mplhep too old to have the ROOT style
        return contextlib.nullcontext()
    import matplotlib.style

    return matplotlib.style.context([root, HEP_STYLE_OVERRIDES])


def _axes_list(ax, n_panels: int) -> list:
    """The caller's ``ax`` as a flat list of ``n_panels`` Axes (row-major)."""
    from matplotlib.axes import Axes

    if isinstance(ax, Axes):
        axes = [ax]
    else:
        try:
            axes = list(getattr(ax, "flat", ax))
        except TypeError:
            axes = None
        if axes is None or not all(isinstance(a, Axes) for a in axes):
            raise TypeError(f"ax: expected a matplotlib Axes or a sequence of {n_panels} "
                            f"Axes, got {type(ax).__name__}")
    if len(axes) != n_panels:
        raise ValueError(f"ax: this plot has {n_panels} panel(s); expected "
                         f"{'an Axes or ' if n_panels == 1 else ''}{n_panels} Axes, got "
                         f"{len(axes)}")
    return axes


@contextlib.contextmanager
def plot_axes(ax, n_panels: int, *, rows: int = 1, figsize: tuple[float, float],
              **subplots_kw) -> Iterator[tuple[object, list, bool]]:
    """The figure and axes a plot function draws into.

    Args:
        ax: None to make a new figure, or the caller's Axes: one ``Axes`` when the plot
            has one panel, else a sequence (or numpy array) of ``rows * n_panels`` Axes in
            row-major order.
        n_panels: panels per row (columns).
        rows: rows of panels.
        figsize: (width, height) in inches of a new figure.
        **subplots_kw: passed to ``Figure.subplots`` for a new figure (e.g. ``sharex``,
            ``gridspec_kw``).

    Yields:
        ``(figure, axes, own)``: the figure holding the axes (the top-level one), the
        axes as a flat row-major list, and whether the figure was made here. A new
        figure is made, drawn and (with :func:`save_png` inside the block) saved inside
        :func:`hep_style`.

    Raises:
        TypeError: ``ax`` is not an Axes or a sequence of Axes.
        ValueError: ``ax`` holds a different number of Axes than the plot has panels.
    """
    if ax is not None:
        axes = _axes_list(ax, rows * n_panels)
        fig = axes[0].figure
        while getattr(fig, "figure", fig) is not fig:  # a SubFigure: its root figure
            fig = fig.figure
        yield fig, axes, False
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with hep_style():
        fig = Figure(figsize=figsize, layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(rows, n_panels, squeeze=False, **subplots_kw)
        yield fig, list(axes.flat), True


def save_png(fig, path: str | os.PathLike, *, overwrite: bool, dpi: int) -> Path:
    """Write ``fig`` as a PNG file through a temporary file moved into place.

    Args:
        fig: a ``matplotlib.figure.Figure``.
        path: the file to write (PNG whatever its suffix).
        overwrite: replace an existing ``path``.
        dpi: resolution in dots per inch.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    from forward.files import atomic_target

    path = Path(path)
    with atomic_target(path, overwrite, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return path
