"""The results schema accepts a real run's file and rejects bad data naming the file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from benchmarks.results import LatencySummary, ResultsError, Target, git_commit, load_results

SAMPLE = Path(__file__).with_name("sample_results.json")


def sample() -> dict[str, Any]:
    return json.loads(SAMPLE.read_text(encoding="utf-8"))


def load_broken(tmp_path: Path, data: object) -> ResultsError:
    broken = tmp_path / "benchmarks.json"
    broken.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ResultsError) as caught:
        load_results(broken, display_path="docs/data/benchmarks.json")
    return caught.value


def test_a_quick_runs_results_file_loads() -> None:
    results = load_results(SAMPLE)
    assert results.catalog_read is not None
    assert results.catalog_read.cached.errors == 0
    assert results.docs_build is not None
    assert results.docs_build.warm_s > 0


def test_a_missing_percentile_is_reported_with_file_and_field(tmp_path: Path) -> None:
    data = sample()
    del data["catalog_read"]["cached"]["latency_ms"]["p99"]
    error = load_broken(tmp_path, data)
    assert error.problems == [
        "docs/data/benchmarks.json: catalog_read.cached.latency_ms.p99: Field required"
    ]


def test_a_negative_rate_and_an_unknown_field_are_both_reported(tmp_path: Path) -> None:
    data = sample()
    data["write_path"]["relay"]["per_second"] = -1
    data["machine"]["gpu"] = "none"
    problems = "\n".join(load_broken(tmp_path, data).problems)
    assert "docs/data/benchmarks.json: write_path.relay.per_second:" in problems
    assert "docs/data/benchmarks.json: machine.gpu: Extra inputs are not permitted" in problems


def test_percentiles_that_decrease_are_rejected(tmp_path: Path) -> None:
    data = sample()
    data["catalog_read"]["floor"]["latency_ms"].update(p95=5.0, p99=4.0)
    (problem,) = load_broken(tmp_path, data).problems
    assert problem.startswith("docs/data/benchmarks.json: catalog_read.floor.latency_ms:")
    assert "must not decrease" in problem


def test_a_verdict_that_contradicts_its_numbers_is_rejected(tmp_path: Path) -> None:
    data = sample()
    data["catalog_read"]["targets"][0]["met"] = not data["catalog_read"]["targets"][0]["met"]
    (problem,) = load_broken(tmp_path, data).problems
    assert problem.startswith("docs/data/benchmarks.json: catalog_read.targets[0]:")


def test_a_file_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "benchmarks.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ResultsError, match=r"^invalid benchmark results:\nshown.json: not valid"):
        load_results(broken, display_path="shown.json")


def test_percentiles_are_nearest_rank_in_milliseconds() -> None:
    samples = [n / 1000 for n in range(1, 101)]  # 1 ms .. 100 ms
    summary = LatencySummary.from_samples(samples)
    assert (summary.p50, summary.p95, summary.p99, summary.max) == (50.0, 95.0, 99.0, 100.0)


def test_a_target_verdict_follows_its_direction() -> None:
    assert Target.evaluate("t", "g", 5.0, 5.0, "x", higher=True).met
    assert not Target.evaluate("t", "g", 4.9, 5.0, "x", higher=True).met
    assert not Target.evaluate("t", "g", 3.1, 3.0, "x", higher=False).met


def test_the_commit_is_read_from_a_packed_ref(tmp_path: Path) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git" / "packed-refs").write_text(f"# pack-refs\n{commit} refs/heads/main\n")
    assert git_commit(tmp_path) == commit
    assert git_commit(tmp_path / "elsewhere") is None


def test_the_docstring_example_shown_on_the_api_page_runs() -> None:
    import doctest

    import benchmarks.results

    failures, tried = doctest.testmod(benchmarks.results, optionflags=doctest.ELLIPSIS)
    assert tried > 0
    assert failures == 0
