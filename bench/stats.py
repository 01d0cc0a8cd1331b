"""Percentiles and summaries over samples; pure functions so scenarios agree on one definition."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(samples: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), so p50 of two values is
    their mean; NaN for no samples so a report shows the hole instead of a made-up zero."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    if low == high:
        return ordered[low]
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_ms(samples_s: Sequence[float], prefix: str) -> dict[str, float]:
    """p50 / p99 / max in milliseconds from samples in seconds, keyed `{prefix}_p50_ms` etc."""
    ms = [s * 1000.0 for s in samples_s]
    return {
        f"{prefix}_p50_ms": round(percentile(ms, 50), 3),
        f"{prefix}_p99_ms": round(percentile(ms, 99), 3),
        f"{prefix}_max_ms": round(max(ms), 3) if ms else math.nan,
        f"{prefix}_n": float(len(ms)),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, or None when either side is missing or the divisor is zero."""
    if numerator is None or denominator is None:
        return None
    if math.isnan(numerator) or math.isnan(denominator) or denominator == 0:
        return None
    return round(numerator / denominator, 3)


def best_round(rounds: list[dict[str, float]], key: str) -> dict[str, object]:
    """The round with the highest `key`, plus every round's `key` under `{key}_rounds`.

    Other engineers' jobs share these cores and only ever slow a round down, so the best of
    alternating rounds is the fairest estimate of what each side can do."""
    if not rounds:
        return {}
    values = [r.get(key, 0.0) for r in rounds]
    best: dict[str, object] = dict(rounds[values.index(max(values))])
    best[f"{key}_rounds"] = values
    return best
