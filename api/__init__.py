"""The /v1 API, the viewer page, and the ``imgpro`` command that composes the roles."""
