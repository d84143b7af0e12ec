"""Render a report, built as a list of blocks, to Markdown and to self-contained HTML.

The HTML file embeds its figures as base64 PNG data URIs and its style sheet
inline, so it opens anywhere without the ``figures`` folder and without a
network connection.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

__all__ = ["Block", "Figure", "Heading", "Paragraph", "Table", "render_html", "render_markdown"]


@dataclass(frozen=True)
class Heading:
    """A section heading; level 1 is the title."""

    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    """Plain text, written without markup."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table of formatted values; the frame's index is not shown."""

    frame: pd.DataFrame


@dataclass(frozen=True)
class Figure:
    """A PNG figure, stored relative to the report's folder."""

    path: Path
    caption: str


Block = Heading | Paragraph | Table | Figure

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; }
figure { margin: 1em 0; }
figure img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; }
"""


def render_markdown(blocks: list[Block], root: Path) -> str:
    """Return the report as Markdown; figure links are relative to ``root``."""
    parts = []
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"{'#' * block.level} {block.text}")
        elif isinstance(block, Paragraph):
            parts.append(block.text)
        elif isinstance(block, Table):
            parts.append(_escape_pipes(block.frame).to_markdown(index=False, disable_numparse=True))
        else:
            relative = block.path.relative_to(root).as_posix()
            parts.append(f"![{block.caption}]({relative})\n\n*{block.caption}*")
    return "\n\n".join(parts) + "\n"


def render_html(blocks: list[Block], root: Path, title: str) -> str:
    """Return the report as one HTML page with its figures and style embedded.

    Args:
        blocks: the report's content.
        root: the folder that figure paths are relative to.
        title: the page title.
    """
    body = []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{html.escape(block.text)}</p>")
        elif isinstance(block, Table):
            body.append(block.frame.to_html(index=False, border=0, na_rep="", escape=True))
        else:
            encoded = base64.b64encode((root / block.path.relative_to(root)).read_bytes()).decode("ascii")
            caption = html.escape(block.caption)
            body.append(
                f'<figure><img src="data:image/png;base64,{encoded}" alt="{caption}">'
                f"<figcaption>{caption}</figcaption></figure>"
            )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _escape_pipes(frame: pd.DataFrame) -> pd.DataFrame:
    """Escape '|' in text cells, which would otherwise split a Markdown table cell."""
    return frame.map(lambda value: value.replace("|", "\\|") if isinstance(value, str) else value)
