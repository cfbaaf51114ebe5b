"""`python -m backendai_hub.service`: run the REST service (the hub does this)."""

from .server import main

main()
