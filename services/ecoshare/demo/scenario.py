"""The PostNL lockdown day: demo and test data for the reference case.

A few thousand PostNL service points, parcel lockers, chain stores and franchise shops
across the Netherlands open in the morning; around midday a lockdown is announced and many
shops close or cut their hours, while parcel lockers fill up. Everything here is pure data
generation: no Kafka, no network, no clock. The day's start is passed in and every
function takes a seed, so the same arguments always produce the same output.

Records are plain dicts shaped like the Avro records ``StoreStatusChanged`` and
``LocationAvailability``: timestamps are epoch milliseconds, enums are their symbol names.

The scenario is built in four modules, re-exported here: :mod:`.reference` (partners,
event types, field lists, the lockdown's timing), :mod:`.locations` (the places),
:mod:`.lockdown_day` (the day's events) and :mod:`.consents` (the owners' consents).
"""

from ecoshare.demo.consents import ScenarioConsents, generate_consents
from ecoshare.demo.locations import Location, generate_locations
from ecoshare.demo.lockdown_day import lockdown_day
from ecoshare.demo.reference import (
    CARRIER_NORTH_ID,
    CARRIER_POSTCODE_REGIONS,
    CARRIER_SOUTH_ID,
    CONSENT_FIELDS,
    CONSENT_PURPOSE,
    CONSENTED_FIELDS,
    CONSUMER_APP_ID,
    FRANCHISE_BRAND,
    FRANCHISE_ID,
    LOCATION_AVAILABILITY,
    LOCATION_AVAILABILITY_FIELDS,
    LOCKDOWN_ANNOUNCED_AFTER,
    LOCKDOWN_LENGTH,
    LOCKDOWN_REASON,
    OPERATOR_ID,
    REFERENCE_DAY_START,
    REFERENCE_LOCATION_COUNT,
    RETAIL_CHAIN_BRAND,
    RETAIL_CHAIN_ID,
    SCENARIO_PARTNERS,
    STOCK_CATEGORIES,
    STORE_STATUS_CHANGED,
    STORE_STATUS_FIELDS,
    ConsentRecordData,
    EventRecord,
    LocationKind,
    ScenarioPartner,
    carrier_for_postcode,
    epoch_millis,
)

__all__ = [
    "CARRIER_NORTH_ID",
    "CARRIER_POSTCODE_REGIONS",
    "CARRIER_SOUTH_ID",
    "CONSENTED_FIELDS",
    "CONSENT_FIELDS",
    "CONSENT_PURPOSE",
    "CONSUMER_APP_ID",
    "FRANCHISE_BRAND",
    "FRANCHISE_ID",
    "LOCATION_AVAILABILITY",
    "LOCATION_AVAILABILITY_FIELDS",
    "LOCKDOWN_ANNOUNCED_AFTER",
    "LOCKDOWN_LENGTH",
    "LOCKDOWN_REASON",
    "OPERATOR_ID",
    "REFERENCE_DAY_START",
    "REFERENCE_LOCATION_COUNT",
    "RETAIL_CHAIN_BRAND",
    "RETAIL_CHAIN_ID",
    "SCENARIO_PARTNERS",
    "STOCK_CATEGORIES",
    "STORE_STATUS_CHANGED",
    "STORE_STATUS_FIELDS",
    "ConsentRecordData",
    "EventRecord",
    "Location",
    "LocationKind",
    "ScenarioConsents",
    "ScenarioPartner",
    "carrier_for_postcode",
    "epoch_millis",
    "generate_consents",
    "generate_locations",
    "lockdown_day",
]
