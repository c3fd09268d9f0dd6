"""`python -m dataops.cli`: the `dataops` command."""

from __future__ import annotations

from dataops.cli import main

main()
