"""What the benchmark scripts share: progress lines on stderr and the printed results (one
markdown table per section, or JSON). Run the scripts from the repository root
(``.venv/bin/python benchmarks/<block>.py``): their directory is then on ``sys.path``."""

import json
import sys

__all__ = ["say", "markdown_table", "print_results"]


def say(text):
    """A progress line on stderr (the tables go to stdout)."""
    print(text, file=sys.stderr, flush=True)


def markdown_table(rows, digits=3):
    """``rows`` (dicts with the same keys) as a markdown table; floats with ``digits``
    decimals."""
    if not rows:
        return ""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for row in rows:
        lines.append("| " + " | ".join(
            f"{v:.{digits}f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    return "\n".join(lines)


def print_results(results, *, as_json=False, digits=3):
    """``{section: rows}`` as JSON or as one ``## section`` table each."""
    if as_json:
        print(json.dumps(results, indent=2, default=str))
    else:
        for name, rows in results.items():
            print(f"\n## {name}\n{markdown_table(rows, digits)}")
