"""The ``invsim`` command: a click group that scripts can call (``--json`` outputs).

Sub-commands live in their own modules and register here.
"""

from __future__ import annotations

import click

from invsim import CITATION, __version__
from invsim.cli_demo import demo
from invsim.cli_generate import generate
from invsim.cli_posterior import posterior
from invsim.cli_scan import scan_command
from invsim.cli_xsec import xsec

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="invsim")
@click.option("--cite", is_flag=True, is_eager=True, expose_value=False,
              callback=lambda ctx, _p, v: _print_citation(ctx) if v else None,
              help="Print the BibTeX entry for invsim and exit.")
def cli() -> None:
    """invsim: probabilistic inference by inverse simulation at the LHC."""


def _print_citation(ctx: click.Context) -> None:
    click.echo(CITATION)
    ctx.exit(0)


cli.add_command(xsec)
cli.add_command(generate)
cli.add_command(demo)
cli.add_command(scan_command)
cli.add_command(posterior)


def main() -> None:
    """Entry point of the ``invsim`` console script."""
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
