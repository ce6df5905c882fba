"""CPU temperature from the thermal zone (or vcgencmd) and the Pi's throttling flags."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

from producers.drivers.base import Driver, SensorError
from shared.settings import Settings

logger = logging.getLogger(__name__)

# Thermal zone `type` names that mean "the CPU", best first (Pi 4/5, older
# Pi kernels, other ARM boards, Intel).
CPU_ZONE_TYPES = ("cpu-thermal", "cpu_thermal", "cpu0-thermal", "soc-thermal", "x86_pkg_temp")
# get_throttled bit -> metric; 0-3 are "now", 16-19 the same "since boot".
THROTTLE_BITS = {
    0: "undervoltage_now_bool",
    1: "freq_capped_now_bool",
    2: "throttled_now_bool",
    3: "soft_temp_limit_now_bool",
    16: "undervoltage_boot_bool",
    17: "freq_capped_boot_bool",
    18: "throttled_boot_bool",
    19: "soft_temp_limit_boot_bool",
}
TEMP_LIMITS = (-40.0, 125.0)  # silicon junction range; anything else is a bad read
VCGENCMD_TIMEOUT = 2.0
_THROTTLED_RE = re.compile(r"throttled=(0x[0-9a-fA-F]+)")
_TEMP_RE = re.compile(r"temp=(-?\d+(?:\.\d+)?)'C")


def parse_throttled(text: str) -> dict[str, float]:
    """`throttled=0x50005` -> one 0.0/1.0 metric per flag; ValueError if malformed."""
    match = _THROTTLED_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"expected throttled=0x..., got {text.strip()[:40]!r}")
    flags = int(match.group(1), 16)
    return {metric: float(flags >> bit & 1) for bit, metric in THROTTLE_BITS.items()}


def parse_measure_temp(text: str) -> float:
    """`temp=47.2'C` -> 47.2; ValueError if malformed."""
    match = _TEMP_RE.fullmatch(text.strip())
    if not match:
        raise ValueError(f"expected temp=NN.N'C, got {text.strip()[:40]!r}")
    return float(match.group(1))


def parse_millidegrees(text: str) -> float:
    """A sysfs `temp` file (`47236`) -> °C; ValueError if empty or not a number."""
    if not text.strip():
        raise ValueError("empty read")
    return int(text) / 1000.0


def find_cpu_zone(sysfs_root: Path) -> Path | None:
    """The thermal zone directory whose `type` is a CPU's, by CPU_ZONE_TYPES order."""
    found: dict[str, Path] = {}
    for zone in sorted((sysfs_root / "class" / "thermal").glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
        except OSError:
            continue  # a zone going away while we look is simply not a candidate
        found.setdefault(kind, zone)
    return next((found[kind] for kind in CPU_ZONE_TYPES if kind in found), None)


def run_vcgencmd(command: str, *args: str, timeout: float = VCGENCMD_TIMEOUT) -> str:
    """Run vcgencmd; SensorError with one sentence if it is missing, hangs or fails."""
    what = " ".join(["vcgencmd", *args])
    try:
        done = subprocess.run(
            [command, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise SensorError(f"{what}: vcgencmd not found (install libraspberrypi-bin)") from None
    except subprocess.TimeoutExpired:
        raise SensorError(f"{what} did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise SensorError(f"{what} could not run: {exc.strerror}") from None
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip()).splitlines()
        reason = said[0] if said else "no output"
        # /dev/vchiq belongs to the video group; without it the firmware is unreachable.
        hint = " (add the user to the video group)" if "VCHI" in reason else ""
        raise SensorError(f"{what} failed (exit {done.returncode}): {reason}{hint}")
    return done.stdout


class PiCpuDriver(Driver):
    """cpu_temperature_c from sysfs (vcgencmd as fallback), plus throttling flags."""

    name = "pi_cpu"

    def __init__(
        self, sysfs_root: Path, vcgencmd: str = "vcgencmd", timeout: float = VCGENCMD_TIMEOUT
    ) -> None:
        self.sysfs_root = sysfs_root
        self._vcgencmd_name = vcgencmd
        self._timeout = timeout
        self._zone: Path | None = None
        self._vcgencmd: str | None = None
        self._throttle_error: str | None = None  # logged once per failure streak
        self._probed = False

    @classmethod
    def from_settings(cls, settings: Settings) -> PiCpuDriver:
        """Thermal zones under SYSFS_ROOT, vcgencmd from PATH."""
        return cls(settings.sysfs_root)

    def probe(self) -> None:
        """Find the CPU thermal zone and vcgencmd; SensorError if neither is there."""
        self._zone = find_cpu_zone(self.sysfs_root)
        self._vcgencmd = shutil.which(self._vcgencmd_name)
        thermal = self.sysfs_root / "class" / "thermal"
        if self._zone is None and self._vcgencmd is None:
            raise SensorError(
                f"no CPU thermal zone under {thermal} and vcgencmd not found: not a Raspberry Pi?"
            )
        if self._vcgencmd is None:
            logger.info(
                "vcgencmd not found: throttling metrics off, temperature from %s", self._zone
            )
        else:
            logger.info("CPU temperature from %s, throttling from %s", self._zone, self._vcgencmd)
        self._probed = True

    def read(self) -> dict[str, float]:
        """cpu_temperature_c, and the throttling flags when vcgencmd answers."""
        if not self._probed:
            self.probe()
        values = {"cpu_temperature_c": self._temperature()}
        if self._vcgencmd is not None:
            values.update(self._throttling())
        return values

    def _temperature(self) -> float:
        """From the zone, else vcgencmd; SensorError if neither gives a sane value."""
        errors: list[str] = []
        for source in (self._zone_temperature, self._vcgencmd_temperature):
            try:
                celsius = source()
            except SensorError as exc:
                errors.append(str(exc))
                continue
            if celsius is None:  # no vcgencmd on this host
                continue
            if TEMP_LIMITS[0] <= celsius <= TEMP_LIMITS[1]:
                return celsius
            errors.append(f"CPU temperature {celsius:.1f} °C is impossible, dropped")
            logger.warning("%s", errors[-1])
        raise SensorError("; ".join(errors) or "no CPU temperature source")

    def _zone_temperature(self) -> float:
        """°C from the thermal zone; a zone that vanished is looked up again next time."""
        if self._zone is None:
            self._zone = find_cpu_zone(self.sysfs_root)
            if self._zone is None:
                raise SensorError(f"no CPU thermal zone under {self.sysfs_root}/class/thermal")
        path = self._zone / "temp"
        try:
            return parse_millidegrees(path.read_text())
        except FileNotFoundError:
            self._zone = None
            raise SensorError(f"{path} vanished while being read") from None
        except OSError as exc:
            raise SensorError(f"cannot read {path}: {exc.strerror}") from None
        except ValueError:
            raise SensorError(f"{path} gave an empty or garbled read") from None

    def _vcgencmd_temperature(self) -> float | None:
        """°C from `vcgencmd measure_temp`, None without vcgencmd."""
        if self._vcgencmd is None:
            return None
        text = run_vcgencmd(self._vcgencmd, "measure_temp", timeout=self._timeout)
        try:
            return parse_measure_temp(text)
        except ValueError as exc:
            raise SensorError(f"vcgencmd measure_temp: {exc}") from None

    def _throttling(self) -> dict[str, float]:
        """The get_throttled flags, or none (with one log line) while vcgencmd fails."""
        try:
            text = run_vcgencmd(
                self._vcgencmd or "vcgencmd", "get_throttled", timeout=self._timeout
            )
            flags = parse_throttled(text)
        except (SensorError, ValueError) as exc:
            if str(exc) != self._throttle_error:
                logger.warning("throttling metrics skipped: %s", exc)
            self._throttle_error = str(exc)
            return {}
        if self._throttle_error is not None:
            logger.info("vcgencmd get_throttled works again")
            self._throttle_error = None
        return flags
