"""Options that accept an old spelling without showing it: one name in the help, both on the command line."""
from __future__ import annotations

from typing import Any

import click


class AliasedOption(click.Option):
    """A click option whose ``aliases`` parse like its own names but are left out of ``--help``.

    Why: the CLI speaks one vocabulary (``--num-classes``), yet scripts written with an earlier
    name (``--classes``) must keep working.
    """

    def __init__(self, param_decls: list[str], *, aliases: tuple[str, ...] = (), **attrs: Any) -> None:
        super().__init__(list(param_decls) + list(aliases), **attrs)
        self.aliases = tuple(aliases)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        shown, self.opts = self.opts, [o for o in self.opts if o not in self.aliases]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = shown

    def get_error_hint(self, ctx: click.Context | None) -> str:
        return f"'{self.opts[0]}'"


def num_classes_option(*, dest: str = "num_classes", **attrs: Any) -> Any:
    """``--num-classes N`` (``--classes`` accepted as a hidden alias), the class count of every command."""
    return click.option("--num-classes", dest, cls=AliasedOption, aliases=("--classes",), metavar="N", **attrs)
