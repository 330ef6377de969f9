"""Where each unit of one backed-up file lives: the map a backup stores per file (`maps/<backup id>/<n>`).

Its own module because both sides need it: `blocks` writes maps and `repository` reads them back, and
`blocks` already builds on `repository`; with the map here neither imports the other in a circle.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass

import numpy as np

__all__ = ["DIGEST_BYTES", "UnitMap"]

DIGEST_BYTES = 16  # a unit is named by the first 16 bytes of its SHA-256


@dataclass
class UnitMap:
    """Where each unit of one file lives: its digest, its block (an index into `blocks`), offset, length."""

    blocks: list[str]
    digest: np.ndarray  # (n, 16) uint8
    block: np.ndarray  # (n,) int32
    offset: np.ndarray  # (n,) uint32, within the block's plaintext
    length: np.ndarray  # (n,) uint32

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        np.savez(
            out,
            blocks=np.array(self.blocks, dtype="S64"),
            digest=self.digest,
            block=self.block,
            offset=self.offset,
            length=self.length,
        )
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> UnitMap:
        """Read a map back; its arrays must be stored uncompressed (as `to_bytes` writes them), so none can
        expand past the bytes already read and bounded by the frame's declared size."""
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(data):
                    raise ValueError(f"map member {info.filename!r} is compressed or larger than the map")
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(
                blocks=[b.decode() for b in z["blocks"].tolist()],
                digest=z["digest"],
                block=z["block"],
                offset=z["offset"],
                length=z["length"],
            )

    def lookup(self) -> dict[bytes, tuple[str, int, int]]:
        """Unit digest -> (block, offset, length), for finding unchanged units in the next backup."""
        blocks = self.blocks
        return {
            d.tobytes(): (blocks[b], int(o), int(n))
            for d, b, o, n in zip(
                self.digest, self.block.tolist(), self.offset.tolist(), self.length.tolist(), strict=True
            )
        }
