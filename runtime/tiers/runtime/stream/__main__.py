"""`python -m tiers.runtime.stream`: see `cli`."""

from tiers.runtime.stream import cli

cli.main()
