"""Image adjustments applied in the capture thread with numpy, in place on YUV planes.

Lookup tables are built once per settings change, so the per-frame cost is
one table lookup per plane, and nothing at all when every setting is neutral.
"""

from dataclasses import dataclass

import numpy as np

IMAGE_KEYS = ("brightness", "contrast", "saturation", "sharpness", "gain", "red-gain",
              "blue-gain", "noise-supression")


@dataclass(frozen=True)
class ImageSettings:
    """The state's image keys, 0-100 each (50 neutral; gain 0 neutral)."""

    brightness: int = 50
    contrast: int = 50
    saturation: int = 50
    sharpness: int = 50
    gain: int = 0
    red_gain: int = 50
    blue_gain: int = 50
    noise_supression: bool = False

    @classmethod
    def from_state(cls, state):
        """Read the image keys from a CameraState."""
        return cls(**{k.replace("-", "_"): state.get(k) for k in IMAGE_KEYS})


def _clip_lut(values):
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


# Rows per table lookup: numpy turns uint8 indices into 8-byte ones first, so a whole
# 1080p plane would allocate (and free) a 16.6 MB index array on every frame.
LOOKUP_ROWS = 32


def _lookup(lut, plane):
    """``plane[...] = lut[plane]`` in place, a band of rows at a time."""
    for top in range(0, plane.shape[0], LOOKUP_ROWS):
        band = plane[top:top + LOOKUP_ROWS]
        np.take(lut, band, out=band)


class ImageProcessor:
    """Applies :class:`ImageSettings` to yuv420p planes; rebuild via :meth:`configure`."""

    def __init__(self, settings=ImageSettings()):
        self.configure(settings)

    def configure(self, settings):
        """Precompute the lookup tables for ``settings``."""
        self.settings = settings
        x = np.arange(256, dtype=np.float32)
        # Brightness: +-100 luma levels; contrast: x0.25..x2 around mid grey; gain: up to x4.
        gain = 1.0 + 3.0 * settings.gain / 100.0
        contrast = 2.0 ** ((settings.contrast - 50) / 25.0)
        brightness = (settings.brightness - 50) * 2.0
        self._y_lut = _clip_lut((x * gain - 128.0) * contrast + 128.0 + brightness)
        self._y_identity = settings.gain == 0 and settings.contrast == 50 and \
            settings.brightness == 50
        sat = settings.saturation / 50.0
        self._u_lut = _clip_lut((x - 128.0) * sat + 128.0 + (settings.blue_gain - 50) * 0.8)
        self._v_lut = _clip_lut((x - 128.0) * sat + 128.0 + (settings.red_gain - 50) * 0.8)
        self._uv_identity = settings.saturation == 50 and settings.red_gain == 50 and \
            settings.blue_gain == 50
        self._sharpen = (settings.sharpness - 50) / 50.0
        self._denoise = settings.noise_supression

    @property
    def neutral(self):
        """True when applying would change nothing."""
        return self._y_identity and self._uv_identity and self._sharpen == 0 and \
            not self._denoise

    def apply(self, y, u, v):
        """Adjust the planes (2-D uint8 views) in place."""
        if self._denoise or self._sharpen:
            self._filter_luma(y)
        if not self._y_identity:
            _lookup(self._y_lut, y)
        if not self._uv_identity:
            _lookup(self._u_lut, u)
            _lookup(self._v_lut, v)

    def _filter_luma(self, y):
        # A cheap 4-neighbour blur: the base of both noise suppression (blur)
        # and sharpening (unsharp mask: y + k * (y - blur)).
        f = y.astype(np.int16)
        blur = f.copy()
        blur[1:-1, 1:-1] = (f[:-2, 1:-1] + f[2:, 1:-1] + f[1:-1, :-2] + f[1:-1, 2:]) >> 2
        if self._denoise:
            f = (f + blur) >> 1
        if self._sharpen:
            f = f + ((f - blur) * int(self._sharpen * 256) >> 8)
        np.clip(f, 0, 255, out=f)
        y[:] = f
