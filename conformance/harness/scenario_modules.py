"""Loading the scenario modules, which declare the catalogue's records beside their tests.

The plugin loads all of them when pytest configures, before collection: the report, the cross-reference
rules and the oracle read every record, whichever modules or checks the run collects or selects (as a Gateway
API conformance suite imports its tests package, which registers every test).
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from conformance import PROJECT_ROOT
from conformance.spec.catalogue import CATALOGUE, CatalogueError

#: The package of the scenario modules, beside ``conformance/`` in the checkout.
SCENARIO_PACKAGE = "scenarios"


def load_scenarios(root: Path = PROJECT_ROOT) -> None:
    """Import every ``scenarios/test_*.py`` under ``root`` by the name pytest gives it (``scenarios.test_egw``),
    so pytest's own collection finds them imported and does not declare anything twice."""
    directory = root / SCENARIO_PACKAGE
    modules = sorted(directory.glob("test_*.py"))
    if not modules:
        raise CatalogueError(f"no scenario modules in {directory}: the catalogue would be empty")
    # What pytest's default import mode does for a test package under the rootdir.
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    for path in modules:
        module = importlib.import_module(f"{SCENARIO_PACKAGE}.{path.stem}")
        loaded = Path(module.__file__ or "").resolve()
        if loaded != path.resolve():
            raise CatalogueError(f"{module.__name__} was imported from {loaded}, not from {path}")
    CATALOGUE.loaded(str(directory))
