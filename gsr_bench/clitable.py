"""Plain-text tables for the command line."""

from __future__ import annotations


def table(rows: list[list[str]], head: list[str]) -> str:
    """Left-aligned columns under a header and a rule."""
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    out = [line.format(*head), line.format(*("-" * w for w in widths))]
    out += [line.format(*map(str, r)) for r in rows]
    return "\n".join(s.rstrip() for s in out)
