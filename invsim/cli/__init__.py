"""The ``invsim`` command: a click group that scripts can call (``--json`` outputs).

Each sub-command lives in its own module and only parses its arguments before calling
library functions:

=====================  ==============================================================
``invsim xsec``        :mod:`invsim.cli.xsec` -> :func:`forward.xsec.cross_section`
``invsim generate``    :mod:`invsim.cli.generate` -> :func:`forward.generate.generate_events`
``invsim scan``        :mod:`invsim.cli.scan` -> :func:`invsim.scan.scan`
``invsim posterior``   :mod:`invsim.cli.posterior` -> :mod:`invsim.infer`
``invsim demo``        :mod:`invsim.cli.demo` -> :func:`invsim.demo.run_demo`
=====================  ==============================================================

Shared parsing (``--set``, grids, likelihood factories, ``--device``, counts,
``--quiet``/``--verbose``) is in :mod:`invsim.cli._common`. Every command takes
``-q/--quiet`` (only the result), ``-v/--verbose`` (progress bars even into a file, the
provenance record on stderr) and ``--json``; progress bars follow
:mod:`forward.progress`. The group records the command line for the provenance of
every output (:func:`forward.provenance.command_line`).

Errors that escape a command (ValueError, TypeError, OSError, KeyError, ImportError
and RuntimeError, which covers torch's) are printed as one line ``Error: <message>``
on stderr with exit status 1; any other exception is a bug and is printed as one line
too, naming its type and asking for ``--debug``; click's usage errors keep exit
status 2. ``invsim --debug ...`` re-raises them with their traceback
instead.
"""

from __future__ import annotations

import click

from invsim import CITATION, __version__
from invsim.cli import demo, generate, posterior, scan, train, xsec
from invsim.cli._common import load_factory, parse_assignments, parse_grid, parse_range

__all__ = [
    "cli",
    "load_factory",
    "main",
    "parse_assignments",
    "parse_grid",
    "parse_range",
]

#: exceptions a command may leak that are reported as one line (exit status 1)
_REPORTED = (ValueError, TypeError, OSError, KeyError, ImportError, RuntimeError)


def _one_line(err: BaseException) -> str:
    """The exception's message on one line (its type name if it has none)."""
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(str(text).split()) or type(err).__name__


class _Group(click.Group):
    """A click group that turns errors escaping a command into one ``Error:`` line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Record the command line for provenance (:func:`forward.provenance.command_line`)
        until the command ends."""
        from forward.provenance import recording_command

        ctx.with_resource(recording_command(["invsim", *args]))
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        # click's own exits and aborts are RuntimeErrors: let click handle them
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except _REPORTED as err:
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(_one_line(err)) from err
        except Exception as err:  # a bug: still one line, the traceback with --debug
            if ctx.params.get("debug"):
                raise
            raise click.ClickException(
                f"internal error ({type(err).__name__}: {_one_line(err)}); rerun with "
                "'invsim --debug ...' for the traceback and please report it") from err


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="invsim")
@click.option("--cite", is_flag=True, is_eager=True, expose_value=False,
              callback=lambda ctx, _p, v: _print_citation(ctx) if v else None,
              help="Print the BibTeX entry for invsim and exit.")
@click.option("--debug", is_flag=True,
              help="Show the full traceback of an error instead of one line.")
def cli(debug: bool) -> None:
    """invsim: probabilistic inference by inverse simulation at the LHC."""


def _print_citation(ctx: click.Context) -> None:
    click.echo(CITATION)
    ctx.exit(0)


cli.add_command(xsec.xsec)
cli.add_command(generate.generate)
cli.add_command(demo.demo)
cli.add_command(train.train)
cli.add_command(scan.scan_command)
cli.add_command(posterior.posterior)


def main(args: list[str] | None = None) -> None:
    """Entry point of the ``invsim`` console script and ``python -m invsim``.

    Args:
        args: command-line arguments (default: ``sys.argv[1:]``).
    """
    cli.main(args=args)
