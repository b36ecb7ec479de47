"""riskgate actors: one module per actor."""
