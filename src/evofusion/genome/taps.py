"""Named feature taps of a student genome: where feature distillation reads the student.

A genome declares taps as ``name -> location``. Locations name a place by its meaning in the layered
spec, so a tap stays valid when operators add, remove, widen or deepen stages:

* ``features``: the penultimate vector (the input of the head's final linear layer).
* ``last_stage``: the output of the last stage (a feature map).
* ``stage-K`` (K >= 1): the K-th stage from the end (``stage-1`` is ``last_stage``).
* ``depthF`` (F in [0, 1]): the stage at relative depth F, i.e. index ``round(F * (n_stages - 1))``
  (``depth0`` is the first stage, ``depth0.5`` the middle one, ``depth1`` the last).
* ``stageI`` (I >= 0): stage number I, clamped to the last stage when the genome has fewer stages
  (an absolute index is pinned to a position; prefer the relative forms for evolving students).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from evofusion.errors import GenomeError

if TYPE_CHECKING:
    from evofusion.genome.spec import StudentGenome

FEATURES = "features"
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_STAGE = re.compile(r"^stage(\d{1,2})$")
_FROM_END = re.compile(r"^stage-(\d{1,2})$")
_DEPTH = re.compile(r"^depth(\d+(?:\.\d+)?)$")
LOCATION_HELP = "features | last_stage | stage<I> | stage-<K> | depth<F> (F in [0, 1])"


def check_location(location: str, field: str = "taps") -> None:
    """Raise GenomeError (naming ``field``) unless ``location`` follows the tap grammar."""
    if not isinstance(location, str):
        raise GenomeError(field, f"a tap location must be a string ({LOCATION_HELP}), got {location!r}")
    if location in (FEATURES, "last_stage") or _STAGE.match(location):
        return
    m = _FROM_END.match(location)
    if m and int(m.group(1)) >= 1:
        return
    m = _DEPTH.match(location)
    if m and 0.0 <= float(m.group(1)) <= 1.0:
        return
    raise GenomeError(field, f"unknown tap location {location!r}; valid: {LOCATION_HELP}")


def check_taps(taps: object) -> None:
    """Validate a genome's ``taps`` value: a tuple of ``(name, location)`` pairs, names unique."""
    if not isinstance(taps, tuple):
        raise GenomeError("taps", f"must be a tuple of (name, location) pairs, got {type(taps).__name__}")
    seen: set[str] = set()
    for item in taps:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise GenomeError("taps", f"every tap is a (name, location) pair, got {item!r}")
        name, loc = item
        if not isinstance(name, str) or not _NAME.match(name):
            raise GenomeError("taps", f"tap name {name!r} must be an identifier (letters, digits, _)")
        if name in seen:
            raise GenomeError(f"taps.{name}", "declared twice")
        seen.add(name)
        check_location(loc, f"taps.{name}")


def resolve_location(genome: StudentGenome, location: str) -> int | None:
    """Stage index the location reads after, or None for ``features`` (the penultimate vector)."""
    check_location(location)
    n = len(genome.stages)
    if location == FEATURES:
        return None
    if location == "last_stage":
        return n - 1
    m = _STAGE.match(location)
    if m:
        return min(int(m.group(1)), n - 1)
    m = _FROM_END.match(location)
    if m:
        return max(0, n - int(m.group(1)))
    m = _DEPTH.match(location)
    assert m is not None  # check_location accepted it
    return int(round(float(m.group(1)) * (n - 1)))


def tap_location(genome: StudentGenome, tap: str) -> str:
    """The location of ``tap``: a tap name the genome declares, or a location written directly.

    Raises:
        GenomeError: ``tap`` is neither a declared name nor a valid location.
    """
    declared = dict(getattr(genome, "taps", ()))
    if tap in declared:
        return declared[tap]
    try:
        check_location(tap)
    except GenomeError:
        names = ", ".join(sorted(declared)) or "none declared"
        raise GenomeError("student_tap", f"{tap!r} is neither a tap the genome declares ({names}) nor a "
                          f"location ({LOCATION_HELP})") from None
    return tap
