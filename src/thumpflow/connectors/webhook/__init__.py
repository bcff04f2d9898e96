"""Alert webhooks: one POST of a JSON notice per alert transition."""

from thumpflow.connectors.webhook.sink import WebhookSink
from thumpflow.connectors.webhook.spec import HeaderSecret, WebhookSpec

__all__ = ["HeaderSecret", "WebhookSink", "WebhookSpec"]
