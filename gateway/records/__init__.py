"""The records every layer shares: the ground floor, below the proxy, feedback, store and exporters.

    interaction.py  one recorded request (`Interaction`), its columns and statuses
    feedback.py     one feedback event (`Feedback`), its columns, and `latest()` over several
    tags.py         `key=value` tags and the bounds on tags and ids
    headers.py      the contract's header names (`Flywheel-Interaction-Id`, ...)

Modules here import only the standard library and `gateway.errors`, never another package of
the gateway: everything above may import them, so nothing here may import what is above.
"""
