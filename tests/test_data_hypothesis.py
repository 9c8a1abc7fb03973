"""Property: whatever bytes sit in a corpus's .wav files, preparation ends in a store or a DataError.

Malformed input may be skipped (with a reason in the manifest) or refused with a
DataError naming the file; any other exception would be an unexplained crash.
"""

import io
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_fixtures import SMALL_CFG, write_wav
from data_prep.errors import DataError
from data_prep.features import extract
from data_prep.prepare import prepare


def _wav_bytes(samples: np.ndarray, sr: int, subtype: str) -> bytes | None:
    buf = io.BytesIO()
    try:
        sf.write(buf, samples, sr, format="WAV", subtype=subtype)
    except Exception:  # the generator asked for something libsndfile cannot write
        return None
    return buf.getvalue()


_floats = st.floats(allow_nan=True, allow_infinity=True, width=32)
_arrays = st.builds(
    lambda vals, ch, sr, subtype: _wav_bytes(
        np.asarray(vals, np.float32).reshape(-1, ch) if len(vals) % ch == 0 else np.asarray(vals, np.float32),
        sr, subtype),
    st.lists(_floats | st.sampled_from([0.0, 1e-6, 0.5, -1.0, 1e30]), max_size=600),
    st.sampled_from([1, 2, 3]),
    st.sampled_from([1, 8, 100, 8000, 44100, 384000]),
    st.sampled_from(["PCM_16", "PCM_U8", "FLOAT", "DOUBLE", "PCM_24"]),
)
_header = write_wav(Path(tempfile.mkdtemp()) / "h.wav", seconds=0.05).read_bytes()
_truncated = st.builds(lambda cut, junk: _header[:cut] + junk,
                       st.integers(0, len(_header)), st.binary(max_size=300))
_malformed = st.binary(max_size=400) | _truncated | _arrays.filter(lambda b: b is not None)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(blobs=st.lists(_malformed, min_size=1, max_size=3), strict=st.booleans())
def test_prepare_never_raises_anything_but_data_error(blobs, strict):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "emodb"
        write_wav(root / "wav" / "03a01Wa.wav")  # one good file among the malformed ones
        for k, blob in enumerate(blobs):
            (root / "wav" / f"08a0{k}Ta.wav").write_bytes(blob)
        try:
            store = prepare("emodb", root, Path(tmp) / "store", feature_config=SMALL_CFG,
                            strict=strict, jobs=1, progress=False)
        except DataError as exc:
            assert strict and exc.path is not None and "08a0" in exc.path
            return
        assert len(store) + len(store.skipped) == 1 + len(blobs)
        assert np.all(np.isfinite(np.asarray(store.X)))
        assert all(s["reason"] for s in store.skipped)


@settings(max_examples=25, deadline=None)
@given(blob=_malformed)
def test_extract_raises_only_data_error_naming_the_file(blob):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.wav"
        path.write_bytes(blob)
        try:
            out = extract(path, SMALL_CFG)
        except DataError as exc:
            assert exc.path == str(path)
        else:
            assert out.features.shape == (128, 128) and np.all(np.isfinite(out.features))
