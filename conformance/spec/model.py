"""What a catalogue record is: profiles, tiers, the seed section a check verifies, and the record itself."""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from conformance.settings.options import MeshMode

F = TypeVar("F", bound=Callable[..., Any])


class Profile(enum.StrEnum):
    EGRESS_SIDECAR = "EGRESS-SIDECAR"
    EGRESS_AMBIENT = "EGRESS-AMBIENT"
    #: The harness's own checks of the in-cluster stand-in for the Internet.
    EXTERNAL_WORLD = "EXTERNAL-WORLD"


#: pytest marker of each profile.
PROFILE_MARKERS: Mapping[Profile, str] = MappingProxyType(
    {
        Profile.EGRESS_SIDECAR: "egress_sidecar",
        Profile.EGRESS_AMBIENT: "egress_ambient",
        Profile.EXTERNAL_WORLD: "external_world",
    }
)


class Tier(enum.StrEnum):
    #: Required for a certifiable profile result.
    CORE = "core"
    #: Beyond the documentation (the ambient equivalents of the sidecar intents).
    EXTENDED = "extended"


@dataclass(frozen=True)
class Seed:
    """Where a check comes from: the seed document and the heading of its section."""

    file: str
    section: str

    def __str__(self) -> str:
        return f"{self.file}, section {self.section!r}"


SEED_AMBIENT = "000_2c76676392fa61cf.txt"
SEED_ETP = "001_2a324748033e196a.txt"
SEED_MTLS = "002_cc7ee192d894de70.txt"
SEED_EGW = "003_7968a64320b06b64.txt"
SEED_NSD = "004_d84b0b36a19207dd.txt"


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    profile: Profile
    #: Family prefix (EGW, NSD, MTLS, ETP, AMB, XW): the Allure feature.
    family: str
    #: Data-plane modes the check runs on; empty for checks that do not depend on the mesh.
    modes: tuple[MeshMode, ...]
    seed: Seed | None
    #: What the seed documents. What upstream Istio must show is what the check's test asserts: its recorded
    #: expectations (``CheckRun.expected``), never restated here.
    documented: str
    #: Why upstream Istio does not show what the seed documents; None when it does.
    deviation: str | None = None
    #: What the harness had to change to run the documented configuration, and why.
    adaptations: tuple[str, ...] = ()
    tier: Tier = Tier.CORE
    #: Reason the check does not apply to upstream Istio; the check then has no test.
    not_applicable: str | None = None
    #: A known, explained disagreement between the check's expectation and the routing oracle's prediction.
    oracle_disagreement: str | None = None
    #: Cross-reference rules (``conformance.engine.crossref``) the documented configuration breaks on purpose — a
    #: pitfall the seed shows —, each as (rule, why). Any other rule the check's plan breaks is an error.
    breaks_rules: tuple[tuple[str, str], ...] = ()
    #: ``istioctl analyze`` errors the documented configuration raises on purpose — the pitfall the check
    #: shows —, each as (code, why). Any other analyzer error in the check's steps is an error.
    analyzer_errors: tuple[tuple[str, str], ...] = ()
    #: Where the specification's own expectation is wrong for upstream Istio: what it said, what holds, and
    #: the Istio source that shows it. The check asserts what holds.
    specification_correction: str | None = None
    #: Set for a check the specification's tables do not list: the seed claim it covers.
    beyond_specification: str | None = None

    @property
    def keyword(self) -> str:
        """The ``-k`` keyword that selects this check."""
        return self.id

    @property
    def seed_label(self) -> str | None:
        return self.seed.file.split("_", 1)[0] if self.seed else None


_FAMILY = re.compile(r"^([A-Z]+(?:-[A-Z]+)?)-?[0-9]")


def family_of(check_id: str) -> str:
    """The family of a check ID: its prefix (``EGW-04`` is of EGW, ``AMB-X2`` of AMB-X)."""
    match = _FAMILY.match(check_id)
    if match is None:
        raise ValueError(f"{check_id!r} is not a check ID (FAMILY-NN)")
    return match.group(1)
