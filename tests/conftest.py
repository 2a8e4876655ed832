"""Shared pytest configuration: a hypothesis profile that keeps the suite fast and deterministic."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fastmlp",
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("FASTMLP_HYPOTHESIS_PROFILE", "fastmlp"))
