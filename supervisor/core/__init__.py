"""The pure core: messages, reason codes, order validation, the checks, one
evaluation, the gate's state and loss periods.

No I/O, no threads, no pykka, no httpx, no sqlite3 (a test walks the imports).
Everything here is a function of its arguments, driven by an injected time.
"""
