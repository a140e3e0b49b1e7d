"""Prometheus metrics of the inbound side, on the registry `routes.metrics` owns."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from routes.metrics import REGISTRY

CALLBACKS = Counter(
    "callboard_callbacks_total", "Inbound callbacks by provider and outcome", ["provider", "outcome"], registry=REGISTRY
)
CALLBACK_LATENCY = Histogram(
    "callboard_callback_seconds",
    "Time to make an inbound callback durable and answer",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
