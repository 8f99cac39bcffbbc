"""Canon documents: ADRs, standards, runbooks and notes with TOML front matter."""

from __future__ import annotations

import re

from workplans._fields import KeyLines, Reader
from workplans._toml import load_toml
from workplans.front_matter import FENCE, missing_front_matter, split_front_matter
from workplans.models import CanonDocument, CanonKind, CanonStatus
from workplans.problems import FileProblem, FormatError

__all__ = ["CANON_ID", "parse_canon", "render_canon"]

CANON_ID = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")
_KEYS = ("id", "title", "kind", "status", "date", "supersedes")


def parse_canon(text: str, path: str) -> CanonDocument | None:
    """Parse a canon document; None for a README/index without front matter."""
    try:
        front = split_front_matter(text)
    except ValueError as error:
        raise FormatError([FileProblem(path, 1, str(error))]) from None
    if front is None:
        if path.rsplit("/", 1)[-1] in ("README.md", "index.md"):
            return None
        line, message = missing_front_matter(text, "a canon document")
        raise FormatError([FileProblem(path, line, message)])
    data = load_toml(front.toml, path, front.first_line)
    problems: list[FileProblem] = []
    reader = Reader(data, path, KeyLines(front.toml, front.first_line), problems)
    doc_id = reader.pattern("id", CANON_ID, "ADR-001")
    title = reader.string("title", required=True)
    kind = reader.choice("kind", CanonKind)
    status = reader.choice("status", CanonStatus)
    date = reader.date("date")
    supersedes = reader.strings("supersedes")
    if problems:
        raise FormatError(problems)
    assert doc_id is not None and title is not None and kind is not None and status is not None
    return CanonDocument(
        id=doc_id,
        title=title,
        kind=kind,
        status=status,
        date=date,
        supersedes=supersedes,
        body=front.body,
        extra=reader.extra(_KEYS),
    )


def render_canon(document: CanonDocument) -> str:
    """Write a canon document as a file; ``parse_canon(render_canon(d)) == d``."""
    import tomlkit  # only to write: reading and indexing never load it (canon/ADR-033)

    doc = tomlkit.document()
    doc["id"] = document.id
    doc["title"] = document.title
    doc["kind"] = document.kind.value
    doc["status"] = document.status.value
    if document.date is not None:
        doc["date"] = document.date
    doc["supersedes"] = list(document.supersedes)
    for key, value in document.extra.items():
        doc[key] = value
    return f"{FENCE}\n{tomlkit.dumps(doc)}{FENCE}\n{document.body}"
