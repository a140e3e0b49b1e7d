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


class Workers:
    def __init__(self, service: Service) -> None:
        self.service = service
        self.fanout = Fanout(service.store)
        self.processor = Processor(service, self.fanout)
        self.reconciler = Reconciler(service, self.fanout)

    def start(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self.processor.run(stop), name="processor"),
            asyncio.create_task(self.reconciler.run(stop), name="reconciler"),
        ]
