"""What producers and the web side share: the reading, settings, bus, store."""
