"""Per-rank parts of one JSONL output: what a rerun finds done, how leftovers fold in, the merged order."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from brain3d.ranks import World
from brain3d.shards import ShardedJsonl


def _write(path: Path, rows: list[dict], torn: str = "") -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + torn, encoding="utf-8")


def _ids(path: Path) -> list[str]:
    return [json.loads(x)["id"] for x in path.read_text(encoding="utf-8").splitlines()]


def test_one_process_writes_the_output_itself(tmp_path):
    store = ShardedJsonl(tmp_path / "reports.jsonl", World())
    assert store.part == tmp_path / "reports.jsonl" and store.start(["a"]) == {}
    store.append([{"id": "a"}])
    assert _ids(tmp_path / "reports.jsonl") == ["a"]


def test_a_rank_appends_to_its_own_part(tmp_path):
    store = ShardedJsonl(tmp_path / "reports.jsonl", World(rank=3, size=4))
    assert store.part.name == "reports.part-00003.jsonl"


def test_leftovers_of_a_killed_run_fold_in_and_a_finished_row_beats_a_failed_retry(tmp_path):
    final = tmp_path / "reports.jsonl"
    _write(final, [{"id": "b", "error": None}, {"id": "c", "error": "bad file"}])
    _write(tmp_path / "reports.part-00000.jsonl", [{"id": "a", "error": None}, {"id": "b", "error": "later failure"}])
    _write(tmp_path / "reports.part-00001.jsonl", [{"id": "c", "error": None}], torn='{"id": "d", "err')  # killed
    store = ShardedJsonl(final, World())
    rows = store.start(["a", "b", "c", "d"])
    assert {i: r["error"] for i, r in rows.items()} == {"a": None, "b": None, "c": None}  # d was torn: not done
    assert _ids(final) == ["a", "b", "c"] and store.parts() == []  # folded in, in input order, parts gone


def test_a_torn_last_line_of_the_output_is_cut_before_anyone_appends(tmp_path):
    final = tmp_path / "reports.jsonl"
    _write(final, [{"id": "a"}], torn='{"id": "b"')
    store = ShardedJsonl(final, World())
    assert set(store.start(["a", "b"])) == {"a"}
    store.append([{"id": "b"}])
    assert _ids(final) == ["a", "b"]  # no glued line


def test_ids_of_earlier_runs_on_other_inputs_are_kept_after_this_runs_order(tmp_path):
    final = tmp_path / "reports.jsonl"
    _write(final, [{"id": "old"}, {"id": "b"}])
    store = ShardedJsonl(final, World())
    store.start(["a", "b"])
    store.append([{"id": "a"}])
    store.finish(["a", "b"])
    assert _ids(final) == ["a", "b", "old"]


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 30), size=st.integers(1, 5), data=st.data())
def test_ranks_together_write_every_id_once_in_input_order(tmp_path_factory, n, size, data):
    """Whatever each rank got done before a kill, a full rerun's merge holds every id exactly once, in order."""
    folder = tmp_path_factory.mktemp("parts")
    order = [f"id{i}" for i in range(n)]
    final = folder / "reports.jsonl"
    for rank in range(size):  # an interrupted run: each rank wrote a prefix of its shard
        mine = list(World(rank, size).shard(order))
        done = data.draw(st.integers(0, len(mine)))
        ShardedJsonl(final, World(rank, size)).append([{"id": i} for i in mine[:done]])
    done_ids = set(ShardedJsonl(final, World()).start(order))
    for rank in range(size):  # the rerun: the remaining ids, sharded over the same world
        todo = [i for i in order if i not in done_ids]
        ShardedJsonl(final, World(rank, size)).append([{"id": i} for i in World(rank, size).shard(todo)])
    ShardedJsonl(final, World()).finish(order)
    assert (_ids(final) if final.is_file() else []) == order
