"""Faust on the embedded broker (tansu): the adjustments its control app needs there only.

Apache Kafka runs the control plane's Faust app as shipped; tansu differs from it in
two ways that Faust and aiokafka rely on, so on tansu (and only there) the control app
is built from :class:`TansuFaustApp`, whose consumer thread adjusts both:

- Fetch wait: tansu does not answer a waiting fetch when records arrive, only when the
  wait expires, which Faust fixes at 1500 ms; every control change would then show up
  to 1.5 s late. The thread bounds the wait to ``fetch_max_wait_ms`` (100 ms by default),
  at the cost of an idle fetch per wait. Kafka answers a waiting fetch as soon as a
  record arrives, so the long wait costs nothing there.
- Leaving the group: aiokafka sends LeaveGroup only for generations above 0, as Apache
  Kafka numbers the first generation 1; tansu numbers it 0, so a stopped
  first-generation member would hold its partitions until its session expired, and a
  restarted worker would wait that long to join.

:func:`installed_adjustments` names the adjustments active in a running app, so a test
can show that none is on Kafka.
"""

from __future__ import annotations

import logging

import aiokafka
import faust
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TransportT

logger = logging.getLogger(__name__)

FETCH_WAIT = "fetch wait bounded"
LEAVE_AT_GENERATION_ZERO = "LeaveGroup at generation 0"
APP_CLASS = "tansu app class"

# The fetch wait Faust builds its worker consumer with (faust.transport.drivers.aiokafka).
STOCK_FETCH_WAIT_MS = 1500


class TansuConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread with the fetch wait bounded and a generation-0 leave."""

    async def on_start(self) -> None:
        await super().on_start()
        coordinator = getattr(self._consumer, "_coordinator", None)
        if isinstance(coordinator, GroupCoordinator):
            _leave_group_from_generation_zero(coordinator)

    def _create_worker_consumer(
        self, transport: faust_aiokafka.Transport
    ) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        app = self.app
        if isinstance(app, TansuFaustApp):
            consumer._fetch_max_wait_ms = app.fetch_max_wait_ms  # read by consumer.start()
        return consumer


def _leave_group_from_generation_zero(coordinator: GroupCoordinator) -> None:
    leave_above_zero = coordinator._maybe_leave_group

    async def leave() -> None:
        if coordinator.generation == 0 and coordinator._group_instance_id is None:
            try:
                await coordinator._send_req(
                    LeaveGroupRequest(coordinator.group_id, coordinator.member_id)
                )
            except KafkaError as exc:
                logger.warning("could not leave group %s: %s", coordinator.group_id, exc)
            coordinator.reset_generation()
            return
        await leave_above_zero()

    coordinator._maybe_leave_group = leave


class TansuConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return TansuConsumerThread(self, loop=self.loop, beacon=self.beacon)


class TansuTransport(faust_aiokafka.Transport):
    Consumer = TansuConsumer


class TansuFaustApp(faust.App):
    """A Faust app whose consumer carries the tansu adjustments (see the module doc)."""

    fetch_max_wait_ms: int = 100

    def _new_transport(self) -> TransportT:
        return TansuTransport(self.conf.broker_consumer, self)


def installed_adjustments(app: faust.App) -> list[str]:
    """The tansu adjustments active in the started ``app``; empty for a stock app."""
    found: list[str] = []
    if isinstance(app, TansuFaustApp):
        found.append(APP_CLASS)
    thread = getattr(app.consumer, "_thread", None)
    consumer = getattr(thread, "_consumer", None)
    if isinstance(thread, TansuConsumerThread) or (
        consumer is not None and consumer._fetch_max_wait_ms != STOCK_FETCH_WAIT_MS
    ):
        found.append(FETCH_WAIT)
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is not None and "_maybe_leave_group" in vars(coordinator):
        found.append(LEAVE_AT_GENERATION_ZERO)
    return found
