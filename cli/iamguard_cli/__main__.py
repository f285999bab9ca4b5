"""`python -m iamguard_cli` — the same as the `iamguard` command."""

import sys

from iamguard_cli.main import main

sys.exit(main())
