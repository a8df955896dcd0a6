"""Turning a request into a stored original: bounded body reads, multipart, URL import, ingest."""
