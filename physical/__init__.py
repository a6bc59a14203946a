"""qnetstack: the physical layer."""
