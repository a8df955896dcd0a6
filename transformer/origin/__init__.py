"""The CDN transform origin: the ASGI app, its transform pool, HTTP cache rules and metrics.

    request.py     URL -> CdnRequest (pure)           errors.py     every CDN error, named
    app.py         CdnOrigin: lookup, transform       responses.py  answers as ASGI messages
    pool.py        bounded transform threads          http_cache.py ETag / 304 (pure)
    config.py      OriginConfig (built by the host)   metrics.py    Prometheus, tallied
    error_body.py  the reference's error JSON, shared with the API
"""
