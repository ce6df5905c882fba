"""The MQTT bridge: readings in from home-automation firmwares, out to Home Assistant."""
