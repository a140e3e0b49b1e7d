"""Prometheus metrics of the delivery side, on Callboard's own registry (the receiver adds its own)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

DELIVERY_ATTEMPTS = Counter(
    "callboard_delivery_attempts_total", "Outbound delivery attempts by resulting state", ["outcome"], registry=REGISTRY
)
DELIVERY_LATENCY = Histogram(
    "callboard_delivery_seconds",
    "Outbound delivery attempt latency",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
    registry=REGISTRY,
)
