"""How the service runs: the composed ASGI app per role, uvicorn start-up, the HTTP protocol,
observability."""
