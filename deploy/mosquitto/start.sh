#!/bin/sh
# Start Mosquitto for the compose `mqtt` profile: no anonymous access, and a
# password file built at start from the environment, so no password is ever
# written into an image, a committed file or a volume.
#
#   bridge   MQTT_BRIDGE_PASSWORD   python -m producers.mqtt
#   devices  MQTT_DEVICE_PASSWORD   Tasmota, Zigbee2MQTT, ESPHome, Home Assistant
set -eu

: "${MQTT_BRIDGE_PASSWORD:?set MQTT_BRIDGE_PASSWORD (see .env.example)}"
: "${MQTT_DEVICE_PASSWORD:?set MQTT_DEVICE_PASSWORD (see .env.example)}"

umask 077
passwd=/tmp/mosquitto.passwd
mosquitto_passwd -b -c "$passwd" bridge "$MQTT_BRIDGE_PASSWORD"
mosquitto_passwd -b "$passwd" devices "$MQTT_DEVICE_PASSWORD"

conf=/tmp/mosquitto.conf
cat > "$conf" <<CONF
listener 1883
allow_anonymous false
password_file $passwd
# Sessions and queued QoS 1 messages survive a restart of the broker.
persistence true
persistence_location /mosquitto/data/
# The default (1,000 per client) drops messages while the bridge restarts.
max_queued_messages 100000
log_dest stdout
CONF
exec mosquitto -c "$conf"
