"""Audit checks on a BatchNormalization's attributes and running statistics.

Each check returns :class:`Finding` objects with a stable ``code`` (documented in the README; never
renamed), a severity, the affected channels and a message that says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITY_RANK = {INFO: 0, WARNING: 1, ERROR: 2}
MAX_LISTED_CHANNELS = 32
# inactive-channel: var below this fraction of epsilon and |mean| below INACTIVE_MEAN
INACTIVE_VAR_FRACTION = 1e-3
INACTIVE_MEAN = 1e-6

# code -> (severity, meaning). The README's table is generated from the same words.
CHECKS: dict[str, tuple[str, str]] = {
    "non-finite": (ERROR, "NaN or Inf in scale, bias, mean or var"),
    "variance-negative": (ERROR, "a running variance below zero"),
    "training-mode": (ERROR, "training_mode=1: the node uses batch statistics at inference"),
    "fold-overflow": (ERROR, "folding would make the target weights or bias non-finite or overflow their dtype"),
    "variance-tiny": (WARNING, "var below epsilon for some channels: normalization is dominated by epsilon and folding amplifies the weights"),
    "stats-uninitialized": (WARNING, "mean all zero and var all one: the running statistics were never updated"),
    "momentum-suspicious": (WARNING, "momentum below 0.5 under the ONNX convention: likely PyTorch's convention leaked through"),
    "epsilon-nonpositive": (WARNING, "epsilon is zero or negative: a zero variance divides by zero"),
    "dead-channel": (INFO, "scale (gamma) zero for some channels: the channel outputs a constant"),
    "inactive-channel": (INFO, "running mean and var both ~0 for some channels: their input is constantly zero upstream, so the BN outputs its bias there"),
    "stats-not-constant": (INFO, "statistics are graph inputs or computed at run time: cannot be audited or folded"),
    "stats-overridable": (INFO, "statistics are initializers that are also graph inputs: callers may override them at run time"),
}


@dataclass(frozen=True)
class Finding:
    code: str
    severity: str
    message: str
    channels: tuple[int, ...] = ()
    channel_count: int = 0

    def to_dict(self) -> dict:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "channels": list(self.channels)}


def finding(code: str, message: str, channels=()) -> Finding:
    channels = [int(c) for c in channels]
    return Finding(code, CHECKS[code][0], message, tuple(channels[:MAX_LISTED_CHANNELS]), len(channels))


def _list(channels) -> str:
    channels = [int(c) for c in channels]
    head = ", ".join(str(c) for c in channels[:8])
    return head + (f" (+{len(channels) - 8} more)" if len(channels) > 8 else "")


def check_statistics(scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray,
                     epsilon: float) -> list[Finding]:
    """Checks that need the values of the four parameters (float64 channel vectors).

    ``epsilon`` is used for the variance checks; see :func:`check_epsilon` for epsilon itself.
    """
    out: list[Finding] = []
    nonfinite = sorted(set().union(*(np.flatnonzero(~np.isfinite(a)).tolist()
                                     for a in (scale, bias, mean, var))))
    if nonfinite:
        out.append(finding("non-finite", f"NaN or Inf in the parameters of {len(nonfinite)} "
                           f"channel(s) ({_list(nonfinite)}); the BN outputs NaN or Inf there. "
                           "Re-export from a checkpoint with finite statistics.", nonfinite))
    with np.errstate(invalid="ignore"):
        negative = np.flatnonzero(var < 0)
        below = (var >= 0) & (var < epsilon)
        # var and mean both ~0: the channel's input never varied from zero (a dead channel in a
        # trained model). Harmless, and not what variance-tiny warns about.
        inactive_mask = below & (var < epsilon * INACTIVE_VAR_FRACTION) & (np.abs(mean) < INACTIVE_MEAN)
        tiny = np.flatnonzero(below & ~inactive_mask)
        inactive = np.flatnonzero(inactive_mask)
    if negative.size:
        out.append(finding("variance-negative", f"running var is negative in {negative.size} "
                           f"channel(s) ({_list(negative)}); a variance cannot be negative, so the "
                           "statistics are corrupt. Recompute them (re-run calibration).", negative))
    if tiny.size:
        out.append(finding("variance-tiny", f"running var is below epsilon ({epsilon:g}) in "
                           f"{tiny.size} channel(s) ({_list(tiny)}): epsilon dominates the "
                           "normalization there and folding scales weights by up to "
                           f"{_max_gain(scale, var, epsilon, tiny):.3g}x. Check those channels are "
                           "meant to be near-constant.", tiny))
    if inactive.size:
        out.append(finding("inactive-channel", f"running mean and var are ~0 in {inactive.size} "
                           f"channel(s) ({_list(inactive)}): their input is constantly zero "
                           "upstream (dead channels), so the BN outputs its bias there; folding is "
                           "exact. Consider pruning them.", inactive))
    if mean.size and np.all(mean == 0) and np.all(var == 1):
        out.append(finding("stats-uninitialized", "running mean is all 0 and var all 1, the "
                           "initial values: the statistics were never updated. Export after "
                           "training (or calibrate) so BN normalizes with real statistics."))
    dead = np.flatnonzero(scale == 0)
    if dead.size:
        out.append(finding("dead-channel", f"scale (gamma) is 0 in {dead.size} channel(s) "
                           f"({_list(dead)}): each outputs the constant bias. Consider pruning "
                           "them.", dead))
    return out


def check_epsilon(epsilon: float) -> list[Finding]:
    """An attribute check: it applies whether or not the statistics are constant."""
    if not epsilon > 0:  # NaN too
        return [finding("epsilon-nonpositive", f"epsilon is {epsilon:g}: a zero variance "
                        "divides by zero. Use a positive epsilon (1e-5 is usual).")]
    return []


def _max_gain(scale, var, epsilon, channels) -> float:
    channels = channels[channels < min(scale.size, var.size)]  # malformed models: unequal lengths
    with np.errstate(divide="ignore", invalid="ignore"):
        gain = np.abs(scale[channels]) / np.sqrt(var[channels] + epsilon)
    finite = gain[np.isfinite(gain)]
    return float(finite.max()) if finite.size else float("inf")


def check_momentum(momentum: float, explicit: bool) -> list[Finding]:
    if explicit and momentum < 0.5:
        return [finding("momentum-suspicious", f"momentum is {momentum:g}: under ONNX's convention "
                        "(running = momentum*running + (1-momentum)*batch) the running statistics "
                        f"average about {1 / max(1 - momentum, 1e-12):.3g} batches. PyTorch's "
                        f"momentum={momentum:g} is ONNX's {1 - momentum:g}: fix the exporter's "
                        "conversion.")]
    return []


def summarize(findings) -> dict[str, int]:
    counts = {ERROR: 0, WARNING: 0, INFO: 0}
    for f in findings:
        counts[f.severity] += 1
    return counts
