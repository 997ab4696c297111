"""The Tiers operator: kopf handlers, one module per kind, over pure reconcile functions.

Run it with `tiers operator` or `python -m tiers.operator`; `main.run()` is the entry point.
"""

__all__: list[str] = []
