"""Hypothesis profiles for the whole suite (HYPOTHESIS_PROFILE=dev for fewer examples)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hypothesis import HealthCheck, settings

# The vector generator (vectorgen/) lives beside the package, not in it.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

settings.register_profile(
    "ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=25, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
