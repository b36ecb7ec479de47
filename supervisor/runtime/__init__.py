"""The running system: actor supervision (`ActorSupervisor`) and the wiring
of the actors (`Runtime`)."""
