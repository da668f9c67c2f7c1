"""Videos for ``exp.files(...).save_video(frames, "clip.mp4", fps=20)`` (the ``[media]`` extra).

ml-dash 0.5.8 turned the frames into uint8 with scikit-image's ``img_as_ubyte`` and wrote
them with ``imageio.v3.imwrite(path, frames, fps=fps, **imageio_kwargs)``. This does the
same conversion with numpy alone (no scikit-image), so the extra is only ``imageio`` and
``imageio-ffmpeg`` (whose wheel carries its own ffmpeg binary):

* floats in ``[0, 1]`` are scaled to ``0..255`` and rounded (``[-1, 0)`` clips to 0, as
  ``img_as_ubyte``); floats outside ``[-1, 1]``, NaN or infinity are refused;
* ``uint8`` is kept; booleans become 0/255; other integers within ``0..255`` are kept
  as they are (as ``img_as_ubyte`` does when they fit); wider unsigned integers
  (16-bit images) are scaled down by their bit depth; anything else is refused, where
  ``img_as_ubyte`` would have silently scaled it to a black video;
* frames are ``N×H×W`` (grayscale), ``N×H×W×1``, ``N×H×W×3`` (RGB) or ``N×H×W×4`` (RGBA).

Nothing here is imported before the first ``save_video`` call: ``import ml_dash`` and
``ml-dash --help`` never pay for numpy or imageio.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path
from typing import Any

from ml_dash.errors import InvalidInputError

__all__ = ["MEDIA_HINT", "MissingDependencyError", "encode_video", "frames_to_uint8", "require"]

MEDIA_HINT = "pip install 'ml-dash[media]'"
# Formats written by imageio's pillow plugin: frame timing is a duration in ms, not fps.
_PILLOW_ANIMATIONS = {".gif", ".webp"}
# Containers written by ffmpeg (imageio-ffmpeg). Anything else is refused up front rather than
# handed to imageio, which would try every image plugin in turn.
_FFMPEG_VIDEOS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ogv"}


class MissingDependencyError(InvalidInputError, ImportError):
    """An optional dependency is not installed. An :class:`~ml_dash.InvalidInputError` with
    the ``pip install`` line as its hint, and an ``ImportError`` as 0.5.8 raised, so scripts
    catching either keep working."""

    def __init__(self, message: str, *, hint: str | None = None, name: str | None = None) -> None:
        InvalidInputError.__init__(self, message, hint=hint)
        self.name = name


def require(module: str, what: str, hint: str = MEDIA_HINT) -> Any:
    """``importlib.import_module(module)``, or a :class:`MissingDependencyError` naming the fix."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(f"{what} needs the optional package {module!r}, which is not installed",
                                     hint=hint, name=module) from None


def _invalid(message: str) -> InvalidInputError:
    return InvalidInputError(message, hint="pass N×H×W (grayscale) or N×H×W×3 (RGB) frames: floats in [0, 1] "
                                           "or uint8 in 0..255, as a list of arrays or one stacked array")


def frames_to_uint8(frame_stack: Any) -> Any:
    """The frames as one ``uint8`` array of shape ``N×H×W`` or ``N×H×W×C`` (C = 3 or 4)."""
    np = require("numpy", "save_video")
    try:
        frames = np.asarray(frame_stack)
    except (ValueError, TypeError) as exc:
        raise _invalid(f"frames cannot be stacked into one array ({exc}); are they all the same size?") from None
    if frames.dtype == object or frames.dtype.kind not in "biuf":
        raise _invalid(f"frames must be numeric arrays, got dtype {frames.dtype}")
    if frames.ndim == 4 and frames.shape[-1] == 1:
        frames = frames[..., 0]
    if frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[-1] not in (3, 4)):
        raise _invalid(f"frames have shape {frames.shape}")
    if 0 in frames.shape:
        raise _invalid(f"frames have shape {frames.shape}: no frame may be empty")
    kind = frames.dtype.kind
    if kind == "b":
        return frames.astype(np.uint8) * 255
    if kind == "f":
        low, high = float(np.min(frames)), float(np.max(frames))
        if not (math.isfinite(low) and math.isfinite(high)):
            raise _invalid("float frames contain NaN or infinity")
        if low < -1.0 or high > 1.0:
            raise _invalid(f"float frames must be between 0 and 1 (found {low:g}..{high:g}); "
                           "divide 0..255 values by 255 or pass uint8")
        out = np.rint(frames.astype(np.float64) * 255.0)
        np.clip(out, 0, 255, out=out)
        return out.astype(np.uint8)
    if frames.dtype == np.uint8:
        return frames
    low, high = int(np.min(frames)), int(np.max(frames))
    if low >= 0 and high <= 255:
        return frames.astype(np.uint8)
    if kind == "u":
        return (frames >> (8 * frames.dtype.itemsize - 8)).astype(np.uint8)
    raise _invalid(f"integer frames must be within 0..255 (found {low}..{high})")


def encode_video(frame_stack: Any, path: Path, fps: float, **imageio_kwargs: Any) -> None:
    """Write the frames to ``path``; the format follows its extension (.mp4, .gif, .webm, ...)."""
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise InvalidInputError(f"fps must be a number, got {fps!r}", hint="e.g. fps=20") from None
    if not (fps > 0 and math.isfinite(fps)):
        raise InvalidInputError(f"fps must be positive, got {fps!r}", hint="e.g. fps=20")
    suffix = path.suffix.lower()
    if suffix not in _PILLOW_ANIMATIONS | _FFMPEG_VIDEOS:
        raise InvalidInputError(f"save_video cannot tell the video format of {path.name!r}",
                                hint="end the file name with .mp4 or .gif (or .webm, .mov, .mkv, .avi, .webp)")
    require("imageio", "save_video")
    iio = importlib.import_module("imageio.v3")
    kwargs = dict(imageio_kwargs)
    if suffix in _PILLOW_ANIMATIONS:
        # 0.5.8 passed fps= here too, which imageio translates with a DeprecationWarning.
        kwargs.setdefault("duration", 1000.0 / fps)
    else:
        require("imageio_ffmpeg", f"save_video to {suffix}")
        kwargs.setdefault("fps", fps)
    frames = frames_to_uint8(frame_stack)
    try:
        iio.imwrite(path, frames, is_batch=True, **kwargs)
    except (ValueError, TypeError, OSError, RuntimeError) as exc:
        raise InvalidInputError(f"cannot encode {path.name}: {exc}",
                                hint="use a video file name such as 'clip.mp4' or 'clip.gif', and only "
                                     "options the format accepts") from None
