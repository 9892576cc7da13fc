"""Webhook notifications: delivering the events the registry records in its outbox."""
