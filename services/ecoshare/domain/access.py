"""Kafka ACLs derived from partners and agreements (for real Kafka with SASL/SCRAM).

The embedded broker enforces no ACLs; there, signatures alone keep partners from
publishing as one another. On Apache Kafka each partner authenticates as principal
``User:<partner_id>`` and these ACLs make the broker enforce the same rules:

- a publisher may write only to the ingress topics of the event types some agreement
  lets it publish (or all catalog types if it holds a ``*`` agreement), and read nothing;
- a subscriber may read (and describe) only its own delivery topics (``deliver.<id>.``
  prefix) with consumer groups under its own prefix (``<id>.``);
- the platform's own principal (workers, API, registry) gets everything else through
  broker configuration (super user), not through these bindings.

``ecoshare acl`` prints these bindings; ``deploy/kafka/partner-access.sh`` applies them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner, Role

ResourceType = Literal["topic", "group"]
PatternType = Literal["literal", "prefixed"]
Operation = Literal["write", "read", "describe"]


@dataclass(frozen=True, order=True, slots=True)
class AclBinding:
    """Allow ``principal`` to perform ``operation`` on a resource."""

    principal: str
    resource_type: ResourceType
    resource_name: str
    pattern_type: PatternType
    operation: Operation

    def kafka_acls_arguments(self) -> list[str]:
        """Arguments of Kafka's ``kafka-acls.sh --add`` for this binding."""
        return [
            "--add",
            "--allow-principal",
            self.principal,
            "--operation",
            self.operation.capitalize(),
            f"--{self.resource_type}",
            self.resource_name,
            "--resource-pattern-type",
            self.pattern_type.upper(),
        ]


def partner_acls(
    partners: Iterable[Partner],
    agreements: Iterable[Agreement],
    event_types: Iterable[str],
    *,
    ingress_topic: str = "ingress.{event_type}",
    delivery_prefix: str = "deliver.{subscriber}.",
) -> list[AclBinding]:
    """Every ACL binding the partners need, sorted; disabled partners get none.

    ``ingress_topic`` and ``delivery_prefix`` are templates of the deployment's topic
    names (with its topic prefix applied by the caller).
    """
    catalog_types = sorted(set(event_types))
    agreement_list = list(agreements)
    bindings: set[AclBinding] = set()
    for partner in partners:
        if not partner.enabled:
            continue
        principal = f"User:{partner.partner_id}"
        if Role.PUBLISHER in partner.roles:
            types: set[str] = set()
            for agreement in agreement_list:
                if agreement.names_publisher(partner.partner_id):
                    types.update(agreement.event_types)
            for event_type in sorted(types & set(catalog_types)):
                topic = ingress_topic.format(event_type=event_type)
                bindings.add(AclBinding(principal, "topic", topic, "literal", "write"))
                bindings.add(AclBinding(principal, "topic", topic, "literal", "describe"))
        if Role.SUBSCRIBER in partner.roles:
            prefix = delivery_prefix.format(subscriber=partner.partner_id)
            bindings.add(AclBinding(principal, "topic", prefix, "prefixed", "read"))
            bindings.add(AclBinding(principal, "topic", prefix, "prefixed", "describe"))
            group = f"{partner.partner_id}."
            bindings.add(AclBinding(principal, "group", group, "prefixed", "read"))
            bindings.add(AclBinding(principal, "group", group, "prefixed", "describe"))
    return sorted(bindings)
