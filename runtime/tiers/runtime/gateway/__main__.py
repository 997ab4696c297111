"""`python -m tiers.runtime.gateway`: see `server` for the flags."""

from tiers.runtime.gateway import server

server.main()
