"""Prometheus metrics, on their own registry so tests and several apps in one process do not clash."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

CALLBACKS = Counter(
    "callboard_callbacks_total", "Inbound callbacks by provider and outcome", ["provider", "outcome"], registry=REGISTRY
)
CALLBACK_LATENCY = Histogram(
    "callboard_callback_seconds",
    "Time to make an inbound callback durable and answer",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    registry=REGISTRY,
)
EVENTS = Counter("callboard_events_total", "Events recorded by type", ["type"], registry=REGISTRY)
DELIVERY_ATTEMPTS = Counter(
    "callboard_delivery_attempts_total", "Outbound delivery attempts by outcome", ["outcome"], registry=REGISTRY
)
DELIVERY_LATENCY = Histogram(
    "callboard_delivery_seconds",
    "Outbound delivery attempt latency",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
    registry=REGISTRY,
)
