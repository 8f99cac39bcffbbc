"""The promotion gate: the evidence a workload needs before it is ``promoted``.

Every unmet item is listed, so a refused promotion tells the operator the
whole remaining checklist at once.
"""

from __future__ import annotations

import re

from workplans.fleet_models import Gate, Workload

__all__ = ["DIGEST", "REQUIRED_STAGES", "is_pinned_by_digest", "unmet_gate_items"]

REQUIRED_STAGES = ("deploy", "observe", "promote", "rollback")
DIGEST = re.compile(r"@sha256:[0-9a-f]{64}(?![0-9A-Za-z])")
"""An image reference pinned by content: ``name@sha256:<64 lower-case hex>`` (the OCI digest form)."""


def is_pinned_by_digest(image: str | None) -> bool:
    return image is not None and DIGEST.search(image) is not None


def unmet_gate_items(workload: Workload) -> list[str]:
    """What is still missing before ``workload`` may be promoted; empty when the gate holds.

    A non-empty documented ``exception`` stands in for the whole gate.
    """
    gate = workload.gate or Gate()
    if gate.exception.strip():
        return []
    missing: list[str] = []
    if not (gate.overlay_repo or "").strip():
        missing.append("overlay_repo is not set")
    missing.extend(
        f"stage {stage!r} is not in stages_proven"
        for stage in REQUIRED_STAGES
        if stage not in gate.stages_proven
    )
    if not gate.canary_observed:
        missing.append("canary_observed is not true")
    if not (gate.operator_approval or "").strip():
        missing.append("operator_approval is not recorded")
    if not (gate.image or "").strip():
        missing.append("image is not set")
    elif not is_pinned_by_digest(gate.image):
        missing.append(f"image {gate.image!r} is not pinned by digest (name@sha256:<64 hex>)")
    if workload.stateful and gate.backup_restore_drill is None:
        missing.append("backup_restore_drill is not recorded (required for a stateful workload)")
    return missing
