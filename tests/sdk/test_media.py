"""``exp.files(...).save_video`` (the ``[media]`` extra) and the errors of the other ``save_*``.

Decoding the stored videos needs imageio (the extra): only those tests skip without it.
Every error test runs whatever is installed: a missing extra is simulated by making its
import fail.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml_dash import Experiment, ExperimentStateError, InvalidInputError
from ml_dash.sdk.media import MEDIA_HINT, MissingDependencyError, frames_to_uint8


@pytest.fixture
def exp(tmp_path: Path) -> Experiment:
    return Experiment(name="run-1", project="media", local_path=tmp_path / ".ml-dash").run.start()


def stored(exp: Experiment, entry: dict[str, Any]) -> Path:
    assert exp.dir is not None
    return exp.dir / "files" / entry["path"].strip("/") / entry["id"] / entry["filename"]


def manifest(exp: Experiment) -> list[dict[str, Any]]:
    assert exp.dir is not None
    path = exp.dir / "files" / ".files_metadata.json"
    return json.loads(path.read_text())["files"] if path.exists() else []


# 10 frames of 32×48 (multiples of 16: ffmpeg keeps the size), with a value that varies per frame.
N, H, W = 10, 32, 48
LEVELS = np.linspace(0.1, 0.9, N)


def frames(kind: str) -> Any:
    gray = np.stack([np.full((H, W), level) for level in LEVELS])
    rgb = np.stack([gray, gray * 0.5, gray * 0.25], axis=-1)
    return {
        "gray-float-list": list(gray),
        "gray-uint8-array": (gray * 255).round().astype(np.uint8),
        "rgb-float-array": rgb.astype(np.float32),
        "rgb-uint8-list": list((rgb * 255).round().astype(np.uint8)),
    }[kind]


KINDS = ["gray-float-list", "gray-uint8-array", "rgb-float-array", "rgb-uint8-list"]


def decode_mp4(path: Path, height: int = H, width: int = W) -> tuple[Any, float]:
    """Every frame (N×H×W×3 uint8) and the frame rate, decoded by the ffmpeg that imageio-ffmpeg ships.

    (imageio's ``imread`` and imageio-ffmpeg's ``read_frames`` leave ffmpeg's pipes to the
    garbage collector, which warnings-as-errors turns into failures: run ffmpeg directly.)"""
    import imageio_ffmpeg

    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-f", "rawvideo",
                          "-pix_fmt", "rgb24", "-"], capture_output=True, check=True, timeout=60).stdout
    video = np.frombuffer(raw, np.uint8).reshape(-1, height, width, 3)
    nframes, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert nframes == len(video)
    return video, round(nframes / seconds, 3)


# --- what is stored, and that it decodes ------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_mp4_is_stored_and_decodes_frame_for_frame(exp: Experiment, kind: str) -> None:
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    entry = exp.files(prefix="/videos", description="rollout", tags=["eval"], metadata={"env": "cartpole"}
                      ).save_video(frames(kind), "clip.mp4", fps=10)
    # As 0.5.8: the builder's prefix/description/tags/metadata, the content type of the name.
    assert (entry["path"], entry["filename"], entry["contentType"]) == ("/videos", "clip.mp4", "video/mp4")
    assert (entry["description"], entry["tags"], entry["metadata"]) == ("rollout", ["eval"], {"env": "cartpole"})
    blob = stored(exp, entry)
    data = blob.read_bytes()
    assert entry["sizeBytes"] == len(data) and entry["checksum"] == hashlib.sha256(data).hexdigest()
    assert manifest(exp) == [entry]
    nframes, seconds = imageio_ffmpeg.count_frames_and_secs(str(blob))
    assert nframes == N and seconds == pytest.approx(N / 10, abs=0.05)
    video, fps = decode_mp4(blob)
    assert video.shape == (N, H, W, 3) and fps == 10
    # h264 is lossy, but each frame's brightness follows the input (the first channel is the gray level).
    means = video[..., 0].reshape(N, -1).mean(axis=1) if kind.startswith("gray") else \
        video.reshape(N, -1, 3).mean(axis=1)[:, 0]
    assert np.allclose(means, LEVELS * 255, atol=12)


@pytest.mark.parametrize("kind", KINDS)
def test_gif_is_stored_and_decodes_frame_for_frame(exp: Experiment, kind: str) -> None:
    iio = pytest.importorskip("imageio.v3")
    entry = exp.files(prefix="/anim").save_video(frames(kind), "anim.gif", fps=5)
    assert (entry["contentType"], entry["sizeBytes"]) == ("image/gif", stored(exp, entry).stat().st_size)
    video = iio.imread(stored(exp, entry))
    assert video.shape[:3] == (N, H, W)
    first_channel = video if video.ndim == 3 else video[..., 0]
    expected = (LEVELS * 255).round()
    assert np.allclose(first_channel.reshape(N, -1).mean(axis=1), expected, atol=2)
    assert iio.immeta(stored(exp, entry))["duration"] == 200  # 5 fps: 200 ms per frame


def test_imageio_options_reach_the_encoder(exp: Experiment) -> None:
    iio = pytest.importorskip("imageio.v3")
    pytest.importorskip("imageio_ffmpeg")
    entry = exp.files().save_video(frames("rgb-uint8-list"), "loop.gif", fps=10, loop=0)
    assert iio.immeta(stored(exp, entry))["loop"] == 0
    entry = exp.files().save_video(frames("rgb-uint8-list"), "small.mp4", fps=25, quality=2)
    video, fps = decode_mp4(stored(exp, entry))
    assert video.shape == (N, H, W, 3) and fps == 25


def test_a_gif_needs_no_ffmpeg(exp: Experiment, monkeypatch: pytest.MonkeyPatch) -> None:
    iio = pytest.importorskip("imageio.v3")
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    entry = exp.files().save_video(frames("gray-uint8-array"), "anim.gif")
    assert iio.imread(stored(exp, entry)).shape[0] == N


# --- the conversion to uint8 (0.5.8 used scikit-image's img_as_ubyte) -------------------------------
def test_frames_are_converted_like_img_as_ubyte() -> None:
    out = frames_to_uint8(np.array([[[0.0, 0.5, 1.0, -0.5]]]))
    assert out.dtype == np.uint8 and out.tolist() == [[[0, 128, 255, 0]]]  # rint(x*255), negatives clip
    assert frames_to_uint8(np.array([[[True, False]]])).tolist() == [[[255, 0]]]
    assert frames_to_uint8(np.array([[[0, 7, 255]]], dtype=np.int64)).tolist() == [[[0, 7, 255]]]
    assert frames_to_uint8(np.array([[[0, 256, 65535]]], dtype=np.uint16)).tolist() == [[[0, 1, 255]]]
    assert frames_to_uint8(np.zeros((2, 4, 4, 1))).shape == (2, 4, 4)  # one channel: grayscale
    assert frames_to_uint8(np.zeros((2, 4, 4, 4))).shape == (2, 4, 4, 4)  # RGBA kept


@pytest.mark.parametrize(("bad", "message"), [
    (np.full((2, 4, 4), 3.0), "between 0 and 1"),
    (np.full((2, 4, 4), np.nan), "NaN"),
    (np.full((2, 4, 4), -5, dtype=np.int32), "within 0..255"),
    (np.zeros((2, 4, 4, 2)), "shape"),
    (np.zeros((4, 4)), "shape"),
    (np.zeros((2, 0, 4)), "empty"),
    ([np.zeros((4, 4)), np.zeros((5, 5))], "same size"),
    (np.array([["a", "b"]]), "numeric"),
])
def test_frames_that_cannot_be_a_video_are_refused(bad: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        frames_to_uint8(bad)
    assert "N×H×W" in (info.value.hint or "")


# --- errors ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("empty", [[], (), np.zeros((0, 8, 8))], ids=["list", "tuple", "array"])
def test_empty_frames_raise_a_clear_error(exp: Experiment, empty: Any) -> None:
    with pytest.raises(InvalidInputError, match="frame_stack is empty") as info:
        exp.files(prefix="/videos").save_video(empty, "clip.mp4")
    assert info.value.hint and isinstance(info.value, ValueError)  # 0.5.8 raised ValueError
    assert manifest(exp) == []


@pytest.mark.parametrize(("call", "message"), [
    (lambda f: f.save_video(5, "clip.mp4"), "list of frames or an array"),
    (lambda f: f.save_video([np.zeros((8, 8))], "clip.txt"), "video format"),
    (lambda f: f.save_video([np.zeros((8, 8))], "clip"), "video format"),
    (lambda f: f.save_video([np.zeros((8, 8))], "clip.mp4", fps=0), "fps must be positive"),
    (lambda f: f.save_video([np.zeros((8, 8))], "clip.mp4", fps="fast"), "fps must be a number"),
    (lambda f: f.save_video([np.zeros((8, 8))], "../clip.mp4"), "plain file name"),
])
def test_bad_video_arguments_raise_invalid_input(exp: Experiment, call: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message) as info:
        call(exp.files(prefix="/videos"))
    assert info.value.hint
    assert manifest(exp) == []


@pytest.mark.parametrize("missing", ["imageio", "imageio_ffmpeg"])
def test_a_missing_media_extra_names_the_extra(exp: Experiment, monkeypatch: pytest.MonkeyPatch,
                                               missing: str) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    if missing == "imageio":
        monkeypatch.setitem(sys.modules, "imageio.v3", None)
    with pytest.raises(MissingDependencyError) as info:
        exp.files(prefix="/videos").save_video([np.zeros((16, 16))] * 3, "clip.mp4")
    err = info.value
    # Our InvalidInputError with the install line as hint, and still the ImportError 0.5.8 raised.
    assert isinstance(err, InvalidInputError) and isinstance(err, ImportError)
    assert missing in err.message and err.hint == MEDIA_HINT == "pip install 'ml-dash[media]'"
    assert "pip install 'ml-dash[media]'" in str(err)
    assert manifest(exp) == []


def test_save_video_on_a_closed_experiment(exp: Experiment) -> None:
    exp.run.complete()
    with pytest.raises(ExperimentStateError):
        exp.files().save_video([np.zeros((8, 8))], "clip.mp4")


def test_importing_the_sdk_does_not_import_numpy_or_imageio() -> None:
    code = ("import sys, ml_dash.sdk.experiment, ml_dash.sdk.files; "
            "print(sorted(m for m in ('numpy', 'imageio', 'imageio_ffmpeg', 'ml_dash.sdk.media') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the other save_* raise InvalidInputError with a hint, never a raw Python error ------------------
class FakeFigure:
    """Enough of a matplotlib figure for save_fig (matplotlib is not a dependency)."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail

    def savefig(self, path: Path, **kwargs: Any) -> None:
        if self.fail:
            raise self.fail
        Path(path).write_bytes(b"\x89PNG fake " + json.dumps(kwargs).encode())


def _unpicklable_local() -> Any:
    def local() -> None: ...
    return local


@pytest.mark.parametrize(("call", "message", "hint"), [
    (lambda f: f.save_text(123, "a.txt"), "save_text needs a str, got int", "str("),
    (lambda f: f.save_text(b"raw", "a.txt"), "got bytes", "save(data, name)"),
    (lambda f: f.save_text("x", None), "plain file name", "model.pth"),
    (lambda f: f.save_pkl(threading.Lock(), "lock.pkl"), "cannot pickle lock", "state"),
    (lambda f: f.save_pkl(lambda: 1, "fn.pkl"), "cannot pickle function", "lambdas"),
    (lambda f: f.save_pkl(_unpicklable_local(), "fn.pkl"), "cannot pickle function", "local functions"),
    (lambda f: f.save({"lock": threading.Lock()}, "state.pkl"), "cannot pickle dict", "state"),
    (lambda f: f.save_json({"x": object()}, "a.json"), "not JSON-serialisable", "save_pkl"),
    (lambda f: f.save_fig("not a figure", "a.png"), "needs a matplotlib figure, got str", "plt.subplots"),
    (lambda f: f.save_fig(FakeFigure(ValueError("Format 'xyz' is not supported")), "a.xyz"),
     "Format 'xyz' is not supported", "extension"),
    (lambda f: f.save_fig(FakeFigure(TypeError("unexpected keyword 'bogus'")), "a.png"), "bogus", "options"),
])
def test_bad_input_to_save_helpers_is_an_invalid_input_error(exp: Experiment, call: Any, message: str,
                                                             hint: str) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(")) as info:
        call(exp.files(prefix="/out"))
    assert hint in (info.value.hint or "")
    assert manifest(exp) == []


def test_missing_matplotlib_and_torch_name_what_to_install(exp: Experiment, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("matplotlib", "matplotlib.pyplot", "torch"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingDependencyError, match="matplotlib") as info:
        exp.files(prefix="/plots").save_fig(file_name="plot.png")  # no figure: pyplot's current one
    assert info.value.hint == "pip install matplotlib" and isinstance(info.value, ImportError)
    with pytest.raises(MissingDependencyError, match="torch") as info:
        exp.files(prefix="/models").save_torch({"w": 1}, "model.pt")
    assert info.value.hint == "pip install torch"
    # A figure object needs no pyplot import at all (and is not closed, there is no pyplot).
    entry = exp.files(prefix="/plots").save_fig(FakeFigure(), "plot.png", dpi=50)
    assert entry["contentType"] == "image/png" and stored(exp, entry).read_bytes() == b'\x89PNG fake {"dpi": 50}'


def test_save_fig_uses_the_current_figure_and_closes_it(exp: Experiment, monkeypatch: pytest.MonkeyPatch) -> None:
    """0.5.8's form ``save_fig(file_name=...)``: pyplot's current figure, closed afterwards."""
    import types

    figure = FakeFigure()
    closed: list[Any] = []
    pyplot = types.SimpleNamespace(gcf=lambda: figure, close=closed.append)
    monkeypatch.setitem(sys.modules, "matplotlib", types.ModuleType("matplotlib"))
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", pyplot)
    entry = exp.files(prefix="/plots").save_fig(file_name="current.svg")
    assert entry["contentType"] == "image/svg+xml" and closed == [figure]
    exp.files(prefix="/plots").save_fig(figure, "given.png")
    assert closed == [figure, figure]


def test_the_save_helpers_still_store_good_input(exp: Experiment) -> None:
    text = exp.files(prefix="/out").save_text("héllo\n", "notes.txt")
    assert stored(exp, text).read_bytes() == "héllo\n".encode() and text["contentType"] == "text/plain"
    pkl = exp.files(prefix="/out").save_pkl({"w": [1, 2]}, "state.pkl")
    import pickle

    assert pickle.loads(stored(exp, pkl).read_bytes()) == {"w": [1, 2]}
    js = exp.files(prefix="/out").save_json({"lr": 0.1}, "cfg.json")
    assert stored(exp, js).read_text() == '{\n  "lr": 0.1\n}'
