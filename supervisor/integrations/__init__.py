"""Guarded exchange clients: no order reaches an exchange without a gate decision."""
