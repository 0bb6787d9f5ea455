"""``python -m assocmem``: the same as the ``assocmem`` command."""

from assocmem.cli import main

raise SystemExit(main())
