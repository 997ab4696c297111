"""`python -m tiers.console`: see `server`."""

from __future__ import annotations

from tiers.console import server

if __name__ == "__main__":
    server.main()
