"""One stored object (a block or a manifest): compressed, optionally encrypted, always self-checking.

Layout: `RSB1` | codec (1 byte) | encrypted (1 byte) | 2 reserved | checksum (32) | [nonce (12)] | body.
Without a key, the checksum is the SHA-256 of the body as stored (compressed: hashing it is cheaper than
hashing the plaintext) and catches any altered or truncated byte before anything is decompressed. With a
key the body is AES-256-GCM over the compressed bytes, with the header and the object's name as
associated data: a flipped bit anywhere, a truncated file or a block moved to another name fails
authentication, and the checksum field is zero (the tag does its work).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
import threading
import zlib
from typing import Literal

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ragstore.backup.errors import BackupDamaged

__all__ = ["CODECS", "Codec", "FrameCodec"]

Codec = Literal["zstd", "gzip", "none"]
CODECS: dict[str, int] = {"none": 0, "zstd": 1, "gzip": 2}
MAGIC = b"RSB1"
HEADER = struct.Struct(">4sBB2x32s")
NONCE_BYTES = 12


class FrameCodec:
    """Encodes and decodes frames with one repository's compression and key; safe to share across threads."""

    def __init__(self, codec: Codec = "zstd", level: int = 3, key: bytes | None = None) -> None:
        self.codec = codec
        self.level = level
        self.key = key
        self._aead = AESGCM(key) if key is not None else None
        self._local = threading.local()  # a zstd context per thread: making one costs more than a small block

    def digest(self, data: bytes | memoryview) -> bytes:
        """A name derived from content: SHA-256, or HMAC-SHA-256 under the key (names then reveal nothing)."""
        if self.key is not None:
            return hmac.new(self.key, data, hashlib.sha256).digest()
        return hashlib.sha256(data).digest()

    def encode(self, name: str, data: bytes | memoryview) -> bytes:
        body = self._compress(data)
        if self._aead is None:
            return HEADER.pack(MAGIC, CODECS[self.codec], 0, hashlib.sha256(body).digest()) + body
        header = HEADER.pack(MAGIC, CODECS[self.codec], 1, bytes(32))
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._aead.encrypt(nonce, body, header + name.encode())

    def decode(self, name: str, frame: bytes, *, where: str, max_size: int) -> bytes:
        """The plaintext, or BackupDamaged naming `where` (the backup and the file) and what failed.

        `max_size` is the most the object may hold (from the manifest's declared sizes): decompression stops
        there, so a small forged object cannot expand into all of the server's memory.
        """
        if len(frame) < HEADER.size:
            raise BackupDamaged(f"{where}: {name} is truncated ({len(frame)} bytes)")
        magic, codec_id, encrypted, digest = HEADER.unpack_from(frame)
        if magic != MAGIC:
            raise BackupDamaged(f"{where}: {name} is not a ragstore backup object (bad header)")
        codec = next((c for c, i in CODECS.items() if i == codec_id), None)
        if codec is None:
            raise BackupDamaged(f"{where}: {name} has an unknown compression ({codec_id})")
        header, body = frame[: HEADER.size], frame[HEADER.size :]
        if encrypted:
            if self._aead is None:
                from ragstore.backup.errors import KeyProblem

                raise KeyProblem(f"{where}: {name} is encrypted and BACKUP_ENCRYPTION_KEY is not set")
            nonce, sealed = body[:NONCE_BYTES], body[NONCE_BYTES:]
            try:
                body = self._aead.decrypt(nonce, sealed, header + name.encode())
            except InvalidTag:
                raise BackupDamaged(
                    f"{where}: {name} fails authentication (altered, truncated, or written with another key)"
                ) from None
        elif self._aead is not None:
            raise BackupDamaged(f"{where}: {name} is not encrypted, but this repository is")
        elif not hmac.compare_digest(hashlib.sha256(body).digest(), digest):
            raise BackupDamaged(f"{where}: {name} fails its checksum (altered or truncated)")
        try:
            plain = _decompress(codec, body, max_size)
        except Exception as exc:  # zstd and gzip raise their own types on damaged input
            raise BackupDamaged(f"{where}: {name} cannot be decompressed ({type(exc).__name__}: {exc})") from None
        if plain is None:
            raise BackupDamaged(f"{where}: {name} decompresses past its declared size ({max_size:,} bytes; altered)")
        return plain

    def _compress(self, data: bytes | memoryview) -> bytes:
        if self.codec == "zstd":
            compressor = getattr(self._local, "zstd", None)
            if compressor is None:
                compressor = self._local.zstd = zstandard.ZstdCompressor(level=self.level, write_checksum=True)
            return compressor.compress(data)
        if self.codec == "gzip":
            import gzip

            return gzip.compress(bytes(data), compresslevel=max(1, min(self.level, 9)), mtime=0)
        return bytes(data)


def _decompress(codec: str, body: bytes, limit: int) -> bytes | None:
    """The plaintext, or None when it would pass `limit` bytes (nothing past limit + 1 is ever produced)."""
    if codec == "zstd":
        parts: list[bytes] = []
        total = 0
        with zstandard.ZstdDecompressor().stream_reader(body, read_across_frames=True) as reader:
            while total <= limit:
                piece = reader.read(min(limit + 1 - total, 1 << 20))
                if not piece:
                    break
                parts.append(piece)
                total += len(piece)
        return b"".join(parts) if total <= limit else None
    if codec == "gzip":
        inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        plain = inflate.decompress(body, limit + 1)
        if len(plain) > limit:
            return None
        if not inflate.eof or inflate.unused_data:
            raise ValueError("the gzip stream is truncated or has trailing data")
        return plain
    return body if len(body) <= limit else None
