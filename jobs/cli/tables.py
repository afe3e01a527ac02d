"""Tables the command line prints: key columns never cut off.

Rich shortens a cell that does not fit with "…" by default, and off a terminal (a pipe,
cron, a file) it assumes 80 columns: dates, statuses, rule ids and field names came out as
``2026-11…``. Every table the CLI prints is built with :func:`cli_table` and printed with
:func:`print_table`:

- no column ever ends in "…" (``overflow="fold"``: what does not fit continues on the next
  line); key columns do not wrap at all while free-text columns (``wrap``) can take up the
  slack on a narrow terminal;
- off a terminal the table is printed at its natural width (however wide), so a pipe or
  ``grep`` sees every value whole on one line;
- cell text is shown as it is: ``[...]`` in a value (a reason, an id) is no rich markup.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text


class CliTable(Table):
    """A Table whose string cells are plain text (never rich markup)."""

    def add_row(self, *renderables: RenderableType | None, **options: Any) -> None:
        super().add_row(
            *(Text(cell) if isinstance(cell, str) else cell for cell in renderables), **options
        )


def cli_table(*headers: str, wrap: Collection[str] = (), **options: Any) -> Table:
    """A rich Table with one column per header. Columns named in ``wrap`` (free text) may
    wrap; all others are key columns that never wrap. No column truncates. ``options`` go
    to :class:`rich.table.Table` (``title=...``)."""
    table = CliTable(**options)
    for header in headers:
        table.add_column(header, no_wrap=header not in wrap, overflow="fold")
    return table


def print_table(console: Console, table: Table) -> None:
    """Print ``table`` on ``console``; off a terminal at the table's full natural width."""
    if not console.is_terminal:
        measuring = Console(width=100_000)
        natural = measuring.measure(table).maximum
        if natural > console.width:
            console = Console(file=console.file, width=natural, highlight=False, soft_wrap=True)
    console.print(table)
