"""The HTTP API: FastAPI routes over a `GateService` (the facade), served by uvicorn on its own thread."""
