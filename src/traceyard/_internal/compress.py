"""Compressing big payloads: zstd, read back whatever codec wrote them.

zstd level 1 compresses prompt-like text about twice as fast as zlib's fastest level and
smaller (bench/writer_ceiling.py); the writer pays it for every payload above the blob
threshold. Reads recognise the codec by its magic bytes, so older zlib payloads still read.
"""

from __future__ import annotations

import threading
import zlib

import zstandard

_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_LEVEL = 1
_local = threading.local()  # zstd contexts are not thread-safe; one per thread


def compress(data: bytes) -> bytes:
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=_LEVEL)
    return compressor.compress(data)


def compress_many(datas: list[bytes]) -> list[bytes]:
    """Compress each of ``datas`` in one call that releases the GIL once for all of them.

    The writer compresses a batch's big payloads together: compressing them one call at a
    time hands the GIL over and back once per payload, and while the app's threads are busy
    each hand-back can wait a whole switch interval (5 ms) for the GIL.
    """
    if len(datas) < 2:
        return [compress(data) for data in datas]
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=_LEVEL)
    inputs: list[bytes | bytearray | memoryview] = list(datas)
    buffers = compressor.multi_compress_to_buffer(inputs)
    return [buffers[i].tobytes() for i in range(len(buffers))]


def decompress(data: bytes) -> bytes:
    if data[:4] == _ZSTD_MAGIC:
        decompressor = getattr(_local, "decompressor", None)
        if decompressor is None:
            decompressor = _local.decompressor = zstandard.ZstdDecompressor()
        return decompressor.decompress(data)
    return zlib.decompress(data)
