"""Prompt versions and their labels: the rules every backend applies, in one place.

A label names at most one version of a prompt, so giving it to a version takes it from the
others. ``latest`` is not set by callers: it always sits on the newest version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

LATEST = "latest"
DEFAULT_LABEL = "production"


def clean_labels(labels: Iterable[str]) -> list[str]:
    """Caller-given labels: deduplicated, in order, without ``latest`` (which we manage)."""
    return [label for label in dict.fromkeys(labels) if label and label != LATEST]


def plan_new_version(
    existing: Mapping[int, list[str]], labels: Iterable[str]
) -> tuple[int, list[str], dict[int, list[str]]]:
    """(new version number, its labels, {older version: its labels now} for those changed)."""
    version = max(existing, default=0) + 1
    wanted = [*clean_labels(labels), LATEST]
    return version, wanted, _take_from_others(existing, version, wanted)


def plan_set_labels(
    existing: Mapping[int, list[str]], version: int, labels: Iterable[str]
) -> dict[int, list[str]]:
    """{version: labels} to write so ``version`` has exactly ``labels`` (plus ``latest`` if it
    is the newest) and no other version keeps any of them."""
    wanted = clean_labels(labels)
    if version == max(existing, default=0):
        wanted.append(LATEST)
    changes = _take_from_others(existing, version, wanted)
    if existing.get(version) != wanted:
        changes[version] = wanted
    return changes


def _take_from_others(
    existing: Mapping[int, list[str]], version: int, wanted: list[str]
) -> dict[int, list[str]]:
    taken = set(wanted)
    changes: dict[int, list[str]] = {}
    for other, other_labels in existing.items():
        if other == version:
            continue
        kept = [label for label in other_labels if label not in taken]
        if kept != other_labels:
            changes[other] = kept
    return changes
