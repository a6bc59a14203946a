"""qnetstack: the network layer."""
