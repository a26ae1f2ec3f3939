"""Images: SHA-256 of the file's bytes, PDQ perceptual hashes (Meta's PDQ, through the `pdqhash`
package) of the decoded picture in its 8 orientations, and an index that finds every list hash
within a Hamming distance of a query in a few milliseconds among a million.

Images are only decoded (by Pillow, limited to common formats and a pixel budget), never kept: the
hashes are all that is stored.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

PDQ_BITS = 256
WORDS = PDQ_BITS // 64
# pdqhash.compute_dihedral's order: the original, rotations, and flips.
ORIENTATIONS = (
    "original",
    "rot90",
    "rot180",
    "rot270",
    "flip_v",
    "flip_h",
    "rot90_flip_v",
    "rot90_flip_h",
)
FORMATS = ("JPEG", "PNG", "GIF", "WEBP")  # what diaspora* accepts as photo uploads
REDUCED_SIDE = 512  # the longest side hashed, as Meta's reference PDQ hasher downsamples


class ImageError(ValueError):
    """The bytes are not an image podmod hashes (unknown format, too large, corrupt)."""


@dataclass(frozen=True)
class ImageHashes:
    """What podmod keeps of a photo: its SHA-256, its 8 PDQ hashes ((8, 4) uint64, big-endian
    words of the hex form) and the PDQ quality (0-100)."""

    sha256: str
    pdq: np.ndarray
    quality: int

    @property
    def pdq_hex(self) -> str:
        """The hash of the image as it is (not turned), as lists write PDQ hashes."""
        return pdq_to_hex(self.pdq[0])

    def pdq_bytes(self) -> bytes:
        return self.pdq.astype(">u8").tobytes()

    @classmethod
    def from_stored(cls, sha256: str, pdq: bytes | None, quality: int | None) -> ImageHashes:
        words = (
            np.frombuffer(pdq, dtype=">u8").astype(np.uint64).reshape(-1, WORDS)
            if pdq
            else np.zeros((0, WORDS), dtype=np.uint64)
        )
        return cls(sha256, words, quality or 0)


def bits_to_words(bits: np.ndarray) -> np.ndarray:
    """pdqhash's 256 bits (most significant first, as the hex form reads) as 4 uint64 words."""
    packed = np.packbits(np.asarray(bits, dtype=np.uint8))
    return np.frombuffer(packed.tobytes(), dtype=">u8").astype(np.uint64)


def pdq_to_hex(words: np.ndarray) -> str:
    return np.asarray(words, dtype=np.uint64).astype(">u8").tobytes().hex()


def hex_to_words(values: Sequence[str]) -> np.ndarray:
    """64-hex-digit PDQ hashes as an (n, 4) uint64 array, in one pass."""
    if not values:
        return np.zeros((0, WORDS), dtype=np.uint64)
    raw = bytes.fromhex("".join(values))
    return np.frombuffer(raw, dtype=">u8").astype(np.uint64).reshape(-1, WORDS)


def _reduced(image: Image.Image) -> Image.Image:
    """The picture at about REDUCED_SIDE pixels a side, as Meta's reference hasher does before its
    Jarosz filters: hashed whole, a 49-megapixel PNG cost 1.3 GB of float buffers. A JPEG is scaled
    while it is decoded (its DCT allows 1/2 to 1/8); other formats are decoded whole (Pillow keeps
    4 bytes a pixel) and box-averaged by an integer factor in place. PDQ reads luminance only, so a
    mode other than L or RGB becomes L first (1 byte a pixel more, where RGB would be 4): the same
    Rec. 601 weights as PDQ's, and alpha ignored as the original's conversion to RGB did."""
    if image.format == "JPEG":
        image.draft("RGB", (REDUCED_SIDE, REDUCED_SIDE))
    factor = max(image.size) // REDUCED_SIDE
    if factor < 2:
        return image
    if image.mode not in ("L", "RGB"):
        image = image.convert("L")
    return image.reduce(factor)


def decode(data: bytes, *, max_pixels: int) -> np.ndarray:
    """The image as an RGB (height, width, 3) uint8 array; ImageError when it is not one."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=FORMATS) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageError(
                        f"the image has {width}x{height} pixels, more than {max_pixels}"
                    )
                image.seek(0)  # the first frame of an animation
                return np.asarray(_reduced(image).convert("RGB"))
    except ImageError:
        raise
    except (
        OSError,
        ValueError,
        SyntaxError,
        Image.DecompressionBombWarning,
        Image.DecompressionBombError,
    ) as error:
        raise ImageError(f"not an image podmod can read ({type(error).__name__})") from None


def hash_image(data: bytes, *, max_pixels: int = 50_000_000) -> ImageHashes:
    """SHA-256 of the bytes and the PDQ hashes of the picture (8 orientations)."""
    import pdqhash

    digest = hashlib.sha256(data).hexdigest()
    pixels = decode(data, max_pixels=max_pixels)
    if min(pixels.shape[:2]) < 2:
        raise ImageError("the image is too small to hash")
    vectors, quality = pdqhash.compute_dihedral(np.ascontiguousarray(pixels))
    words = np.stack([bits_to_words(vector) for vector in vectors])
    return ImageHashes(digest, words, int(quality))


class PdqIndex:
    """List PDQ hashes, column by column (4 arrays of uint64), searched by XOR and popcount.

    A hash within distance d <= 128 of the query differs in at most d bits in its first two words,
    so those two words prune the million rows down to a handful before the last two are counted.
    """

    def __init__(self, words: np.ndarray) -> None:
        words = np.asarray(words, dtype=np.uint64).reshape(-1, WORDS)
        self.size = len(words)
        self.columns = [np.ascontiguousarray(words[:, n]) for n in range(WORDS)]

    def __len__(self) -> int:
        return self.size

    def row(self, row: int) -> np.ndarray:
        """The hash at `row` as 4 words."""
        return np.array([column[row] for column in self.columns], dtype=np.uint64)

    def nbytes(self) -> int:
        return sum(column.nbytes for column in self.columns)

    def search(self, query: np.ndarray, max_distance: int) -> tuple[np.ndarray, np.ndarray]:
        """(row numbers, distances) of every hash within `max_distance` of `query` (4 words)."""
        if self.size == 0:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.uint16)
        q = np.asarray(query, dtype=np.uint64)
        first = np.bitwise_count(self.columns[0] ^ q[0])
        first += np.bitwise_count(self.columns[1] ^ q[1])  # at most 128: fits in uint8
        if max_distance < 128:
            rows = np.flatnonzero(first <= max_distance)
            distance = first[rows].astype(np.uint16)
        else:
            rows = np.arange(self.size)
            distance = first.astype(np.uint16)
        for n in (2, 3):
            distance += np.bitwise_count(self.columns[n][rows] ^ q[n])
        keep = distance <= max_distance
        return rows[keep], distance[keep]

    def search_any(self, queries: np.ndarray, max_distance: int) -> dict[int, tuple[int, int]]:
        """For several queries (the orientations of one image): {row: (distance, query number)},
        the nearest query per row."""
        best: dict[int, tuple[int, int]] = {}
        for number, query in enumerate(np.asarray(queries).reshape(-1, WORDS)):
            rows, distances = self.search(query, max_distance)
            for row, distance in zip(rows.tolist(), distances.tolist(), strict=True):
                if row not in best or distance < best[row][0]:
                    best[row] = (distance, number)
        return best
