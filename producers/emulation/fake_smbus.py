"""A fake smbus2 `SMBus`: the lowest level the real drivers and RPi.bme280 talk to."""

from __future__ import annotations

import errno
import os
from typing import Protocol


class I2cDevice(Protocol):
    """A chip on the fake bus: byte-wide registers, read and written one at a time."""

    def read_register(self, register: int) -> int:
        """The byte at `register`."""

    def write_register(self, register: int, value: int) -> None:
        """Store `value` at `register`, with whatever side effect the chip has."""


def os_error(code: int) -> OSError:
    """The OSError the kernel's i2c-dev gives for `code` (errno), as smbus2 raises it."""
    return OSError(code, os.strerror(code))


class FakeSMBus:
    """Devices by address; `fault` (an OSError) makes every transfer fail while set."""

    def __init__(self, bus: int = 1, devices: dict[int, I2cDevice] | None = None) -> None:
        self.bus = bus
        # Kept, not copied: a test unplugs a chip by removing it from its dict.
        self.devices: dict[int, I2cDevice] = devices if devices is not None else {}
        self.fault: OSError | None = None
        self.closed = False
        self.transfers = 0

    def _device(self, address: int) -> I2cDevice:
        if self.closed:
            raise os_error(errno.EBADF)
        if self.fault is not None:
            raise self.fault
        self.transfers += 1
        try:
            return self.devices[address]
        except KeyError:
            # No ACK from any chip: the i2c-bcm2835 driver reports EREMOTEIO.
            raise os_error(errno.EREMOTEIO) from None

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """One register."""
        return self._device(i2c_addr).read_register(register)

    def write_byte_data(
        self, i2c_addr: int, register: int, value: int, force: bool | None = None
    ) -> None:
        """Write one register."""
        self._device(i2c_addr).write_register(register, value & 0xFF)

    def read_word_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        """Two registers, little-endian, as SMBus word reads are."""
        device = self._device(i2c_addr)
        return device.read_register(register) | device.read_register(register + 1) << 8

    def read_i2c_block_data(
        self, i2c_addr: int, register: int, length: int, force: bool | None = None
    ) -> list[int]:
        """`length` registers from `register` on, auto-incrementing like the chip."""
        device = self._device(i2c_addr)
        return [device.read_register(register + i) for i in range(length)]

    def write_i2c_block_data(
        self, i2c_addr: int, register: int, data: list[int], force: bool | None = None
    ) -> None:
        """Write consecutive registers."""
        device = self._device(i2c_addr)
        for i, value in enumerate(data):
            device.write_register(register + i, value & 0xFF)

    def close(self) -> None:
        """Like smbus2: later transfers fail with EBADF."""
        self.closed = True

    def __enter__(self) -> FakeSMBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
