"""Uploads too large in pixels are refused with their pixel count and the limit, before anything is stored."""
import pytest
from PIL import Image

from app.image_files import MAX_IMAGE_PIXELS, ImageRejected, store_upload


@pytest.mark.parametrize("size", [(20000, 20000), (8000, 6000)])
def test_an_image_over_the_pixel_limit_says_its_size_and_the_limit(tmp_path, size):
    # a 1-bit image: a 20000x20000 PNG of one colour is a few hundred KB on disk, far below the byte limit
    path = tmp_path / "huge.png"
    Image.new("1", size).save(path)
    assert path.stat().st_size < 2**20
    with pytest.raises(ImageRejected) as refused:
        store_upload(path, tmp_path / "images", 20 * 2**20)
    message = str(refused.value)
    width, height = size
    assert "'huge.png'" in message and "not an image this app can read" not in message
    assert f"{width * height:,} pixels" in message or f"{width}x{height}" in message
    assert f"{MAX_IMAGE_PIXELS:,} pixels" in message and "downscale" in message
    assert not (tmp_path / "images").exists() or not list((tmp_path / "images").rglob("*.png"))
