"""The one message a missing extra gives, whichever adapter is imported without it."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require"]


class MissingExtra(ImportError):
    """An adapter was imported without the extra that installs its framework."""


def require(module: str, extra: str) -> ModuleType:
    """Import `module`, or fail naming the pip command that installs it.

    An ImportError subclass, so code that probes for optional support with `except ImportError` still works.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"{module} is not installed: this part of ragstore needs the {extra!r} extra "
            f"(pip install 'ragstore[{extra}]')",
            name=module,
        ) from exc
