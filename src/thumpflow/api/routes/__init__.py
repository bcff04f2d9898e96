"""The API's routers, one module per concern; `thumpflow.api.app` mounts them."""
