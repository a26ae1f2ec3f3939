"""`podmod bench pdq`: a PDQ lookup among a million list hashes, and the cost of hashing photos (a
1-megapixel JPEG, and photos at the pixel limit in a fresh process). No database."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from podmod.bench.scratch import percentiles


def bench_pdq(*, hashes: int, lookups: int, images: int) -> dict[str, object]:
    """PDQ: a lookup of one hash (and of one photo's 8 orientations) among `hashes` list hashes,
    and hashing a 1-megapixel JPEG (decode, 8 orientations, SHA-256)."""
    import io
    import random

    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    from podmod.matching.images import hash_image
    from podmod.matching.matcher import MatcherBuilder

    rng = random.Random(11)  # noqa: S311 (benchmark data, not a secret)
    started = time.perf_counter()
    builder = MatcherBuilder()
    values = [f"{rng.getrandbits(256):064x}" for _ in range(hashes)]
    for value in values:
        builder.add(1, "bench", "pdq", value, "bench", 1)
    matcher = builder.build()
    build_seconds = time.perf_counter() - started

    def near(value: str, flips: int) -> np.ndarray:
        number = int(value, 16)
        for bit in rng.sample(range(256), flips):
            number ^= 1 << bit
        return np.frombuffer(bytes.fromhex(f"{number:064x}"), dtype=">u8").astype(np.uint64)

    queries = [
        near(values[rng.randrange(hashes)], rng.randrange(0, 40))
        if n % 2
        else np.frombuffer(rng.randbytes(32), dtype=">u8").astype(np.uint64)
        for n in range(lookups)
    ]
    single, found = [], 0
    for query in queries:
        begin = time.perf_counter()
        rows, _ = matcher.pdq.search(query, 31)
        single.append(time.perf_counter() - begin)
        found += len(rows)
    photo = []
    for n in range(0, lookups, 8):
        block = np.stack(queries[n : n + 8])
        begin = time.perf_counter()
        matcher.pdq.search_any(block, 31)
        photo.append(time.perf_counter() - begin)

    image = Image.new("RGB", (1000, 1000), (90, 120, 150))
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x, y = rng.randrange(1000), rng.randrange(1000)
        draw.ellipse(
            [x - 80, y - 60, x + 80, y + 60],
            fill=(rng.randrange(256), rng.randrange(256), rng.randrange(256)),
        )
    out = io.BytesIO()
    image.filter(ImageFilter.GaussianBlur(2)).save(out, "JPEG", quality=90)
    data = out.getvalue()
    hash_image(data)
    hashing = []
    for _ in range(images):
        begin = time.perf_counter()
        hash_image(data)
        hashing.append(time.perf_counter() - begin)
    return {
        "list_hashes": hashes,
        "index_build_seconds": round(build_seconds, 2),
        "index_mib": round(matcher.pdq.nbytes() / 2**20, 1),
        "lookups": lookups,
        "matches_found": found,
        "lookup_one_hash": percentiles(single),
        "lookup_one_photo_8_orientations": percentiles(photo),
        "hash_1_megapixel_jpeg": percentiles(hashing) | {"bytes": len(data)},
        "hash_49_megapixel_png": large_photo_cost("PNG"),
        "hash_49_megapixel_jpeg": large_photo_cost("JPEG"),
    }


_HASH_ONE = """
import re, sys, time
import numpy, pdqhash, PIL.Image, PIL.JpegImagePlugin, PIL.PngImagePlugin
from podmod.matching.images import hash_image
def peak():  # VmHWM: this process's own peak (ru_maxrss carries the parent's over exec)
    with open("/proc/self/status") as status:
        return int(re.search(r"VmHWM:\\s+(\\d+) kB", status.read())[1]) / 1024
data = open(sys.argv[1], "rb").read()
before = peak()
started = time.perf_counter()
hash_image(data)
print(time.perf_counter() - started, peak() - before)
"""


def large_photo_cost(fmt: str, side: int = 7000) -> dict[str, float]:
    """Seconds and memory (MiB the process grew by) to hash one square photo of one colour, `side`
    pixels wide: a file of a few hundred kB at the pixel limit, in a fresh process so the peak is
    its own."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"large.{fmt.lower()}"
        Image.new("RGB", (side, side), (120, 30, 200)).save(path, fmt)
        done = subprocess.run(
            [sys.executable, "-c", _HASH_ONE, str(path)],
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        seconds, mib = (float(value) for value in done.stdout.split())
        return {"seconds": round(seconds, 2), "grew_mib": round(mib), "bytes": path.stat().st_size}
