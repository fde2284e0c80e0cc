"""The compiled audit encoder writes exactly the bytes of ``json.dumps``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecoshare.governance.cores import select_core

native = select_core("native")
assert native is not None

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.text(alphabet=st.characters(max_codepoint=0x7F)),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=8), inner, max_size=5),
    ),
    max_leaves=30,
)


@settings(max_examples=500)
@given(_values)
def test_native_audit_json_is_json_dumps(value: Any) -> None:
    expected = json.dumps(value, separators=(",", ":")).encode()
    assert native.audit_json(value) == expected


def test_values_json_would_write_otherwise_are_refused_for_the_fallback() -> None:
    with pytest.raises(TypeError, match="audit object keys must be strings"):
        native.audit_json({1: "one"})
    with pytest.raises(TypeError, match="cannot encode set"):
        native.audit_json({"ids": {"a"}})
