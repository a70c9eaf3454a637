"""Code every Attain service shares: the contract's events and topics, encoding, infrastructure factories."""
