"""What a user notices: wording, defaults, warnings, versions, completion."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from runner.cli import build_parser, main
from runner.completion import completion_script

ROOT = Path(__file__).resolve().parent.parent.parent


def test_transports_kind_prints_yaml_values_and_every_default(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["transports", "stlink"]) == 0
    out = capsys.readouterr().out
    assert "clock-khz: integer (default 1800)" in out
    assert "connect: normal | under-reset | hot-plug (default normal)" in out
    assert main(["transports", "uart"]) == 0
    out = capsys.readouterr().out
    assert "invert-boot0: boolean (default false)" in out
    assert "False" not in out and "True" not in out
    assert main(["transports", "dfu"]) == 0
    assert "vid: integer or string (default 0x0483)" in capsys.readouterr().out


def test_dfu_pack_help_shows_the_real_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["dfu-pack", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "USB vendor id in the suffix (default 0xFFFF: any; ST's is 0x0483)" in out


def _f411_manifest(folder: Path, *, preserve: bool) -> Path:
    image = ROOT / "manifests" / "images" / "stlink-f411.bin"
    keep = ", preserve: true" if preserve else ""
    path = folder / "board.yaml"
    path.write_text(
        "manifest: 1\nname: board\nsimulate: true\n"
        f"images:\n  app: {{file: {image}, address: 0x08000000{keep}}}\n"
        "transports:\n  probe: {kind: stlink}\n"
        "recipes:\n  flash: [{erase: {scope: used}}, {write: [app]}, {verify: {}}]\n"
        "devices:\n  board: {chip: stm32f411re, transport: probe, recipe: flash}\n")
    return path


def test_validate_shows_the_plans_warnings(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    path = _f411_manifest(tmp_path, preserve=False)
    assert main(["validate", str(path)]) == 0
    captured = capsys.readouterr()
    assert "warning: board: sector 0x08008000 (16 KiB) of stm32f411re will be erased whole" \
        in captured.err
    assert captured.out == f"{path}: valid (1 device, 1 image, 1 link)\n"
    assert main(["validate", "--json", str(path)]) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert any("bytes are lost" in warning for warning in report["warnings"])
    assert main(["validate", str(_f411_manifest(tmp_path, preserve=True))]) == 0
    assert "warning" not in capsys.readouterr().err


#: The single-board examples (a station line's warnings belong to its inventory).
BOARD_EXAMPLES = sorted(path for path in (ROOT / "manifests").glob("*.yaml")
                        if path.name != "line-stations.yaml")


@pytest.mark.parametrize("example", BOARD_EXAMPLES, ids=lambda path: path.name)
def test_the_single_board_examples_carry_no_warning(example: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(example)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_one_problem_says_fix_it_and_nothing_about_validating(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("manifest: 1\nname: typo\ndevicez: {}\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.rstrip().endswith("1 problem found; fix it")
    assert "validate again" not in err


def test_no_simulate_runs_a_simulated_example_for_real(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", str(ROOT / "manifests" / "uart-f103.yaml"), "--no-simulate"]) == 0
    assert "simulate: off" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", str(ROOT / "manifests" / "uart-f103.yaml"), "--simulate",
              "--no-simulate"])
    assert exit_info.value.code == 2


def test_version_names_python_and_the_link_libraries(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("flashrunner 0.")
    for name in ("python", "pyusb", "pyserial", "python-can", "libusb"):
        assert f"\n  {name} " in out


def _complete(script: str, *words: str) -> list[str]:
    line = " ".join(f'"{word}"' for word in words)
    result = subprocess.run(
        ["bash", "-c", f'{script}\nCOMP_WORDS=({line}); COMP_CWORD={len(words) - 1}; '
                       f'_flashrunner; printf "%s\\n" "${{COMPREPLY[@]}}"'],
        capture_output=True, text=True, timeout=30, check=True)
    return result.stdout.split()


def test_bash_completion_knows_commands_options_choices_and_chips() -> None:
    script = completion_script(build_parser(), "bash")
    assert _complete(script, "flashrunner", "fl") == ["flash"]
    assert "--skip-unchanged" in _complete(script, "flashrunner", "flash", "fw.hex", "--s")
    assert _complete(script, "flashrunner", "run", "m.yaml", "--color", "") == \
        ["auto", "always", "never"]
    assert _complete(script, "flashrunner", "read", "x.bin", "--chip", "stm32h743z") == \
        ["stm32h743zi"]
    assert "stlink" in _complete(script, "flashrunner", "erase", "--link", "")


def test_zsh_completion_loads_the_bash_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "zsh"]) == 0
    out = capsys.readouterr().out
    assert "bashcompinit" in out and "complete -o filenames -F _flashrunner flashrunner" in out


LINE = ROOT / "tests" / "cli" / "line.yaml"


def test_log_file_expands_run_id_and_time_like_log_file(tmp_path: Path) -> None:
    assert main(["run", str(LINE), "-q", "--log-file",
                 str(tmp_path / "{name}-{run_id}-{time}.jsonl")]) == 0
    (log,) = tmp_path.glob("cli-line-*.jsonl")
    run_id = json.loads(log.read_text().splitlines()[0])["run_id"]
    assert log.name.startswith(f"cli-line-{run_id}-") and "{" not in log.name


def test_log_file_that_is_a_directory_or_under_a_file_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(LINE), "-q", "--log-file", str(tmp_path)]) == 3
    assert f"log file {tmp_path} is a directory" in capsys.readouterr().err
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert main(["run", str(LINE), "-q", "--log-file", str(blocker / "run.jsonl")]) == 3
    assert f"{blocker} is a file, not a folder" in capsys.readouterr().err


def test_the_erase_line_names_what_was_erased_and_what_was_kept() -> None:
    from runner.console import _step_text

    used = {"scope": "used", "blocks": 2, "preserved_bytes": 40960,
            "ranges": [["0x08000000", "0x08004000"], ["0x08010000", "0x08020000"]]}
    assert _step_text("erase", used, 0) == \
        "erase ok: 2 units 0x08000000..0x08004000, 0x08010000..0x08020000; kept 40.0 KiB " \
        "around the images"
    adjacent = {"scope": "used", "blocks": 2,
                "ranges": [["0x08000000", "0x08000400"], ["0x08000400", "0x08000800"]]}
    assert _step_text("erase", adjacent, 0) == "erase ok: 2 units 0x08000000..0x08000800"
    assert _step_text("erase", {"scope": "mass"}, 0) == "erase ok: the whole flash"


@pytest.mark.parametrize("words", [["run", "--help"], ["run"], ["run", "line.yaml", "--bogus"]])
def test_run_parses_alike_with_only_its_own_parser_built(
        words: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    said = []
    for parser in (build_parser(), build_parser("run")):
        with pytest.raises(SystemExit) as stopped:
            parser.parse_args(words)
        said.append((stopped.value.code, capsys.readouterr()))
    assert said[0] == said[1]
    assert build_parser("run").parse_args(["run", "m.yaml", "-q"]) == \
        build_parser().parse_args(["run", "m.yaml", "-q"])
