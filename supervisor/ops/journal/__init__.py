"""The decision journal: every decision on disk with its inputs, and the events
that explain them, written off the decision path (see `actor`, `store`)."""
