"""qnetstack: the link layer."""
