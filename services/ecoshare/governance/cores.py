"""Which governance core runs: the compiled extension or the pure-Python reference.

The per-event work of the engine (strict scanning, signature checks, the duplicate
window) exists twice: in Python (:mod:`ecoshare.codec.layout`,
:mod:`ecoshare.domain.identity`, :mod:`ecoshare.governance.dedup`), the reference, and
in the Rust extension ``ecoshare._native`` that ``pip install`` builds from
``native/``. The test suite holds the two equal. Where the extension is not built
(a source checkout run without installing), the Python core runs.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Literal

from ecoshare.errors import EcoshareError

log = logging.getLogger(__name__)

EngineChoice = Literal["auto", "native", "python"]
ENGINE_CHOICES: tuple[EngineChoice, ...] = ("auto", "native", "python")


class NativeCoreMissingError(EcoshareError):
    """The compiled core was required (``ECOSHARE_ENGINE=native``) but is not built."""


_loaded: list[ModuleType | None] = []


def native_core() -> ModuleType | None:
    """The compiled extension module, or None when it is not built (checked once)."""
    if not _loaded:
        try:
            _loaded.append(importlib.import_module("ecoshare._native"))
        except ImportError:
            _loaded.append(None)
    return _loaded[0]


def select_core(choice: str) -> ModuleType | None:
    """The native module to use for ``choice`` (None: the Python core); logs which runs.

    ``auto`` takes the native core when built; ``native`` requires it; ``python``
    forces the reference.
    """
    if choice not in ENGINE_CHOICES:
        raise ValueError(f"engine must be one of {', '.join(ENGINE_CHOICES)}, not {choice!r}")
    module = None if choice == "python" else native_core()
    if module is None and choice == "native":
        raise NativeCoreMissingError(
            "ECOSHARE_ENGINE=native but the compiled core ecoshare._native is not built; "
            "install the package (pip install -e .) with a Rust toolchain present"
        )
    if module is not None:
        log.info("governance engine: native core (ecoshare._native %s)", module.__version__)
    elif choice == "python":
        log.info("governance engine: python core (forced by engine=python)")
    else:
        log.info("governance engine: python core (the native extension is not built)")
    return module
