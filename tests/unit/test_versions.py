"""`tiers version` says what is inside: tiers, the commit, Python, Java, Spark and the jars."""

from __future__ import annotations

import json
import pathlib

import pytest

from tiers import cli, versions
from tiers.runtime import sparkjars


def test_it_names_every_part_the_jobs_run(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(sparkjars.ENV, "/opt/x/spark-sql-kafka-0-10_2.13-4.2.0.jar")
    assert cli.main(["version", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert set(found) == {"tiers", "commit", "python", "java", "spark", "jars", "jars_dir"}
    assert found["spark"] == "4.2.0"
    assert found["jars"] == "spark-sql-kafka-0-10_2.13-4.2.0.jar"
    assert found["jars_dir"] == "/opt/x"


def test_in_the_image_the_commit_comes_from_its_build_info(tmp_path: pathlib.Path) -> None:
    info = tmp_path / "build-info.json"
    info.write_text('{"commit": "0123456789ab"}')
    assert versions.collect(info)["commit"] == "0123456789ab"


def test_the_text_form_is_one_aligned_line_per_part() -> None:
    text = versions.render({"tiers": "0.1.0", "java": "openjdk 17", "jars_dir": ""})
    assert text.splitlines() == ["tiers     0.1.0", "java      openjdk 17"]
