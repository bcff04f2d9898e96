"""Durable store adapters implementing `thumpflow.core.ports.Store`."""
