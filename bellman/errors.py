"""Errors a user can cause, each carrying one clear sentence for the command line."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BellmanError(Exception):
    """A mistake in the input or the run directory; the CLI prints it and exits non-zero."""


class ConfigError(BellmanError):
    """A setting out of range or inconsistent with another; raised before anything compiles."""


class UnknownNameError(BellmanError):
    """An algorithm or environment name that bellman cannot resolve."""


class EnvError(BellmanError):
    """An environment that cannot be created or that the algorithm cannot handle."""


class RunDirError(BellmanError):
    """A run directory that is missing, not a bellman run, or already in use."""


class CheckpointError(BellmanError):
    """A checkpoint that is truncated, corrupted or does not match the run's settings."""


class MDPError(BellmanError):
    """A finite MDP that is malformed (P not stochastic, a gamma that makes values infinite...)."""


class TrainingDiverged(BellmanError):
    """The loss or the parameters became NaN or infinite; the last good checkpoint is kept."""


class UntrustedCodeError(BellmanError):
    """A run directory names user code (a `module:Class` env) that opening it would import; it
    is imported only when the user says so (`--trust-env`, `trust_env=True`)."""


class BellmanWarning(UserWarning):
    """Something the user should know that did not stop the command (a damaged checkpoint
    skipped, a damaged metrics line); the CLI prints it as one `bellman: warning:` line."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """A ' (did you mean: a, b?)' suffix naming the candidates closest to `name`, or ''."""
    pool = list(candidates)
    by_lower = {c.lower(): c for c in pool}
    matches = difflib.get_close_matches(name.lower(), list(by_lower), n=n, cutoff=0.5)
    if not matches:
        matches = [c.lower() for c in pool if name.lower() in c.lower()][:n]
    if not matches:
        return ""
    return " (did you mean: " + ", ".join(by_lower[m] for m in matches) + "?)"
