"""The ``engagelab-sms`` command line (extra ``[cli]``: typer and rich).

``main()`` is the console script; ``app`` is the typer application (imported lazily, so that importing this
package without the extra installed fails only when the command is actually used, with a clear message).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._app import app

__all__ = ["app", "main"]

INSTALL_HINT = 'the engagelab-sms command needs its extra: pip install "engagelab-sms-async[cli]"'


def main() -> None:
    """Run the ``engagelab-sms`` command (exit code 2 with an install hint when typer or rich is missing)."""
    try:
        import rich  # noqa: F401 - only checking that the extra is installed
        import typer  # noqa: F401
    except ImportError:
        print(f"error: {INSTALL_HINT}", file=sys.stderr)
        raise SystemExit(2) from None
    from ._app import app

    app(prog_name="engagelab-sms")


def __getattr__(name: str) -> object:
    if name == "app":
        from ._app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
