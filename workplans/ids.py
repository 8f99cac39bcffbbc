"""Identifier patterns from FORMAT.md, in one place so parsers and events agree."""

from __future__ import annotations

import re

__all__ = [
    "TASK_ID",
    "TASK_REF",
    "WORKPLAN_ID",
    "is_task_id",
    "is_task_ref",
    "is_workplan_id",
    "split_task_ref",
]

WORKPLAN_ID = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-WP-[0-9]{4}$")
TASK_ID = re.compile(r"^T[0-9]{2,}$")
TASK_REF = re.compile(r"^(?P<workplan>[A-Z][A-Z0-9]*(-[A-Z0-9]+)*-WP-[0-9]{4})-(?P<task>T[0-9]{2,})$")


def is_workplan_id(value: str) -> bool:
    return WORKPLAN_ID.fullmatch(value) is not None


def is_task_id(value: str) -> bool:
    return TASK_ID.fullmatch(value) is not None


def is_task_ref(value: str) -> bool:
    return TASK_REF.fullmatch(value) is not None


def split_task_ref(ref: str) -> tuple[str, str] | None:
    """``CUST-WP-0054-T02`` -> ``("CUST-WP-0054", "T02")``; None if it is not a task reference."""
    match = TASK_REF.fullmatch(ref)
    if match is None:
        return None
    return match.group("workplan"), match.group("task")
