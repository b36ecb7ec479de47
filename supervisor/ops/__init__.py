"""What operators see and steer: health events now; the journal, HTTP API,
metrics, dashboard and alerts join here. Ops code reads through the facade or
receives events by tell; it never sits on the decision path.
"""
