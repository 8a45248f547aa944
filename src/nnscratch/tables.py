"""Tables as plain data, shown three ways: text for a terminal or ``print``, HTML for Jupyter, rich for the CLI.

A :class:`TableData` is what a network's layer summary, a training history and the activation study's
tables are made of; whoever shows one picks the rendering.  In a notebook it displays itself as an
HTML table (IPython calls ``_repr_html_``).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table


@dataclass(frozen=True)
class TableData:
    """A table as strings: a title, column headers, rows and notes under it (totals, a legend).

    The first column is read as a label (aligned left); the others hold figures (aligned right).
    """

    title: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]
    notes: tuple[str, ...] = ()

    def __str__(self) -> str:
        """The table in plain text, columns padded to their widest cell."""
        lines = [self.headers, *self.rows]
        widths = [max(len(line[i]) for line in lines) for i in range(len(self.headers))]

        def text(cells: Sequence[str]) -> str:
            padded = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
            return "  ".join(padded).rstrip()

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([self.title, text(self.headers), rule, *map(text, self.rows), *self.notes])

    def _repr_html_(self) -> str:
        return html_table(self)


def html_table(data: TableData) -> str:
    """The table as an HTML fragment: the table with its title as caption, then its notes as paragraphs."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in data.headers)
    align = ["left"] + ["right"] * (len(data.headers) - 1)
    cells = (zip(align, row, strict=True) for row in data.rows)
    body = "".join(
        "<tr>" + "".join(f'<td style="text-align:{a}">{html.escape(c)}</td>' for a, c in row) + "</tr>" for row in cells
    )
    notes = "".join(f"<p>{html.escape(note)}</p>" for note in data.notes)
    return (
        f'<table><caption style="text-align:left;font-weight:bold">{html.escape(data.title)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"
    )


def rich_table(data: TableData) -> Table:
    """The table for a rich console (the command line's tables), notes as its caption."""
    from rich.table import Table

    table = Table(title=data.title, title_justify="left", caption="\n".join(data.notes) or None, caption_justify="left")
    for i, name in enumerate(data.headers):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in data.rows:
        table.add_row(*row)
    return table
