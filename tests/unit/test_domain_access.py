from datetime import UTC, datetime

from ecoshare.domain.access import AclBinding, partner_acls
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner, Role

TYPES = ("LocationAvailability", "StoreStatusChanged")


def _agreement(publishers: list[str], subscriber: str, types: list[str]) -> Agreement:
    return Agreement.model_validate(
        {
            "agreement_id": f"a-{subscriber}-{'-'.join(types)}",
            "version": 1,
            "publishers": publishers,
            "subscriber": subscriber,
            "event_types": types,
            "purpose": "p",
            "valid_from": datetime(2020, 1, 1, tzinfo=UTC),
        }
    )


def test_publishers_write_only_their_types_and_subscribers_read_only_their_topics() -> None:
    partners = [
        Partner(partner_id="shops", name="S", roles=frozenset({Role.PUBLISHER})),
        Partner(partner_id="postnl", name="P", roles=frozenset({Role.PUBLISHER})),
        Partner(partner_id="carrier", name="C", roles=frozenset({Role.SUBSCRIBER})),
        Partner(partner_id="gone", name="G", roles=frozenset({Role.SUBSCRIBER}), enabled=False),
    ]
    agreements = [
        _agreement(["shops"], "carrier", ["StoreStatusChanged"]),
        _agreement(["*"], "gone", ["LocationAvailability"]),
    ]
    acls = partner_acls(partners, agreements, TYPES, ingress_topic="x.ingress.{event_type}")
    writes = {(a.principal, a.resource_name) for a in acls if a.operation == "write"}
    assert writes == {
        ("User:shops", "x.ingress.StoreStatusChanged"),
        ("User:postnl", "x.ingress.LocationAvailability"),
        ("User:shops", "x.ingress.LocationAvailability"),
    }
    reads = [a for a in acls if a.operation == "read"]
    assert AclBinding("User:carrier", "topic", "deliver.carrier.", "prefixed", "read") in reads
    assert AclBinding("User:carrier", "group", "carrier.", "prefixed", "read") in reads
    assert AclBinding("User:carrier", "group", "carrier.", "prefixed", "describe") in acls
    assert not [a for a in acls if a.principal == "User:gone"]
    assert not [a for a in acls if a.principal != "User:carrier" and a.operation == "read"]
    assert acls[0].kafka_acls_arguments()[:3] == ["--add", "--allow-principal", acls[0].principal]
