"""The SDK's errors moved to ``ecoshare.sdk.errors``; the old module name still works."""

from ecoshare.sdk import errors, exceptions


def test_the_former_exceptions_module_names_the_same_classes() -> None:
    for name in exceptions.__all__:
        assert getattr(exceptions, name) is getattr(errors, name)
    assert set(exceptions.__all__) == {
        name for name in vars(errors) if name.endswith("Error") and name != "EcoshareError"
    }
