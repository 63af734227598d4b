"""``python -m clients.cli``: the same as the ``chatd-cli`` console script."""

from clients.cli.main import main

raise SystemExit(main())
