"""Zip bombs written by hand: one deflated block reused for every entry, so a 9 GB
expansion takes milliseconds to build (zipfile would compress 9 GB of zeros)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

MIB = 1024 * 1024


def zeros_bomb(path: Path, *, entries: int = 9000, entry_bytes: int = MIB,
               top: str = "bag") -> Path:
    """``entries`` deflated entries of ``entry_bytes`` zeros each, plus a bagit.txt."""
    raw = bytes(entry_bytes)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(raw) + compressor.flush()
    crc = zlib.crc32(raw)
    bagit = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
    members = [(f"{top}/bagit.txt".encode(), 0, zlib.crc32(bagit), bagit, len(bagit))]
    members += [(f"{top}/data/zeros-{n:05d}.bin".encode(), 8, crc, block, entry_bytes)
                for n in range(entries)]
    local, central = bytearray(), bytearray()
    for name, method, checksum, data, size in members:
        offset = len(local)
        local += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, checksum,
                             len(data), size, len(name), 0) + name + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21,
                               checksum, len(data), size, len(name), 0, 0, 0, 0, 0,
                               offset) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(members), len(members),
                      len(central), len(local), 0)
    path.write_bytes(bytes(local + central + end))
    return path
