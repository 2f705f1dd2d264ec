"""JSON Lines read back safely: the lines of a text cut at ``\\n`` only.

``json.dumps(..., ensure_ascii=False)``, which writes the sets, the runs, the feedback and the
drafts, escapes ``\\n`` and the ASCII controls but leaves U+0085, U+2028 and U+2029 raw inside
strings. ``str.splitlines()`` cuts at those too (and at \\x0b, \\x0c, \\x1c–\\x1e): a user's comment
holding one would be read as two broken lines and lost. Every JSONL reader of the package goes
through ``jsonl_lines``.

Deliberately left out: parsing (each reader reports its own errors, in French, with line numbers).
"""

from __future__ import annotations


def jsonl_lines(text: str) -> list[str]:
    """The lines of a JSON Lines text, numbered from 1 by their index + 1; no trailing empty line.

    A ``\\r`` left by a file saved with Windows line endings is JSON whitespace: ``json.loads``
    accepts it."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines
