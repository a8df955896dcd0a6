"""The handlers of every endpoint: /v1 routes, the viewer and the pages people and tools fetch."""
