"""Compiled delivery plans render the same bytes as the Python plans, and compiled
row filters pass the same events.

For generated events and every agreement of the generated state that can be compiled
for the event's schema, the native renderer (``ecoshare._native.Plan`` over the plan's
``render_ops``) and the Python renderer produce identical bytes, for every subset of
consented personal fields. The engine equivalence test then carries the Python plans'
agreement with the reference projection over to the native ones.
"""

from __future__ import annotations

import struct
from itertools import combinations

from hypothesis import event, given, settings
from hypothesis import strategies as st

from ecoshare.governance.cores import select_core
from ecoshare.governance.engine import ADMISSION_FIELDS, WriterSchema
from ecoshare.governance.plan import _rounded_double, compile_plan, row_filter_ops
from tests.strategies import Scenario, governance_scenarios
from tests.unit.governed import WRITER_IDS, encode_event

native = select_core("native")
assert native is not None


@settings(max_examples=200)
@given(governance_scenarios())
def test_native_rendering_equals_python_rendering(scenario: Scenario) -> None:
    schema = scenario.event_schema
    writer = WriterSchema.compile(WRITER_IDS[scenario.event_type], scenario.event_type, schema)
    value = encode_event(scenario.event_type, scenario.record)
    layout = native.Layout(schema, list(ADMISSION_FIELDS))
    offsets, _ = layout.scan_reading(value, 5)
    assert offsets == writer.layout.scan(value, 5)
    rendered = 0
    for agreement in scenario.state.agreements.values():
        if scenario.event_type not in agreement.event_types:
            continue
        try:
            plan = compile_plan(
                writer.layout,
                schema,
                agreement,
                scenario.classification,
                scenario.hash_keys.get(agreement.subscriber, b"k" * 32),
            )
        except ValueError:
            continue  # an agreement the plan compiler refuses is withheld, never rendered
        if plan.row_filter is not None:
            row_filter = layout.row_filter(row_filter_ops(writer.layout, agreement))
            assert row_filter(value, offsets) == plan.row_filter(value, offsets)
            event(f"row filter passes: {plan.row_filter(value, offsets)}")
        compiled = native.Plan(plan.render_ops)
        personal = plan.personal_fields
        for size in range(len(personal) + 1):
            for allowed in map(frozenset, combinations(personal, size)):
                expected = b"\x00\x00\x00\x00\x07" + plan.render(value, offsets, allowed)
                assert compiled.render(b"\x00\x00\x00\x00\x07", value, offsets, allowed) == expected
                rendered += 1
        event(f"transformed fields: {len(plan.fields_transformed) > 0}")
    event(f"rendered: {min(rendered, 3)}")


@settings(max_examples=3000)
@given(
    st.one_of(
        st.floats(),
        st.floats(-180, 180),
        st.integers(-(10**6), 10**6).map(lambda n: n / 1000),  # ties at the last digit
        # Short decimals at every scale: ties and near-ties for most roundings.
        st.builds(lambda n, k: n / 10**k, st.integers(-(10**13), 10**13), st.integers(0, 17)),
    ),
    st.integers(-3, 18),
)
def test_native_double_rounding_equals_python_rounding(value: float, decimals: int) -> None:
    """Generalising a double natively writes exactly what Python's rounding writes
    (ties to even, signed zeros, saturation and non-finite values included)."""
    body = struct.pack("<d", value)
    python = _rounded_double(decimals)
    compiled = native.Plan((("round_double", 0, decimals, python),))
    assert compiled.render(b"", body, (0, 8), frozenset()) == python(body, 0, 8)
