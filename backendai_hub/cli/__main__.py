"""`python -m backendai_hub.cli`: the admin CLI (same as the `backendai-hub` command)."""

import sys

from .main import main

sys.exit(main())
