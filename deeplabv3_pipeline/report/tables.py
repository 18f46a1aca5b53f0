"""Tables as Markdown, HTML and CSV (the report, the benchmark, the matrix, the layer comparison): one
formatting for every table a person reads."""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Mapping, Sequence

HTML_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.2em; color: #222; }
table { border-collapse: collapse; margin: 0.4em 0 1.2em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eef1f5; }
tr:nth-child(even) td { background: #fafafa; }
.warning { border: 2px solid #b00020; color: #b00020; padding: 0.5em 0.8em; font-weight: bold; }
.swatch { display: inline-block; width: 0.9em; height: 0.9em; border: 1px solid #555; margin-right: 0.4em;
          vertical-align: middle; }
"""


def is_numeric(cell: str) -> bool:
    """'1,234', '-0.5', '79.09' and 'n/a' are numbers (right-aligned); words are not."""
    text = cell.replace(",", "").lstrip("+-")
    return cell == "n/a" or text.replace(".", "", 1).isdigit()


def numeric_columns(rows: list[list[str]]) -> list[bool]:
    """Columns whose every non-empty cell is a number."""
    columns = list(zip(*rows, strict=True)) if rows else []
    return [all(is_numeric(cell) for cell in column if cell) for column in columns]


def html_table(header: list[str], rows: list[list[str]], swatches: Sequence[Sequence[int]] | None = None) -> str:
    """An HTML table, numeric columns right-aligned; ``swatches``: an RGB colour per row, drawn before
    the second column's text (the class palette)."""
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in header) if any(header) else ""
    body = []
    numeric = numeric_columns(rows)
    for index, row in enumerate(rows):
        cells = []
        for column, cell in enumerate(row):
            text = html.escape(cell)
            if swatches is not None and column == 1:
                red, green, blue = swatches[index]
                text = f'<span class="swatch" style="background: rgb({red},{green},{blue})"></span>{text}'
            kind = ' class="num"' if numeric[column] else ""
            cells.append(f"<td{kind}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    head_row = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{head_row}<tbody>{''.join(body)}</tbody></table>"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Lines of a Markdown table, numeric columns right-aligned."""
    align = ["---:" if numeric else "---" for numeric in numeric_columns(rows)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]


def html_page(title: str, body: str) -> str:
    """A self-contained HTML page (the tables' style inline)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{HTML_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def csv_table(columns: Sequence[str], rows: Sequence[Mapping]) -> str:
    """A CSV table of ``columns`` from rows that may hold more keys (left out)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
