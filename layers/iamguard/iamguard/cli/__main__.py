"""`python -m iamguard.cli` — the same as the `iamguard` command."""

import sys

from iamguard.cli import main

sys.exit(main())
