"""`flashrunner pin` reads what validation reads, with the same bounds and policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.errors import ImageError
from runner.pins import update_pins

SECRET = "root:$6$never-shown$:19000:0:99999:7:::"


def _manifest(folder: Path, extra: str = "", image: str = "app.bin") -> Path:
    path = folder / "m.yaml"
    path.write_text(f"manifest: 1\nname: p\n{extra}images:\n"
                    f"  app: {{file: {image}, address: 0x08000000}}\n")
    return path


def test_an_image_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.bin")
    with pytest.raises(ImageError, match="FIFO"):
        update_pins(_manifest(tmp_path, image="pipe.bin"), dry_run=True)


def test_an_include_outside_the_manifests_folder_is_refused(tmp_path: Path) -> None:
    (tmp_path / "app.bin").write_bytes(b"\x01" * 16)
    with pytest.raises(ImageError, match="outside the manifest's folder"):
        update_pins(_manifest(tmp_path, "include: [/etc/passwd]\n"), dry_run=True)


def test_a_file_that_is_not_yaml_is_reported_without_its_content(tmp_path: Path) -> None:
    (tmp_path / "app.bin").write_bytes(b"\x01" * 16)
    (tmp_path / "secret.yaml").write_text(f"{SECRET}\n  - [{SECRET}\n")
    with pytest.raises(ImageError) as caught:
        update_pins(_manifest(tmp_path, "include: [secret.yaml]\n"), dry_run=True)
    assert "never-shown" not in str(caught.value)
    assert "not a valid manifest" in str(caught.value)
