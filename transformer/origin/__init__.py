"""The CDN transform origin: the ASGI app, its transform pool, HTTP cache rules and metrics."""
