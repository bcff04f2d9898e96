"""The HTTP API (ASGI, OpenAPI documented) and the dashboard it serves."""
