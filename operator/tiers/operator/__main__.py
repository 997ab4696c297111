"""`python -m tiers.operator`: the same as `tiers operator`."""

import argparse

from tiers.operator import main

parser = argparse.ArgumentParser(prog="python -m tiers.operator", description=main.__doc__)
main.add_arguments(parser)
main.run_from_arguments(parser.parse_args())
