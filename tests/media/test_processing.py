"""Image adjustments on yuv420p planes: the lookups' result and their memory per frame."""

import tracemalloc

import numpy as np

from rotordream.media.processing import ImageProcessor, ImageSettings


def planes(seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 256, (1080, 1920), dtype=np.uint8)
    u = rng.integers(0, 256, (540, 960), dtype=np.uint8)
    v = rng.integers(0, 256, (540, 960), dtype=np.uint8)
    return y, u, v


def test_every_pixel_goes_through_its_table_and_rows_past_the_last_band_too():
    proc = ImageProcessor(ImageSettings(brightness=70, contrast=60, saturation=30,
                                        red_gain=60, blue_gain=40))
    y, u, v = planes()
    y = y[:1079]   # not a whole number of bands
    want = proc._y_lut[y], proc._u_lut[u], proc._v_lut[v]
    proc.apply(y, u, v)
    for got, expected in zip((y, u, v), want):
        assert np.array_equal(got, expected)


def test_neutral_settings_change_nothing():
    proc = ImageProcessor()
    y, u, v = planes(2)
    before = y.copy(), u.copy(), v.copy()
    assert proc.neutral
    proc.apply(y, u, v)
    assert all(np.array_equal(a, b) for a, b in zip((y, u, v), before))


def test_a_1080p_frame_is_adjusted_without_a_frame_sized_allocation():
    proc = ImageProcessor(ImageSettings(brightness=80, saturation=70))
    y, u, v = planes(3)
    tracemalloc.start()
    try:
        proc.apply(y, u, v)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One band of 8-byte indices (32 x 1920 x 8 = 0.5 MB); the whole plane's would be 16.6 MB.
    assert peak < 1_000_000, peak
