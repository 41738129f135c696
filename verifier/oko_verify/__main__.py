"""``python -m oko_verify BUNDLE``: the same as the ``oko-verify`` command."""

from __future__ import annotations

import sys

from oko_verify.cli import main

sys.exit(main())
