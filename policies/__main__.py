"""`python -m policies policy validate FILE...` — the policy CLI without the server."""

import sys

from policies.cli import main

sys.exit(main())
