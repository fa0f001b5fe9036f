"""The catalog-wide voice-linking step: nearest identity or a new one, ids never change once
given, two speakers of one call never share an id, and the order in which workers finished
does not matter."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
from catalog_rows import call_row, speaker_rows

from data_catalog import Catalog
from pipelines.voices import link_voices_catalog

RNG = np.random.default_rng(3)
PEOPLE = {p: RNG.normal(size=64) for p in "ABCDE"}


def _voice(person: str, noise: float = 0.15) -> list[float]:
    v = PEOPLE[person] + noise * np.linalg.norm(PEOPLE[person]) / 8 * RNG.normal(size=64)
    return v.tolist()


def _write(cat: Catalog, cid: str, people: list[str], day: int) -> None:
    spk = [dict(speaker_rows(cid)[0], speaker=f"S{k}", voice_id="") for k in range(len(people))]
    cat.write("speakers", cid, spk)
    cat.write("voices", cid, [{"call_id": cid, "speaker": f"S{k}", "voice_id": "", "embedding_model": "m",
                               "embedding": _voice(p)} for k, p in enumerate(people)])
    row = call_row(cid)[0]
    cat.write("calls", cid, [dict(row, event_time=datetime(2020, 1, 1, tzinfo=timezone.utc) + timedelta(days=day))])


CALLS = {"c1": ["A", "B"], "c2": ["B", "C"], "c3": ["A", "C", "D"], "c4": ["D", "E", "A"]}


def _ids(cat: Catalog) -> dict[tuple[str, str], str]:
    return {(r["call_id"], r["speaker"]): r["voice_id"] for r in cat.read("voices").to_pylist()}


def _truth() -> dict[tuple[str, str], str]:
    return {(c, f"S{k}"): p for c, people in CALLS.items() for k, p in enumerate(people)}


def test_links_follow_the_person_and_never_change(tmp_path):
    cat = Catalog(tmp_path / "cat")
    for day, cid in enumerate(["c1", "c2"]):
        _write(cat, cid, CALLS[cid], day)
    first = link_voices_catalog(cat)
    assert (first.speakers, first.joined, first.identities) == (4, 1, 3)
    before = _ids(cat)
    for day, cid in enumerate(["c3", "c4"], start=2):
        _write(cat, cid, CALLS[cid], day)
    second = link_voices_catalog(cat)
    assert (second.speakers, second.joined, second.identities) == (6, 4, 5)
    ids = _ids(cat)
    assert {k: ids[k] for k in before} == before  # ids given earlier are unchanged
    truth = _truth()
    # one id per person and one person per id
    assert len({ids[k] for k in ids}) == len(set(truth.values()))
    assert all((ids[a] == ids[b]) == (truth[a] == truth[b]) for a in ids for b in ids)
    assert ids[("c1", "S0")] == "v_c1_S0"  # an identity is named after its first appearance
    speakers = {(r["call_id"], r["speaker"]): r["voice_id"] for r in cat.read("speakers").to_pylist()}
    assert speakers == ids
    assert link_voices_catalog(cat).speakers == 0  # nothing left to link


def test_the_order_in_which_calls_were_written_does_not_matter(tmp_path):
    a, b = Catalog(tmp_path / "a"), Catalog(tmp_path / "b")
    for day, cid in enumerate(CALLS):
        _write(a, cid, CALLS[cid], day)
    for day, cid in reversed(list(enumerate(CALLS))):  # another worker finished first
        _write(b, cid, CALLS[cid], day)
    link_voices_catalog(a)
    link_voices_catalog(b)
    assert _ids(a) == _ids(b)


def test_two_speakers_of_one_call_never_share_an_id(tmp_path):
    cat = Catalog(tmp_path / "cat")
    _write(cat, "c1", ["A"], 0)
    link_voices_catalog(cat)
    _write(cat, "c2", ["A", "A"], 1)  # the same voice twice in one call (a diarizer split)
    link_voices_catalog(cat)
    ids = _ids(cat)
    assert ids[("c2", "S0")] != ids[("c2", "S1")]
    assert ids[("c1", "S0")] in (ids[("c2", "S0")], ids[("c2", "S1")])
