"""``invsim demo``: run the main job on the embedded default and write a report folder.

The work is :func:`invsim.demo.run_demo`; this command parses its options, shows progress
and prints the cross sections against Pythia 8.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from invsim.cli._common import DEVICE, Count, quiet, show_progress, verbosity_options

__all__ = ["demo"]


@click.command()
@click.option("--quick", is_flag=True, help="Small samples: minutes on a 2-core CPU.")
@click.option("-o", "--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("invsim-report"), show_default=True, help="Report folder.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an existing report folder.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--device", type=DEVICE, default=None,
              help="torch device (default: cuda if available, else cpu)")
@click.option("--experiments", type=Count(1, 100_000), default=None,
              help="Pseudo-experiments of the calibration (default: 10 quick, 100 full).")
@click.option("--forward-only", is_flag=True, help="Skip the inverse half.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as one JSON object.")
@verbosity_options
def demo(quick: bool, out: Path, overwrite: bool, seed: int, device: str | None,
         experiments: int | None, forward_only: bool, as_json: bool) -> None:
    """Run the main job on the embedded default and write a report folder."""
    import torch

    from invsim.cli._common import claim_output
    from invsim.demo import run_demo

    claim_output(out, overwrite=overwrite, directory=True)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")

    def progress(items):
        items = list(items)
        if not show_progress(as_json):
            yield from items
            return
        with click.progressbar(items, label="  integrating", file=click.get_text_stream("stderr"),
                               item_show_func=lambda kv: kv[0] if kv else "") as bar:
            yield from bar

    if quiet():
        def echo(msg):
            return None
    else:
        echo = (lambda msg: click.echo(msg, err=True)) if as_json else click.echo
    try:
        results = run_demo(out, quick=quick, seed=seed, device=device, overwrite=overwrite,
                           echo=echo, progress=progress, experiments=experiments,
                           inverse=not forward_only)
    except FileExistsError as err:
        raise click.UsageError(str(err)) from err
    if as_json:
        click.echo(json.dumps(results))
        return
    if not quiet():
        click.echo("")
    for r in results["cross_sections"]:
        click.echo(f"  {r['label']:<48s} {r['sigma_pb']:.6g} ± {r['error_pb']:.2g} pb   "
                   f"Pythia {r['pythia_pb']:.6g} ± {r['pythia_error_pb']:.2g}   "
                   f"pull {r['pull']:+.2f}")
    if not quiet():
        click.echo(f"\nReport written to {out}/ (summary.md, results.json, mll.png)")
