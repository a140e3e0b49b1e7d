"""The background loops of a Callboard process: processor, delivery worker, reconciler.

`callboard serve` runs them beside the HTTP server (unless `--no-worker`); `callboard worker`
runs them alone. They all stop when `stop` is set, finishing what they hold.
"""

from __future__ import annotations

import asyncio

from receiver.processor import Processor
from receiver.reconciler import Reconciler
from receiver.service import Service
from routes.fanout import Fanout
from routes.retry import RetryPolicy, parse_schedule
from routes.worker import DeliveryWorker, WorkerConfig


def worker_config(service: Service) -> WorkerConfig:
    s = service.settings
    return WorkerConfig(
        policy=RetryPolicy(parse_schedule(s.retry_schedule)),
        timeout=s.delivery_timeout,
        allow_private=s.allow_private_targets,
        disable_after=s.disable_after,
        health_interval=s.health_interval,
        log_successes=s.log_level == "debug",
    )


class Workers:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.fanout = Fanout(service.store)
        self.processor = Processor(service, self.fanout)
        self.reconciler = Reconciler(service, self.fanout)
        self.delivery = DeliveryWorker(service.store, self.fanout, worker_config(service))

    def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self.processor.run(stop), name="processor"),
            asyncio.create_task(self.reconciler.run(stop), name="reconciler"),
            asyncio.create_task(self.delivery.run(stop), name="delivery-worker"),
        ]
