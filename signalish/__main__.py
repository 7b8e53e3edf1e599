"""``python -m signalish``: see :mod:`signalish.cli`."""

from .cli import main

raise SystemExit(main())
