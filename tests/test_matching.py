"""podmod.matching on its own: phrases, hashtags and links in text, and images (PDQ and SHA-256)
generated here with Pillow and transformed the ways reposts transform them."""

from __future__ import annotations

import hashlib
import io
import unicodedata

import numpy as np
import pdqhash
import pytest
from PIL import Image, ImageDraw, ImageFilter, ImageOps

from podmod.lists.parse import normalise
from podmod.matching import Entry, Matcher
from podmod.matching.images import (
    ImageError,
    PdqIndex,
    bits_to_words,
    hash_image,
    hex_to_words,
    pdq_to_hex,
)
from podmod.matching.text import fold, links


def entry(kind: str, value: str, list_id: int = 1) -> Entry:
    return Entry(list_id, f"list{list_id}", kind, normalise(kind, value), "placeholder", 1)


def matched(matcher: Matcher, text: str | None, **extra) -> list[str]:
    return sorted(f"{h.entry.kind}:{h.entry.value}" for h in matcher.match_text(text, **extra))


# ---------------------------------------------------------------------------------------------
# Phrases


def test_a_phrase_matches_on_word_boundaries_never_inside_a_longer_word():
    matcher = Matcher.build([entry("phrase", "spam"), entry("phrase", "buy now")])

    assert matched(matcher, "this is spam!") == ["phrase:spam"]
    assert matched(matcher, "(spam) and more") == ["phrase:spam"]
    assert matched(matcher, "spam") == ["phrase:spam"]
    assert matched(matcher, "a spammer writes antispam and spam_bot") == []
    assert matched(matcher, "please BUY   NOW.") == ["phrase:buy now"]
    assert matched(matcher, "buy nowhere") == []


def test_phrases_ignore_case_accents_and_width():
    matcher = Matcher.build([entry("phrase", "Café Crème")])
    decomposed = unicodedata.normalize("NFD", "café crème")

    for text in ("CAFE CREME", "cafe creme", "ｃａｆé ｃｒèｍｅ", decomposed, "Cafè Crême?"):
        assert matched(matcher, f"I had a {text} today") == ["phrase:café crème"], text


def test_an_entry_written_without_accents_matches_text_with_them():
    matcher = Matcher.build([entry("phrase", "naive placeholder")])

    assert matched(matcher, "A NAÏVE placeholder") == ["phrase:naive placeholder"]


def test_many_phrases_are_matched_in_one_pass_each_at_most_once():
    phrases = [entry("phrase", f"placeholder phrase {n}") for n in range(5000)]
    matcher = Matcher.build(phrases)
    text = (
        "placeholder phrase 17 and placeholder phrase 4242, again placeholder phrase 17, "
        "but not placeholder phrase 49999"
    )

    assert matched(matcher, text) == [
        "phrase:placeholder phrase 17",
        "phrase:placeholder phrase 4242",
    ]


def test_a_phrase_in_two_lists_is_two_matches():
    matcher = Matcher.build([entry("phrase", "same words", 1), entry("phrase", "same words", 2)])

    hits = matcher.match_text("the same words")

    assert sorted(hit.entry.list_id for hit in hits) == [1, 2]


def test_the_excerpt_shows_the_match_in_context():
    matcher = Matcher.build([entry("phrase", "needle")])
    text = "x" * 100 + " a needle here " + "y" * 100

    [hit] = matcher.match_text(text)

    assert "needle" in hit.excerpt and hit.excerpt.startswith("…") and hit.excerpt.endswith("…")
    assert len(hit.excerpt) < 100


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Text: a  PlaceHolder\n\tNEEDLE here.", "Text: a PlaceHolder NEEDLE here."),
        ("Ünïcode Café — PLACEHOLDER Needle ok", "Ünïcode Café — PLACEHOLDER Needle ok"),
        ("ﬁne ＰＬＡＣＥＨＯＬＤＥＲ needle", "ﬁne ＰＬＡＣＥＨＯＬＤＥＲ needle"),
    ],
)
def test_the_excerpt_is_in_the_text_as_written_not_its_folded_form(text, shown):
    matcher = Matcher.build([entry("phrase", "placeholder needle")])

    [hit] = matcher.match_text(text)

    assert hit.excerpt == shown


def test_an_excerpt_that_cannot_be_traced_to_the_text_falls_back_to_the_folded_form():
    """Hangul jamo written apart are one syllable once NFKC joins them, so the folded text has
    fewer characters than the text: the excerpt is the folded one, never a shifted window."""
    matcher = Matcher.build([entry("phrase", "placeholder needle")])

    [hit] = matcher.match_text("\u1100\u1161 PLACEHOLDER needle")

    assert hit.excerpt == "\uac00 placeholder needle"


def test_folding_keeps_ascii_fast_and_equal_to_the_slow_path():
    assert fold("Hello   World\n") == "hello world "
    assert fold("ＡＢＣ Straße") == "abc strasse"


# ---------------------------------------------------------------------------------------------
# Hashtags


def test_hashtags_match_in_text_and_from_the_items_stored_tags():
    matcher = Matcher.build([entry("hashtag", "#Placeholder"), entry("hashtag", "other-tag")])

    assert matched(matcher, "see #PLACEHOLDER now") == ["hashtag:placeholder"]
    assert matched(matcher, "tagged #other-tag.") == ["hashtag:other-tag"]
    assert matched(matcher, "no tags here", tags=["Placeholder"]) == ["hashtag:placeholder"]
    assert matched(matcher, None, tags=["other-tag"]) == ["hashtag:other-tag"]


def test_hashtags_are_not_read_inside_words_links_or_as_headings():
    matcher = Matcher.build([entry("hashtag", "placeholder")])

    assert matched(matcher, "word#placeholder") == []
    assert matched(matcher, "https://x.example/page#placeholder") == []
    assert matched(matcher, "# placeholder heading") == []
    assert matched(matcher, "#placeholders") == []


# ---------------------------------------------------------------------------------------------
# Links


def test_links_are_found_bare_in_markdown_and_starting_with_www():
    text = (
        "see [the page](https://Bad.Example/a/b?x=1#top), http://other.example:80/p. "
        "and www.third.example/x, <https://fourth.example>"
    )

    assert links(text) == [
        "https://bad.example/a/b?x=1",
        "http://other.example/p",
        "https://www.third.example/x",
        "https://fourth.example/",
    ]


def test_a_host_entry_matches_every_link_to_the_host_and_its_subdomains():
    matcher = Matcher.build([entry("url", "bad.example")])

    assert matched(matcher, "https://bad.example/anything?x=1") == ["url:https://bad.example/"]
    assert matched(matcher, "[x](http://cdn.bad.example/img)") == ["url:https://bad.example/"]
    assert matched(matcher, "https://notbad.example/ and https://bad.example.org/") == []
    assert matched(matcher, "bad.example without a scheme is not a link") == []


def test_a_path_entry_matches_links_under_that_path_only():
    matcher = Matcher.build([entry("url", "https://host.example/promo")])

    assert matched(matcher, "https://host.example/promo") == ["url:https://host.example/promo"]
    assert matched(matcher, "https://host.example/promo/deal?x=1") == [
        "url:https://host.example/promo"
    ]
    assert matched(matcher, "https://host.example/promotion") == []
    assert matched(matcher, "https://host.example/") == []


def test_a_user_name_in_a_link_does_not_hide_its_host():
    matcher = Matcher.build([entry("url", "bad.example")])

    assert matched(matcher, "https://decoy.example@bad.example/x") == ["url:https://bad.example/"]


def test_text_kinds_mix_in_one_call():
    matcher = Matcher.build(
        [
            entry("phrase", "placeholder offer"),
            entry("hashtag", "deal"),
            entry("url", "shop.example"),
        ]
    )

    assert matched(matcher, "Placeholder offer #deal at https://shop.example/x") == [
        "hashtag:deal",
        "phrase:placeholder offer",
        "url:https://shop.example/",
    ]


# ---------------------------------------------------------------------------------------------
# Images


def picture(seed: int, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A neutral synthetic picture: coloured blobs on a background, softened."""
    rng = np.random.default_rng(seed)
    width, height = size
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        rx, ry = (
            int(rng.integers(width // 12, width // 4)),
            int(rng.integers(height // 12, height // 4)),
        )
        draw.ellipse(
            [cx - rx, cy - ry, cx + rx, cy + ry],
            fill=tuple(int(v) for v in rng.integers(0, 256, 3)),
        )
    return image.filter(ImageFilter.GaussianBlur(2))


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def small_crop(image: Image.Image) -> Image.Image:
    width, height = image.size
    return image.crop((width // 100, height // 100, width - width // 100, height - height // 100))


TRANSFORMS = {
    "resized to half": lambda image: image.resize((image.width // 2, image.height // 2)),
    "re-encoded as JPEG": lambda image: Image.open(io.BytesIO(encoded(image, "JPEG", quality=60))),
    "cropped by 1% each side": small_crop,
    "mirrored": ImageOps.mirror,
    "turned a quarter": lambda image: image.transpose(Image.Transpose.ROTATE_90),
}


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("transform", sorted(TRANSFORMS))
def test_a_transformed_picture_still_matches_its_list_hash(seed, transform):
    original = picture(seed)
    listed = hash_image(encoded(original))
    matcher = Matcher.build([Entry(1, "images", "pdq", listed.pdq_hex, "placeholder", 1)])

    repost = hash_image(encoded(TRANSFORMS[transform](original), "JPEG", quality=85))
    [hit] = matcher.match_image(repost, max_distance=31, min_quality=50)

    assert hit.entry.value == listed.pdq_hex
    assert hit.distance <= 31


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_unrelated_pictures_do_not_match(seed):
    listed = hash_image(encoded(picture(seed)))
    matcher = Matcher.build([Entry(1, "images", "pdq", listed.pdq_hex, "placeholder", 1)])

    for other in range(100, 110):
        assert (
            matcher.match_image(
                hash_image(encoded(picture(other))), max_distance=31, min_quality=50
            )
            == []
        )


def test_a_mirror_is_far_from_the_original_but_equal_to_its_flipped_dihedral_hash():
    original = picture(7)
    pixels = np.asarray(original)
    mirrored = np.ascontiguousarray(pixels[:, ::-1])
    plain, _ = pdqhash.compute(pixels)
    dihedral, _ = pdqhash.compute_dihedral(pixels)
    of_mirror, _ = pdqhash.compute(mirrored)

    def distance(a, b) -> int:
        return int(np.count_nonzero(a != b))

    assert distance(plain, of_mirror) > 64
    assert min(distance(vector, of_mirror) for vector in dihedral) <= 8
    # podmod keeps the 8 hashes in the same order, as 4 words each
    kept = hash_image(encoded(original))
    assert pdq_to_hex(kept.pdq[0]) == pdq_to_hex(bits_to_words(plain))
    assert [pdq_to_hex(w) for w in kept.pdq] == [pdq_to_hex(bits_to_words(v)) for v in dihedral]


def test_the_hex_form_reads_the_bits_most_significant_first():
    bits = np.zeros(256, dtype=np.int64)
    bits[0] = 1
    bits[255] = 1

    assert pdq_to_hex(bits_to_words(bits)) == "8" + "0" * 62 + "1"
    assert pdq_to_hex(hex_to_words(["8" + "0" * 62 + "1"])[0]) == "8" + "0" * 62 + "1"


def test_low_quality_pictures_are_not_matched_by_pdq():
    flat = Image.new("RGB", (300, 300), (120, 120, 120))
    hashes = hash_image(encoded(flat))
    matcher = Matcher.build([Entry(1, "images", "pdq", hashes.pdq_hex, "", 1)])

    assert hashes.quality < 50
    assert matcher.match_image(hashes, max_distance=31, min_quality=50) == []


def test_sha256_entries_match_the_exact_file_only():
    data = encoded(picture(3))
    digest = hashlib.sha256(data).hexdigest()
    matcher = Matcher.build([Entry(1, "files", "sha256", digest, "", 1)])

    [hit] = matcher.match_image(hash_image(data), max_distance=31, min_quality=50)
    assert hit.entry.kind == "sha256" and hit.distance == 0
    assert (
        matcher.match_image(
            hash_image(encoded(picture(3), "JPEG")), max_distance=31, min_quality=50
        )
        == []
    )


def test_what_is_not_an_image_or_too_large_is_refused():
    with pytest.raises(ImageError):
        hash_image(b"<html>not an image</html>")
    with pytest.raises(ImageError, match="more than"):
        hash_image(encoded(picture(1)), max_pixels=1000)


def full_size_pdq(data: bytes) -> np.ndarray:
    """The 8 PDQ hashes of the picture decoded at its full size, as podmod hashed before."""
    pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    vectors, _ = pdqhash.compute_dihedral(np.ascontiguousarray(pixels))
    return np.stack([bits_to_words(vector) for vector in vectors])


def bits_apart(a: np.ndarray, b: np.ndarray) -> list[int]:
    return [int(np.bitwise_count(x ^ y).sum()) for x, y in zip(a, b, strict=True)]


@pytest.mark.parametrize(
    ("fmt", "mode"), [("PNG", "RGB"), ("JPEG", "RGB"), ("PNG", "RGBA"), ("GIF", "P")]
)
def test_a_large_picture_hashed_reduced_is_within_a_few_bits_of_its_full_size_hash(fmt, mode):
    image = picture(7, (2600, 1900)).convert(mode)
    data = encoded(image, fmt)
    reduced = hash_image(data)
    distances = bits_apart(reduced.pdq, full_size_pdq(data))
    assert max(distances) <= 8, f"{fmt} {mode}: bits apart per orientation {distances}"


@pytest.mark.parametrize(("fmt", "limit_mib"), [("PNG", 200), ("JPEG", 60)])
def test_a_49_megapixel_photo_is_hashed_in_bounded_memory(fmt, limit_mib):
    """A small file of 7000x7000 pixels (a PNG of one colour is 160 kB): hashed at full size, the
    hasher's float buffers took 1.3 GB; PDQ needs 64x64, so podmod decodes reduced."""
    from podmod.bench.pdq import large_photo_cost

    cost = large_photo_cost(fmt)
    assert cost["grew_mib"] < limit_mib, f"hashing a 49-megapixel {fmt}: {cost}"


def test_the_pdq_index_finds_exactly_what_brute_force_finds():
    rng = np.random.default_rng(5)
    words = rng.integers(0, 2**63, size=(20_000, 4), dtype=np.uint64)
    query = words[123].copy()
    for row, flips in ((10, 5), (11, 31), (12, 32), (13, 60)):  # plant neighbours
        bits = rng.choice(256, size=flips, replace=False)
        changed = query.copy()
        for bit in bits:
            changed[bit // 64] ^= np.uint64(1) << np.uint64(bit % 64)
        words[row] = changed
    index = PdqIndex(words)

    rows, distances = index.search(query, 31)

    brute = np.bitwise_count(words ^ query).sum(axis=1)
    assert sorted(rows.tolist()) == sorted(np.flatnonzero(brute <= 31).tolist())
    assert dict(zip(rows.tolist(), distances.tolist(), strict=True))[11] == 31
    assert 12 not in rows.tolist() and 123 in rows.tolist()
    wide, _ = index.search(query, 200)
    assert sorted(wide.tolist()) == sorted(np.flatnonzero(brute <= 200).tolist())
