"""Uploaded images on disk: validated, then stored once under their content hash (never under a user's file name)."""
from __future__ import annotations

import hashlib
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sdpt.data import DataError, load_image

SUFFIXES = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif", "GIF": ".gif"}
MAX_IMAGE_PIXELS = 40_000_000


class ImageRejected(ValueError):
    """An upload that is not stored; the message names the file and says what to do."""


@dataclass(frozen=True)
class StoredImage:
    sha256: str
    suffix: str
    width: int
    height: int
    original_name: str
    added: bool = False  # this call wrote the file into the store (it was not there before)


def stored_path(images_dir: Path, sha256: str, suffix: str) -> Path:
    if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256) or suffix not in SUFFIXES.values():
        raise ValueError(f"not a stored image key: {sha256!r}{suffix!r}")
    return images_dir / sha256[:2] / f"{sha256}{suffix}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def store_upload(upload: str | Path, images_dir: Path, max_bytes: int, original_name: str | None = None) -> StoredImage:
    """Check that `upload` is a readable image within the limits and copy it into the store (once per content)."""
    from PIL import Image

    upload = Path(upload)
    shown = (original_name or upload.name)[:300]
    try:
        size = upload.stat().st_size
    except OSError as error:
        raise ImageRejected(f"'{shown}' could not be read ({error.strerror}); upload it again") from error
    if size > max_bytes:
        raise ImageRejected(f"'{shown}' is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB "
                            "- downscale or recompress it")
    try:
        with Image.open(upload) as probe:
            kind = probe.format
        image = load_image(upload, max_pixels=MAX_IMAGE_PIXELS)
    except Image.DecompressionBombError as error:
        # PIL refuses to even open images over twice its own limit; say what the size is and what ours is
        found = re.search(r"\((\d+) pixels\)", str(error))
        pixels = f"{int(found.group(1)):,} pixels" if found else "more pixels than PIL opens"
        raise ImageRejected(f"'{shown}' has {pixels}; the limit is {MAX_IMAGE_PIXELS:,} pixels "
                            "(e.g. 8000x5000) - downscale it first") from error
    except DataError as error:
        raise ImageRejected(str(error).replace(f"image '{upload}'", f"'{shown}'")) from error
    except Exception as error:  # PIL raises many types for non-images
        raise ImageRejected(f"'{shown}' is not an image this app can read (PNG, JPEG, WebP, BMP, TIFF)") from error
    if kind not in SUFFIXES:
        raise ImageRejected(f"'{shown}' is a {kind} file; upload PNG, JPEG, WebP, BMP or TIFF")
    sha = _sha256(upload)
    target = stored_path(images_dir, sha, SUFFIXES[kind])
    added = not target.exists()
    if added:
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + ".part")
        shutil.copyfile(upload, partial)
        partial.replace(target)  # atomic: a crash never leaves a half-written image under its final name
    return StoredImage(sha, SUFFIXES[kind], image.width, image.height, shown, added)
