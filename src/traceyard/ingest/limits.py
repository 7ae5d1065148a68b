"""Bounded request bodies: a cap on the bytes received AND on the bytes they inflate to.

A 3.5 MB gzip body can inflate to gigabytes (a "gzip bomb"); decompressing it whole before
checking would be the very outage the cap exists to prevent. So decompression streams through
``zlib.decompressobj`` with ``max_length`` and stops one byte past the cap.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable

#: Langfuse's own ingestion limit (docs: "a batch can be at most 3.5 MB").
DEFAULT_MAX_BODY_BYTES = 3_500_000

_CHUNK = 64 * 1024


class BodyTooLargeError(Exception):
    """The body (raw or decompressed) exceeds the cap; answered with 413 naming the limit."""

    def __init__(self, limit: int, *, decompressed: bool) -> None:
        self.limit = limit
        self.decompressed = decompressed
        what = "decompressed request body" if decompressed else "request body"
        super().__init__(
            f"{what} exceeds the limit of {limit} bytes ({limit / 1_000_000:g} MB); "
            "send smaller batches"
        )


class BadEncodingError(Exception):
    """An unsupported or corrupt ``Content-Encoding``; answered with 400/415."""

    def __init__(self, message: str, *, unsupported: bool = False) -> None:
        self.unsupported = unsupported
        super().__init__(message)


async def read_body(
    chunks: AsyncIterable[bytes],
    *,
    content_length: str | None,
    content_encoding: str | None,
    limit: int = DEFAULT_MAX_BODY_BYTES,
) -> bytes:
    """Read a request body of at most ``limit`` bytes, decoded, inflating to at most ``limit``.

    A declared ``Content-Length`` above the cap is refused before reading anything.
    """
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise BadEncodingError(f"invalid Content-Length {content_length!r}") from None
        if declared > limit:
            raise BodyTooLargeError(limit, decompressed=False)
    received = bytearray()
    async for chunk in chunks:
        received += chunk
        if len(received) > limit:
            raise BodyTooLargeError(limit, decompressed=False)
    return decode_content(bytes(received), content_encoding, limit)


def decode_content(data: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate, identity), never producing more than ``limit``."""
    encodings = [
        part.strip().lower() for part in (content_encoding or "").split(",") if part.strip()
    ]
    # Encodings are listed in the order they were applied: undo them last first.
    for encoding in reversed(encodings):
        if encoding in ("identity", ""):
            continue
        if encoding in ("gzip", "x-gzip"):
            data = _inflate(data, zlib.MAX_WBITS | 16, limit, "gzip")
        elif encoding == "deflate":
            data = _inflate(data, zlib.MAX_WBITS, limit, "deflate")
        else:
            raise BadEncodingError(
                f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none",
                unsupported=True,
            )
    return data


def _inflate(data: bytes, wbits: int, limit: int, name: str) -> bytes:
    """Stream-decompress, giving up as soon as the output would pass ``limit``."""
    inflater = zlib.decompressobj(wbits)
    out = bytearray()
    pending = data
    try:
        while pending:
            out += inflater.decompress(pending, limit + 1 - len(out))
            if len(out) > limit:
                raise BodyTooLargeError(limit, decompressed=True)
            pending = inflater.unconsumed_tail
            if inflater.eof:
                break
            if not pending and not inflater.eof:
                out += inflater.flush(limit + 1 - len(out))
                if len(out) > limit:
                    raise BodyTooLargeError(limit, decompressed=True)
        if not inflater.eof:
            raise BadEncodingError(f"truncated {name} body")
    except zlib.error as exc:
        raise BadEncodingError(f"corrupt {name} body: {exc}") from None
    return bytes(out)
