"""Lines as people's editors write them, and keeping them that way on write-back.

A file may open with a UTF-8 byte order mark and end its lines with LF, CRLF,
a lone CR or a mix of them, with or without a final line ending. A line here
ends where CommonMark says it does (LF, CRLF or CR,
https://spec.commonmark.org/0.31.2/#line-ending); vertical tab, form feed,
NEL and U+2028/U+2029 are not line breaks, although ``str.splitlines`` takes
them for some. TOML accepts only LF and CRLF, so a lone CR in TOML is a file
error (:mod:`workplans._toml`).

:func:`keep_line_endings` is the write-back rule of docs/format.md ("Line
endings"): every line an edit leaves alone keeps its bytes, ending included,
and a new or changed line takes the ending of its neighbourhood.
"""

from __future__ import annotations

import re

__all__ = ["BOM", "ending", "keep_line_endings", "line_texts", "split_lines", "strip_ending"]

BOM = "\ufeff"
"""The byte order mark as a character: a file read as UTF-8 that starts with EF BB BF starts with it."""

_NOT_BREAKS = re.compile("[\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _splitlines_agrees(text: str) -> bool:
    """Whether ``str.splitlines`` cuts ``text`` where :func:`split_lines` does (no other breaks in it)."""
    if text.isascii():
        return not any(c in text for c in "\v\f\x1c\x1d\x1e")
    return _NOT_BREAKS.search(text) is None


def split_lines(text: str) -> list[str]:
    """``text`` cut after each LF, CRLF or lone CR; each line keeps its ending; ``""`` gives ``[]``."""
    if _splitlines_agrees(text):
        return text.splitlines(keepends=True)  # the same cut, in C
    return _LINE.findall(text)


def line_texts(text: str) -> list[str]:
    """The lines of :func:`split_lines` without their endings."""
    if _splitlines_agrees(text):
        return text.splitlines()
    return [strip_ending(line) for line in _LINE.findall(text)]


def ending(line: str) -> str:
    """The line ending of one line of :func:`split_lines`: ``"\\r\\n"``, ``"\\n"``, ``"\\r"`` or ``""``."""
    if line.endswith("\r\n"):
        return "\r\n"
    if line.endswith(("\n", "\r")):
        return line[-1]
    return ""


def strip_ending(line: str) -> str:
    """One line of :func:`split_lines` without its ending."""
    return line[: len(line) - len(ending(line))]


def keep_line_endings(before: str, after: str | list[str], default: str = "\n") -> str:
    """``after`` (an edit of ``before`` that writes its new lines with LF) with the line endings kept.

    A line of ``after`` matched to a line of ``before`` with the same text is
    written exactly as ``before`` holds it. Every other line takes the ending
    of its neighbourhood: a changed line the ending of the line it replaces,
    an added line the ending of the line written before it, else that of the
    first line after it, else ``default`` (for a part of a file, the ending of
    the line before the part). A last line that had no ending and now has
    lines after it gets one the same way; the last line of ``after`` has an
    ending exactly when ``after``'s has. One exception keeps lines apart: an
    empty line the edit wrote right after a lone CR takes CR, not LF (CR
    then LF would read as one CRLF and the empty line would vanish).

    ``after`` may be given as its lines (:func:`split_lines` form), which an
    edit that writes an LF line after a lone-CR line must do. Lines are matched
    by their longest common prefix and suffix, then by difflib inside what
    remains, so an edit in one place costs one pass.
    """
    joined = after if isinstance(after, str) else "".join(after)
    if before == joined:
        return joined
    if "\r" not in before and "\r" not in joined and ("\n" in before or default == "\n"):
        return joined  # every neighbourhood says LF, and LF is what the edit wrote
    lone_cr = "\r" in joined.replace("\r\n", "")
    if not lone_cr and _uniform_crlf(before) and (default == "\r\n" or "\n" in before):
        return _BARE_LF.sub("\r\n", joined)  # every neighbourhood says CRLF
    old = split_lines(before)
    new = split_lines(after) if isinstance(after, str) else after
    old_text = [strip_ending(line) for line in old]
    new_text = [strip_ending(line) for line in new]
    limit = min(len(old), len(new))
    head = 0
    while head < limit and old_text[head] == new_text[head]:
        head += 1
    tail = 0
    while tail < limit - head and old_text[-1 - tail] == new_text[-1 - tail]:
        tail += 1
    from difflib import SequenceMatcher  # here: hub.toml readers load this module for BOM alone

    middle = SequenceMatcher(
        None, old_text[head : len(old) - tail], new_text[head : len(new) - tail], autojunk=False
    ).get_opcodes()
    blocks = [("equal", 0, head, 0, head)]
    blocks += [(op, i1 + head, i2 + head, j1 + head, j2 + head) for op, i1, i2, j1, j2 in middle]
    blocks.append(("equal", len(old) - tail, len(old), len(new) - tail, len(new)))
    texts: list[str] = []
    endings: list[str] = []

    def near(after_old: int) -> str:
        if endings and endings[-1]:
            return endings[-1]
        return next((e for e in map(ending, old[after_old:]) if e), default)

    for op, i1, i2, j1, j2 in blocks:
        for k, j in enumerate(range(j1, j2)):
            kept = op == "equal" and bool(ending(old[i1 + k]))
            if not ending(new[j]):
                line_ending = ""
            elif kept:
                line_ending = ending(old[i1 + k])
            elif op == "equal":
                line_ending = near(i1 + k + 1)
            elif op == "replace" and i1 + k < i2 and ending(old[i1 + k]):
                line_ending = ending(old[i1 + k])
            else:
                line_ending = near(i2)
            if not kept and endings and endings[-1] == "\r" and not new_text[j] and line_ending[:1] == "\n":
                line_ending = "\r"  # CR then LF would read as one CRLF: this empty line would vanish
            texts.append(new_text[j])
            endings.append(line_ending)
    return "".join(text + line_ending for text, line_ending in zip(texts, endings, strict=True))


_BARE_LF = re.compile(r"(?<!\r)\n")


def _uniform_crlf(text: str) -> bool:
    """Every line of ``text`` ends with CRLF (the last may have none)."""
    crlf = text.count("\r\n")
    return crlf > 0 and crlf == text.count("\n") == text.count("\r")
