"""The Python side of the compiled batch kernel (``ecoshare._native.govern_batch``).

With the native core, :meth:`GovernanceEngine.govern` hands the whole batch to the
kernel. It walks the messages in order and takes the common case itself: admission
(headers, signature, framing, strict scan, publisher, key and partition checks, then
the duplicate window), routing (static withheld outcomes, native row filters, consent)
and rendering (native plans), appending the same :class:`Produce` records, audit rows
and event ids the Python path would. Whatever it does not take (any refusal, a
duplicate, an agreement with rate limits, a partition being recovered, a writer schema
or route it cannot compile, any error) it hands, before changing anything for that
event, to :meth:`BatchRun.govern_event`, in place, so that order is kept.

What the kernel needs from Python it asks once per batch (publishers, writer schemas,
partitions, route programs) or once per distinct case (decision templates, the consent
of one subject under one agreement), through the ``kernel_*`` methods below; its counts
are added to the route runtimes and batch counts before any event goes the Python way,
and at the end.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ecoshare.domain.identity import PUBLISHER_HEADER, SIGNATURE_HEADER
from ecoshare.domain.partners import Partner, Role
from ecoshare.domain.policy import WithholdReason
from ecoshare.domain.state import GovernanceState
from ecoshare.governance.admission import WriterSchema
from ecoshare.governance.batch_run import BatchRun
from ecoshare.governance.plan import DeliveryPlan
from ecoshare.governance.progress import EVENT_ID_HEADER, SOURCE_OFFSETS_HEADER
from ecoshare.governance.routing import NO_CONSENT, Candidate, RouteRuntime, consented_fields


class KernelRun(BatchRun):
    """A batch governed by the compiled kernel: what the kernel asks of Python."""

    def kernel_settings(self) -> tuple[Any, ...]:
        """Fixed for the batch: where outputs go, their header names, the limits."""
        return (
            self.outputs,
            EVENT_ID_HEADER,
            SOURCE_OFFSETS_HEADER,
            PUBLISHER_HEADER,
            SIGNATURE_HEADER,
            self.now_ms,
            self.engine.max_event_bytes,
        )

    def kernel_partition(self, topic: str, partition: int, offset: int) -> tuple[Any, ...]:
        """The bookkeeping of a partition first met at ``offset``; its duplicate window is
        None where the kernel must leave every event to Python (being recovered)."""
        batch = self.partition_batch(topic, partition, offset)
        engine = self.engine
        window = None
        count = 0
        if not batch.skip:
            window = engine.admission_checks.window(topic, partition)
            try:
                count = engine.ingress_partitions(topic)
            except Exception:  # the Python path meets the same failure, per event
                window = None
        return (
            batch,
            batch.audit_events,
            batch.new_event_ids,
            window,
            count,
            batch.source,
            batch.source_header,
            batch.event_type,
        )

    def kernel_publisher(self, publisher_id: str) -> tuple[Partner, bytes, bool] | None:
        """A known partner's signing key, and whether it may publish (None: unknown)."""
        partner = self.state.partner(publisher_id)
        if partner is None:
            return None
        allowed = partner.enabled and Role.PUBLISHER in partner.roles
        return partner, self.engine.admission_checks.signing_key(partner), allowed

    def kernel_writer(self, topic: str, schema_id: int) -> tuple[WriterSchema, Any] | None:
        """The writer schema of ``topic`` with ``schema_id`` and its native layout."""
        engine = self.engine
        layouts = engine.native_layouts
        try:
            writer = engine.schemas.writer(topic, schema_id)
        except Exception:  # left to the Python path, which refuses the event
            return None
        if writer is None or layouts is None:
            return None
        return writer, layouts.of(writer)

    def kernel_program(self, writer: WriterSchema, partner: Partner) -> tuple[Any, ...] | None:
        """Each candidate route's outcome for events of ``writer`` from ``partner``:
        ``(runtime, static, delivery topic, candidates)``, a candidate being
        ``(candidate, row filter, plan, frame header, agreement header, rate-limited,
        personal)``; None when a route cannot run natively."""
        native = self.engine.native
        if native is None:
            return None
        try:
            runtimes = self.routing.runtimes(writer, partner)
        except Exception:  # the Python path meets (and refuses) the same failure
            return None
        routes = []
        for runtime in runtimes:
            candidates = []
            for candidate in runtime.candidates:
                predicate = candidate.predicate
                if not isinstance(candidate.native_plan, native.Plan) or not (
                    predicate is None or isinstance(predicate, native.RowFilter)
                ):
                    return None
                candidates.append(
                    (
                        candidate,
                        predicate,
                        candidate.native_plan,
                        candidate.frame_header,
                        candidate.agreement_header,
                        candidate.agreement.limits is not None,
                        bool(candidate.plan.personal_fields),
                    )
                )
            routes.append(
                (runtime, runtime.static_reason is not None, runtime.topic, tuple(candidates))
            )
        return writer.event_type, tuple(routes)

    def kernel_withheld(self, runtime: RouteRuntime, static: bool) -> tuple[int, str]:
        """The template and reason of a route's withheld decision (static, or no
        candidate chosen)."""
        if static:
            reason = runtime.static_reason
            assert reason is not None
        elif runtime.refused is not None:
            reason = WithholdReason.DELIVERY_SCHEMA_REFUSED
        else:
            reason = WithholdReason.ROW_FILTER
        return runtime.withheld_template(self.routing.template, reason), reason.value

    def kernel_delivered(
        self, runtime: RouteRuntime, candidate: Candidate, missing: tuple[str, ...]
    ) -> int:
        return runtime.delivered_template(self.routing.template, candidate, missing)

    def kernel_consent(
        self, runtime: RouteRuntime, candidate: Candidate, subject: str | None, publisher_id: str
    ) -> tuple[frozenset[str], list[str], tuple[str, ...]]:
        """The consented personal fields of ``subject`` under ``candidate``'s plan, the
        consents' ids and the personal fields left without consent (for this batch)."""
        plan = candidate.plan
        allowed: frozenset[str] = NO_CONSENT
        consent_ids: list[str] = []
        if subject:
            allowed, consent_ids = self.engine.consent_memo.consented_fields(
                self.state, plan, subject, publisher_id, runtime.subscriber_id, self.now
            )
        missing = tuple(name for name in plan.personal_fields if name not in allowed)
        return allowed, consent_ids, missing

    def kernel_route_counts(
        self,
        runtime: RouteRuntime,
        received: int,
        delivered: int,
        ingested_ms: list[int],
        reason: str | None,
        withheld: int,
    ) -> None:
        """Add what the kernel counted for a route since it last did."""
        runtime.received += received
        runtime.delivered += delivered
        runtime.delivered_ingested_ms.extend(ingested_ms)
        if reason is not None and withheld:
            runtime.withheld[reason] = runtime.withheld.get(reason, 0) + withheld

    def kernel_admitted(self, publisher_id: str, event_type: str, count: int, latest: int) -> None:
        """Add the kernel's admitted events of (publisher, event type) since it last did."""
        counts = self.counts
        key = (publisher_id, event_type)
        counts.admitted[key] = counts.admitted.get(key, 0) + count
        if latest > counts.latest_published_ms.get(key, 0):
            counts.latest_published_ms[key] = latest


_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


class ConsentMemo:
    """:func:`consented_fields` answers kept across batches.

    An answer depends on the state snapshot, the subject, publisher and subscriber, the
    plan's purpose and personal fields, and the moment only through which consents of
    (subject, publisher) are active: it holds from the latest of their boundaries
    (given, expiry, withdrawal) at or before the moment asked until the next one after
    it. A new state snapshot empties the memo; so does reaching ``limit`` answers.
    """

    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._state: GovernanceState | None = None
        self._answers: dict[tuple[Any, ...], tuple[datetime, datetime, Any]] = {}

    def consented_fields(
        self,
        state: GovernanceState,
        plan: DeliveryPlan,
        subject: str,
        publisher_id: str,
        subscriber_id: str,
        now: datetime,
    ) -> tuple[frozenset[str], list[str]]:
        if state is not self._state or len(self._answers) >= self._limit:
            self._answers.clear()
            self._state = state
        purpose = plan.agreement.effective_consent_purpose
        key = (subject, publisher_id, subscriber_id, purpose, plan.personal_fields)
        found = self._answers.get(key)
        if found is not None and found[0] <= now < found[1]:
            answer: tuple[frozenset[str], list[str]] = found[2]
            return answer
        answer = consented_fields(state, plan, subject, publisher_id, subscriber_id, now)
        earliest, latest = _EARLIEST, _LATEST
        for consent in state.consents.consents_of(subject, publisher_id):
            for boundary in (consent.given_at, consent.expires_at, consent.withdrawn_at):
                if boundary is None:
                    continue
                if boundary <= now:
                    earliest = max(earliest, boundary)
                else:
                    latest = min(latest, boundary)
        self._answers[key] = (earliest, latest, answer)
        return answer
