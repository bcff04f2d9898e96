"""The pure domain: the canonical event, keys, lanes, outcomes, errors, clock and ports.

No I/O and no asyncio beyond the declarations of the ports.
"""
