"""qnetstack: the application layer."""
