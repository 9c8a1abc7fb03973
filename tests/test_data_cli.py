"""The command line: prepare's summary and errors, and the EmoDB download against a local server."""

import hashlib
import http.server
import io
import threading
import zipfile

import pytest

from data_fixtures import make_emodb, write_wav
from data_prep.cli import main
from data_prep.download import emodb_file_names, fetch
from data_prep.errors import DataError


def test_prepare_prints_summary(tmp_path, capsys):
    root = make_emodb(tmp_path / "emodb", letters="WFNTL", takes="a")
    (root / "wav" / "03b01Wa.wav").write_bytes(b"")
    args = ["prepare", "--corpus", "emodb", "--root", str(root), "--out", str(tmp_path / "store"),
            "--jobs", "1", "--duration", "0.5", "--sample-rate", "8000", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "(built)" in out and "utterances 40: anger 10, happiness 10, neutral 10, sadness 10" in out
    assert "speakers 10: 03/M 4, 08/F 4" in out
    assert "fold 1: test 03+08 8, search" in out and "fold 5: test 15+16 8" in out
    assert "excluded 10: class boredom not selected" in out
    assert "skipped 1 file(s):" in out and "03b01Wa.wav: empty file" in out
    assert "time " in out
    assert main(args) == 0 and "(reused)" in capsys.readouterr().out


def test_prepare_errors_are_one_line(tmp_path, capsys):
    assert main(["prepare", "--corpus", "emodb", "--root", str(tmp_path / "none"),
                 "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none: corpus root does not exist" in err
    assert "Traceback" not in err


class _Server:
    """A local HTTP server for one archive: honours Range, or ignores it, or cuts off."""

    def __init__(self, data: bytes):
        self.data, self.mode, self.ranges = data, "normal", []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                rng = self.headers.get("Range")
                outer.ranges.append(rng)
                start = int(rng.split("=")[1].rstrip("-")) if rng and outer.mode != "ignore-range" else 0
                body = outer.data[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(outer.data) - 1}/{len(outer.data)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if outer.mode == "cut" else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/download/download.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def archive(tmp_path):
    """A zip laid out like the official EmoDB archive: all 535 names under wav/, other folders."""
    buf = io.BytesIO()
    wav = write_wav(tmp_path / "src" / "03a01Wa.wav", seconds=0.1).read_bytes()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in emodb_file_names():
            zf.writestr(f"wav/{name}", wav)
        zf.writestr("lablaut/03a01Wa.lab", "labels")
    data = buf.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def test_download_checks_sha256_unpacks_and_reuses_the_archive(tmp_path, archive, capsys):
    data, digest = archive
    out = tmp_path / "data"
    with _Server(data) as srv:
        assert main(["download", "emodb", "--out", str(out), "--url", srv.url,
                     "--sha256", digest, "--no-progress"]) == 0
        assert main(["download", "emodb", "--out", str(out), "--url", srv.url,
                     "--sha256", digest, "--no-progress", "--no-extract"]) == 0
    assert len(srv.ranges) == 1  # the second run found the checked archive and asked nothing
    assert (out / "download.zip").read_bytes() == data
    assert sorted(p.name for p in (out / "emodb" / "wav").iterdir()) == emodb_file_names()
    assert f"sha256 {digest}" in capsys.readouterr().err


def test_interrupted_download_leaves_no_archive_and_says_run_again(tmp_path, archive):
    data, digest = archive
    out = tmp_path / "data"
    with _Server(data) as srv:
        srv.mode = "cut"
        with pytest.raises(DataError, match="download failed.*run again"):
            fetch(srv.url, out / "download.zip", sha256=digest, progress=False)
        assert list(out.iterdir()) == []
        srv.mode = "normal"
        assert fetch(srv.url, out / "download.zip", sha256=digest, progress=False).read_bytes() == data


def test_download_checksum_mismatch_deletes_the_file(tmp_path, archive):
    data, _ = archive
    with _Server(data) as srv:
        with pytest.raises(DataError, match="download.zip: checksum mismatch"):
            fetch(srv.url, tmp_path / "dl" / "download.zip", sha256="0" * 64, progress=False)
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_stale_file_under_the_archive_name_is_replaced(tmp_path, archive):
    data, digest = archive
    dest = tmp_path / "download.zip"
    dest.write_bytes(b"stale bytes")
    with _Server(data) as srv:
        fetch(srv.url, dest, sha256=digest, progress=False)
    assert dest.read_bytes() == data


def test_an_archive_without_all_utterances_is_refused_before_unpacking(tmp_path, capsys):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in emodb_file_names()[2:]:
            zf.writestr(f"wav/{name}", b"")
        zf.writestr("wav/99z99Xx.wav", b"")
    out = tmp_path / "data"
    with _Server(buf.getvalue()) as srv:
        assert main(["download", "emodb", "--out", str(out), "--url", srv.url, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "download.zip: not the EmoDB archive" in err
    assert "2 utterance(s) missing (03a01Fa.wav, 03a01Nc.wav)" in err and "1 unexpected (99z99Xx.wav)" in err
    assert not (out / "emodb").exists() and [p.name for p in out.iterdir()] == ["download.zip"]


def test_the_file_list_is_emodb(tmp_path):
    names = emodb_file_names()
    assert len(names) == len(set(names)) == 535
    assert sum(n[5] in "WFNT" for n in names) == 339  # the paper's four classes (docs/DATA.md)


def test_download_unreachable_server(tmp_path):
    with pytest.raises(DataError, match="download failed"):
        fetch("http://127.0.0.1:9/download.zip", tmp_path / "x.zip", progress=False, timeout=5)
