#!/usr/bin/env bash
# Install the sensor-display producer on Raspberry Pi OS as a systemd service:
# a venv under /opt/sensor-display, a system user in the i2c group, settings in
# /etc/sensor-display/producer.env, the unit enabled and started.
# Run from a checkout: sudo deploy/pi/install.sh [--no-start]
set -euo pipefail

PREFIX=${PREFIX:-/opt/sensor-display}
ETC_DIR=${ETC_DIR:-/etc/sensor-display}
UNIT_DIR=${UNIT_DIR:-/etc/systemd/system}
SERVICE_USER=sensor-display
UNIT=sensor-display-producer.service
STATE_DIR=/var/lib/sensor-display
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
START=1

die() {
    echo "install.sh: $*" >&2
    exit 1
}

parse_args() {
    for arg in "$@"; do
        case "$arg" in
            --no-start) START=0 ;;
            -h | --help)
                sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
                exit 0
                ;;
            *) die "unknown option $arg (try --help)" ;;
        esac
    done
}

check_system() {
    [[ $(id -u) -eq 0 ]] || die "run as root: sudo $0"
    command -v systemctl >/dev/null || die "systemd is required"
    command -v python3 >/dev/null || die "python3 is missing: sudo apt install python3"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "Python 3.11 or newer is required (Raspberry Pi OS Bookworm has 3.11)"
    python3 -m venv --help >/dev/null 2>&1 \
        || die "the venv module is missing: sudo apt install python3-venv"
    [[ -f $SRC/producers/__main__.py ]] || die "run me from a sensor-display checkout"
    if [[ ! -e /dev/i2c-1 ]]; then
        echo "note: /dev/i2c-1 is missing; enable I2C: sudo raspi-config nonint do_i2c 0" >&2
    fi
}

create_user() {
    # Raspberry Pi OS has both groups; elsewhere i2c may not exist yet.
    getent group i2c >/dev/null || groupadd --system i2c
    getent group video >/dev/null || groupadd --system video
    if ! id -u "$SERVICE_USER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir "$STATE_DIR" \
            --shell /usr/sbin/nologin --comment "sensor-display producer" "$SERVICE_USER"
    fi
    usermod --append --groups i2c,video "$SERVICE_USER"
}

install_app() {
    install -d -m 0755 "$PREFIX" "$PREFIX/app"
    # Replace the code as a whole so a removed module does not linger.
    rm -rf "$PREFIX/app/shared" "$PREFIX/app/producers" "$PREFIX/app/requirements"
    cp -R "$SRC/shared" "$SRC/producers" "$SRC/requirements" "$PREFIX/app/"
    find "$PREFIX/app" -name __pycache__ -prune -exec rm -rf {} +
    [[ -x $PREFIX/venv/bin/python ]] || python3 -m venv "$PREFIX/venv"
    "$PREFIX/venv/bin/pip" install --quiet --upgrade pip
    "$PREFIX/venv/bin/pip" install --quiet -r "$PREFIX/app/requirements/pi.txt"
}

install_settings() {
    install -d -m 0750 -o "$SERVICE_USER" -g "$SERVICE_USER" "$STATE_DIR"
    install -d -m 0750 -o root -g "$SERVICE_USER" "$ETC_DIR"
    install -m 0640 -o root -g "$SERVICE_USER" "$HERE/producer.env.example" \
        "$ETC_DIR/producer.env.example"
    # Never overwrite the settings someone already edited.
    if [[ ! -e $ETC_DIR/producer.env ]]; then
        install -m 0640 -o root -g "$SERVICE_USER" "$HERE/producer.env.example" \
            "$ETC_DIR/producer.env"
        echo "created $ETC_DIR/producer.env: set REDIS_URL to your server's Redis"
    fi
}

install_unit() {
    sed -e "s|/opt/sensor-display|$PREFIX|g" -e "s|/etc/sensor-display|$ETC_DIR|g" \
        "$HERE/$UNIT" >"$UNIT_DIR/$UNIT"
    chmod 0644 "$UNIT_DIR/$UNIT"
    systemctl daemon-reload
    systemctl enable "$UNIT" >/dev/null
    if [[ $START -eq 1 ]]; then
        systemctl restart "$UNIT"
        echo "started $UNIT; follow it with: journalctl -u $UNIT -f"
    else
        echo "installed $UNIT; start it with: sudo systemctl start $UNIT"
    fi
}

main() {
    parse_args "$@"
    check_system
    create_user
    install_app
    install_settings
    install_unit
    echo "read every sensor once, as the service would:"
    echo "  sudo -u $SERVICE_USER sh -c 'set -a; . $ETC_DIR/producer.env;" \
        "OUTBOX_PATH=$STATE_DIR/outbox.sqlite3; cd $PREFIX/app;" \
        "exec $PREFIX/venv/bin/python -m producers --once'"
}

main "$@"
