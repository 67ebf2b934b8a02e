"""The ``x3dsearch`` command line.

Each sub-command lives in its own module and imports heavy libraries (torch,
ray) inside the command, so ``x3dsearch --help`` stays fast. Bad input of any
kind ends as one line on stderr and exit code 2.
"""
from __future__ import annotations

import logging
import sys
from typing import NoReturn

import click

from .. import __version__
from ..errors import X3DSearchError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="x3dsearch")
def cli() -> None:
    """Progressive expansion search for efficient video networks (X3D)."""


def _register() -> None:
    from . import (calibrate_cmd, convert_cmd, data_cmd, distill_cmd, flops_cmd, report_cmd,
                   search_cmd, train_cmd)

    for command in (flops_cmd.flops, data_cmd.data, train_cmd.train, search_cmd.expand, search_cmd.resume,
                    search_cmd.baseline, calibrate_cmd.calibrate, report_cmd.plot, report_cmd.show, report_cmd.report,
                    distill_cmd.distill, convert_cmd.convert):
        cli.add_command(command)


_register()


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"x3dsearch: error: {message}", err=True)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the group, turning every user error into one line and exit 2."""
    from ..utils.io import DISK_FULL, disk_full

    # A log file that cannot be written (a full disk) loses lines, not the command: no logging tracebacks.
    logging.raiseExceptions = False
    try:
        rv = cli.main(args=argv, prog_name="x3dsearch", standalone_mode=False)
    except click.exceptions.NoSuchOption as exc:
        fail(exc.format_message())
    except click.exceptions.UsageError as exc:
        fail(exc.format_message())
    except click.exceptions.Abort:
        fail("aborted", 130)
    except KeyboardInterrupt:
        fail("interrupted; the run directory keeps its last saved state", 130)
    except X3DSearchError as exc:
        fail(str(exc))
    except OSError as exc:
        if exc.errno not in DISK_FULL:
            raise
        fail(str(disk_full(exc, exc.filename or "a file")))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.ClickException as exc:
        fail(exc.format_message())
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
