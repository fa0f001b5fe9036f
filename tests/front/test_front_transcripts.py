"""Transcript-aware processing: the shapes users have, the alignment to ASR words, and every
bad input of issue 12 (each with its message or documented fallback).  ASR words and
diarization turns are built by hand from a known script, so every time is known."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.archive import read_manifest
from pipelines.speech.transcript_formats import TranscriptError, infer_role, read_transcript
from pipelines.speech.transcripts import TranscriptStatus, align_transcript, call_speech, tokens
from pipelines.types import Turn, Word

SCRIPT = [  # (speaker, role, text)
    ("Operator", "operator", "Good day and welcome to the Acme first quarter earnings conference call."),
    ("Jane Doe", "executive", "Thank you. Revenue grew twelve percent this quarter and margins expanded again. "
                              "We are raising our outlook for the full year."),
    ("John Roe", "executive", "Operating cash flow was four hundred million dollars. Capital spending was flat."),
    ("Operator", "operator", "Our first question comes from Mia Chen with Goldman Sachs."),
    ("Mia Chen", "analyst", "Thanks. Can you talk about pricing in Europe and the impact of the currency?"),
    ("Jane Doe", "executive", "Sure. Pricing held up well in Europe. Currency was a headwind of about two points."),
]


def asr_of(script, wpm_s: float = 0.3, gap_s: float = 0.8, drop_every: int = 9, start: float = 1.0):
    """ASR words of the script with every ``drop_every``-th word misrecognised, and the true
    diarization turns (speaker label = index of the first appearance of the name)."""
    words, turns, t = [], [], start
    labels = {}
    for k, (spk, _, text) in enumerate(script):
        lab = labels.setdefault(spk, f"SPEAKER_{len(labels):02d}")
        t0 = t
        for i, w in enumerate(text.split()):
            shown = "uh" if (len(words) % drop_every == drop_every - 1) else w
            words.append(Word(shown, t, t + wpm_s * 0.9, 0.9))
            t += wpm_s
        turns.append(Turn(t0, t, lab))
        t += gap_s
    return words, turns


def write(tmp_path, name: str, data, encoding: str = "utf-8"):
    p = tmp_path / name
    (p.write_bytes(data) if isinstance(data, bytes) else p.write_text(data, encoding=encoding))
    return p


def plain(script) -> str:
    return "\n\n".join(f"{s}: {t}" for s, _, t in script)


def vendor(script) -> str:
    titles = {"Jane Doe": "Acme Corp - CEO", "John Roe": "Acme Corp - Chief Financial Officer",
              "Mia Chen": "Goldman Sachs - Analyst"}
    out = ["Acme Corp (ACME) Q1 2019 Earnings Call", "", "Presentation", ""]
    for k, (s, _, t) in enumerate(script):
        if k == 4:
            out += ["Question-and-Answer Session", ""]
        out += ["Operator" if s == "Operator" else f"{s} - {titles[s]}", t, ""]
    return "\n".join(out)


def participants(script) -> str:
    """Seeking Alpha's layout: participant lists, then each turn under its speaker's name alone
    (the second turn in two paragraphs)."""
    out = ["Acme Corp. (NYSE:ACME) Q1 2019 Earnings Conference Call April 25, 2019 8:30 AM ET", "",
           "Executives", "Jane Doe - President and Chief Executive Officer", "John Roe - Executive Vice President and CFO",
           "", "Analysts", "Mia Chen - Goldman Sachs", "Karl-Heinz Weber - Deutsche Bank - Managing Director", ""]
    for k, (s, _, t) in enumerate(script):
        if k == 4:
            out += ["Question-and-Answer Session", ""]
        paragraphs = t.split(". ", 1) if k == 1 else [t]
        out += [s, ""] + [".\n\n".join(paragraphs), ""]
    return "\n".join(out)


def streetevents(script) -> str:
    """Thomson Reuters StreetEvents' layout: participant lists, then turn headers
    ``Name,  Company - Title  [n]`` between rule lines (its own "Participiants" typo kept)."""
    rule, thin = "=" * 80, "-" * 80
    titles = {"Jane Doe": "Acme Corp - CEO", "John Roe": "Acme Corp - Chief Financial Officer",
              "Mia Chen": "Goldman Sachs - Analyst"}
    out = ["Q1 2019 Acme Corp Earnings Call", rule, "Corporate Participants", rule, " * Jane Doe", "   Acme Corp - CEO",
           "", rule, "Conference Call Participiants", rule, " * Mia Chen", "   Goldman Sachs - Analyst", "", rule,
           "Presentation", thin]
    for k, (s, _, t) in enumerate(script):
        if k == 4:
            out += [rule, "Questions and Answers", thin]
        out += [f"Operator  [{k + 1}]" if s == "Operator" else f"{s},  {titles[s]}    [{k + 1}]", thin, " " + t, thin]
    return "\n".join(out)


@pytest.mark.parametrize("shape", ["text", "vendor", "streetevents", "participants", "csv", "json"])
def test_shapes_give_the_same_turns_and_roles(tmp_path, shape):
    if shape == "text":
        p = write(tmp_path, "t.txt", "\n\n".join(f"{s} ({r}): {t}" if s == "Mia Chen" else f"{s}: {t}"
                                                 for s, r, t in SCRIPT))
    elif shape in ("vendor", "streetevents", "participants"):
        p = write(tmp_path, "t.txt", {"vendor": vendor, "streetevents": streetevents, "participants": participants}[shape](SCRIPT))
    elif shape == "csv":
        p = write(tmp_path, "t.csv", "speaker,role,text\n" + "\n".join(f'{s},{r},"{t}"' for s, r, t in SCRIPT))
    else:
        p = write(tmp_path, "t.json", json.dumps([{"speaker": s, "role": r, "text": t} for s, r, t in SCRIPT]))
    tr = read_transcript(p, "earnings_call")
    assert tr.shape == {"streetevents": "vendor"}.get(shape, shape) and tr.labelled
    got = [(t.speaker, t.text) for t in tr.turns]
    assert got == [(s, t) for s, _, t in SCRIPT]
    roles = {t.speaker: t.role for t in tr.turns}
    if shape != "text":     # the title, the list or the role column decides
        assert roles == {s: r for s, r, _ in SCRIPT}
    if shape in ("vendor", "streetevents", "participants"):
        assert tr.has_qa_marker and [t.qa for t in tr.turns] == [False] * 4 + [True] * 2
        assert {t.speaker: t.affiliation for t in tr.turns}["Mia Chen"] == "Goldman Sachs"


def test_participant_lists_decide_roles_and_firms(tmp_path):
    """An analysts' list makes a bank's Managing Director an analyst (the title alone would say
    executive); a name line of someone not listed is text, not a turn."""
    doc = participants(SCRIPT).replace("Mia Chen\n\nThanks.", "Karl-Heinz Weber\n\nThanks.")
    doc = doc.replace("Capital spending was flat.", "Capital spending was flat.\n\nJohn Smith\n\nThat is all.")
    tr = read_transcript(write(tmp_path, "t.txt", doc), "earnings_call")
    who = {t.speaker: (t.role, t.affiliation, t.title) for t in tr.turns}
    assert who["Karl-Heinz Weber"] == ("analyst", "Deutsche Bank", "Managing Director")
    assert who["John Roe"] == ("executive", "", "Executive Vice President and CFO")
    assert "John Smith" not in who and tr.turns[2].text.endswith("flat. John Smith That is all.")


def test_a_footnote_mark_is_not_a_streetevents_header(tmp_path):
    doc = plain(SCRIPT).replace("for the full year.", "for the full year.\nSee the appendix  [1]")
    doc = doc.replace("was flat.", "was flat.\nSee the cash flow statement  [2]\nExcluding the one-off charge  [3]")
    tr = read_transcript(write(tmp_path, "t.txt", doc), "earnings_call")
    assert tr.shape == "text" and [t.speaker for t in tr.turns] == [s for s, _, _ in SCRIPT]
    assert "See the appendix [1]" in tr.turns[1].text


def test_roles_from_titles_and_press_conference_names():
    assert infer_role("Jane Doe", "President and CEO", "Acme", "earnings_call") == "executive"
    assert infer_role("Sam Lee", "Director of Investor Relations", "Acme", "earnings_call") == "executive"
    assert infer_role("Mia Chen", "Analyst", "Goldman Sachs", "earnings_call") == "analyst"
    assert infer_role("Operator", "", "", "earnings_call") == "operator"
    assert infer_role("Chair Powell", "", "", "press_conference") == "chair"
    assert infer_role("Howard Schneider", "", "", "press_conference") == "journalist"
    assert infer_role("Jane Doe", "", "", "earnings_call") == ""          # unknown: the heuristics decide


def test_encodings_latin1_and_bom(tmp_path):
    text = "Jos\u00e9 Mart\u00ednez: Se\u00f1ales claras. Revenue grew.\n"
    for name, data in [("l1.txt", text.encode("latin-1")), ("bom.txt", b"\xef\xbb\xbf" + text.encode("utf-8"))]:
        tr = read_transcript(write(tmp_path, name, data))
        assert tr.turns[0].speaker == "Jos\u00e9 Mart\u00ednez" and tr.turns[0].text.startswith("Se\u00f1ales")
        assert tr.encoding == ("cp1252" if name == "l1.txt" else "utf-8-sig")


def test_empty_and_unreadable_transcripts(tmp_path):
    with pytest.raises(TranscriptError, match="empty"):
        read_transcript(write(tmp_path, "e.txt", "  \n\n "))
    with pytest.raises(TranscriptError, match="needs 'speaker' and 'text'"):
        read_transcript(write(tmp_path, "bad.csv", "who,what\na,b\n"))


def test_alignment_times_the_transcript_words():
    words, turns = asr_of(SCRIPT)
    tr = read_transcript_from(SCRIPT)
    al = align_transcript(tr, words)
    assert al.asr_coverage > 0.8 and al.transcript_coverage > 0.8
    # every transcript token's time is within one word of the true time of that word
    true = np.array([w.start_s for w in words])
    assert np.nanmax(np.abs(al.start - true)) < 0.31
    assert not np.isnan(al.start).any()


def test_speaker_changes_keep_a_repeated_sentence_in_its_turn(tmp_path):
    """Four turns say the same sentence (A, A, B, A); the ASR missed A's second one. Every way
    of dropping one of four equal sentences costs the same to the token alignment alone, which
    put B's words on the audio of A's next sentence (and dropped B's own words). With the
    diarized turns a change of speaker is a token on each side, and B's words get B's time."""
    sentence = "kids are talking by the door"
    script = [("Ann Lee", "executive", sentence), ("Ann Lee", "executive", sentence),
              ("Bob Roy", "analyst", sentence), ("Ann Lee", "executive", sentence)]
    words, turns = asr_of(script, drop_every=1000)
    said = [w for k, w in enumerate(words) if not 6 <= k < 12]          # A's second sentence not recognised
    tr = read_transcript(write(tmp_path, "t.txt", "\n\n".join(f"{s}: {t}" for s, _, t in script)))
    b = turns[2]
    for kw, inside in (({}, False), ({"turns": turns}, True)):
        al = align_transcript(tr, said, **kw)
        bob = slice(12, 18)                                                   # B's six tokens
        assert (np.nanmin(al.start[bob]) >= b.start_s - 0.01 and np.nanmax(al.end[bob]) <= b.end_s + 0.01) == inside
    assert al.anchored[bob].all() and al.asr_coverage == 1.0


def test_sentences_tile_their_turn_and_turn_edges_follow_the_voice(tmp_path):
    """A's two sentences are 1 s apart: A holds the floor, so the first sentence's segment ends
    where the second begins. Each turn's outer edges move out to its diarized voice's turn edges
    when those are within ``snap_s`` (0.5 s) of the words, and stay at the words otherwise (never
    cutting a word)."""
    a1, a2, b1 = "Revenue grew twelve percent this quarter.", "We are raising our outlook.", "Can you talk about Europe?"
    words, t = [], 1.0
    for text, pause in ((a1, 1.0), (a2, 0.8), (b1, 0.0)):
        for w in text.split():
            words.append(Word(w.strip(".?"), t, t + 0.27, 0.9))
            t += 0.3
        t += pause
    a_end, b_start, b_end = words[10].end_s, words[11].start_s, words[-1].end_s
    p = write(tmp_path, "t.txt", f"Ann Lee: {a1} {a2}\n\nBob Roy: {b1}\n")
    for pad, snapped in ((0.3, True), (0.8, False), (-0.3, False)):    # -0.3: edges move out, never in
        turns = [Turn(1.0 - pad, a_end + pad, "SPEAKER_00"), Turn(b_start - pad, b_end + pad, "SPEAKER_01")]
        s1, s2, s3 = call_speech(words, turns, {}, "earnings_call", transcript_path=str(p)).segments
        assert s1.end_s == pytest.approx(s2.start_s) == pytest.approx(words[6].start_s)   # tiled: A's pause is A's
        assert s2.end_s == pytest.approx(a_end + pad if snapped else a_end)
        assert s1.start_s == pytest.approx(1.0 - pad if snapped else 1.0)
        assert (s3.start_s, s3.end_s) == pytest.approx((b_start - pad, b_end + pad) if snapped else (b_start, b_end))
        assert [w.start_s for w in s1.words + s2.words + s3.words] == [w.start_s for w in words]   # words keep their times


def test_asr_segments_make_turns_of_one_voice():
    """Without a transcript, one voice's consecutive sentences tile its turn when the pause is
    under 3 s (``MAX_PAUSE_S``), not across a longer one, and turn edges snap to the voice's
    diarized edges."""
    from pipelines.speech.transcripts import segments_from_asr

    words, t = [], 1.0
    for text, pause in (("Revenue grew twelve percent.", 1.0), ("Margins expanded.", 4.0), ("We are raising it.", 0.0)):
        for w in text.split():
            words.append(Word(w, t, t + 0.27, 0.9))
            t += 0.3
        t += pause
    turns = [Turn(0.8, words[5].end_s + 0.2, "SPEAKER_00"), Turn(words[6].start_s - 0.2, words[-1].end_s + 0.2, "SPEAKER_00")]
    s1, s2, s3 = segments_from_asr(words, turns, "earnings_call")[0]
    assert s1.end_s == pytest.approx(s2.start_s) == pytest.approx(words[4].start_s)      # a 1 s pause: tiled
    assert s2.end_s == pytest.approx(words[5].end_s + 0.2) and s3.start_s == pytest.approx(words[6].start_s - 0.2)
    assert s3.start_s - s2.end_s > 3.0                                                     # a 4 s pause: not tiled
    assert s1.start_s == pytest.approx(0.8) and s3.end_s == pytest.approx(words[-1].end_s + 0.2)


def test_diarized_speech_without_words_becomes_a_segment_without_text():
    """Without a transcript, a diarized turn the ASR gave no words for (at least 0.5 s,
    ``untranscribed_min_s``) is a segment with no text, in time order; a shorter one is not, and
    the part of a turn that a sentence covers is not repeated."""
    from pipelines.speech.transcripts import segments_from_asr

    words = [Word(w, 1.0 + 0.3 * i, 1.27 + 0.3 * i, 0.9) for i, w in enumerate("Revenue grew twelve percent.".split())]
    turns = [Turn(0.9, 2.3, "SPEAKER_00"), Turn(2.3, 3.5, "SPEAKER_00"), Turn(4.0, 5.0, "SPEAKER_01"),
             Turn(6.0, 6.3, "SPEAKER_02")]
    segments, speakers = segments_from_asr(words, turns, "earnings_call")
    got = [(s.speaker, s.start_s, s.end_s, s.text) for s in segments]
    assert got == [("SPEAKER_00", 0.9, 2.3, "Revenue grew twelve percent."), ("SPEAKER_00", 2.3, 3.5, ""),
                   ("SPEAKER_01", 4.0, 5.0, "")]
    assert [s.segment_id for s in segments] == [0, 1, 2] and {s.speaker for s in speakers} == {"SPEAKER_00", "SPEAKER_01"}


def read_transcript_from(script, tmp=None):
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp())
    return read_transcript(write(d, "t.txt", "\n\n".join(f"{s} ({r}): {t}" for s, r, t in script)))


def test_call_from_transcript_names_roles_sections_and_voices(tmp_path):
    words, turns = asr_of(SCRIPT)
    p = write(tmp_path, "t.txt", "\n\n".join(f"{s} ({r}): {t}" for s, r, t in SCRIPT))
    emb = {f"SPEAKER_{i:02d}": np.full(4, float(i)) for i in range(4)}
    out = call_speech(words, turns, emb, "earnings_call", transcript_path=str(p))
    assert out.transcript["status"] == TranscriptStatus.ALIGNED.value and not out.warning
    names = {s.speaker: (s.name, s.role) for s in out.speakers}
    assert sorted(names.values()) == sorted({(s, r) for s, r, _ in SCRIPT})
    assert all(s.text_source == "transcript" for s in out.segments)
    # every word sits inside its speaker's true turn
    truth = {lab: t for lab, t in zip([t.speaker for t in turns], turns)}
    label_of = {name: lab for (name, _), lab in zip([(s, r) for s, r, _ in SCRIPT], [t.speaker for t in turns])}
    for seg in out.segments:
        name = names[seg.speaker][0]
        spans = [t for t, (s, _, _) in zip(turns, SCRIPT) if s == name]
        assert any(t.start_s - 0.35 <= seg.start_s and seg.end_s <= t.end_s + 0.35 for t in spans), seg
    assert {s.section for s in out.segments if names[s.speaker][0] == "Mia Chen"} == {"qa"}
    # each transcript speaker carries the embedding of the diarized voice it overlaps
    for s in out.speakers:
        lab = label_of[s.name]
        np.testing.assert_array_equal(out.embeddings[s.speaker], emb[lab])
    assert truth and out.disagreements == []


def test_transcript_of_another_call_falls_back_to_asr(tmp_path):
    words, turns = asr_of(SCRIPT)
    other = [("Chair Powell", "chair", "The committee decided to raise the target range for the federal funds rate. "
              "Inflation remains near our symmetric objective and the labor market is strong."),
             ("Howard Schneider", "journalist", "Howard Schneider with Reuters. What about the balance sheet runoff?")]
    p = write(tmp_path, "other.txt", plain(other))
    out = call_speech(words, turns, {}, "earnings_call", transcript_path=str(p))
    assert out.transcript["status"] == "rejected" and "another call" in out.transcript["reason"]
    assert out.warning.startswith("transcript not used, ASR instead") and str(p) in out.warning
    assert all(s.text_source == "asr" for s in out.segments) and len(out.segments) > 3


def test_empty_transcript_falls_back_with_a_reason(tmp_path):
    words, turns = asr_of(SCRIPT)
    p = write(tmp_path, "empty.txt", "")
    out = call_speech(words, turns, {}, "earnings_call", transcript_path=str(p))
    assert out.transcript["status"] == "rejected" and "empty" in out.transcript["reason"]
    assert out.segments and out.speakers


def test_speakers_who_never_speak_and_audio_after_the_transcript(tmp_path):
    spoken = SCRIPT[:5]
    words, turns = asr_of(spoken + [("Operator", "operator", "This concludes today's conference call. Thank you for "
                                                              "participating. You may now disconnect.")])
    silent = ("Board Member", "executive", "This written statement was filed with the transcript but was never read "
              "aloud on the call by anyone at any time during the whole event today.")
    script = spoken[:2] + [silent] + spoken[2:]
    p = write(tmp_path, "t.txt", "\n\n".join(f"{s} ({r}): {t}" for s, r, t in script))
    out = call_speech(words, turns, {}, "earnings_call", transcript_path=str(p))
    assert out.transcript["status"] == "aligned"
    assert out.transcript["turns_not_spoken"] == 1 and "not found in the audio" in out.transcript["reason"]
    assert "Board Member" not in {s.name for s in out.speakers}
    tail = [s for s in out.segments if s.text_source == "asr"]
    assert tail and "disconnect" in " ".join(s.text for s in tail).lower() and out.transcript["tail_s"] > 3
    ops = {s.speaker for s in out.speakers if s.role == "operator"}
    assert {s.speaker for s in tail} <= ops        # the operator's closing, back on the operator's label


def test_unlabelled_transcript_keeps_the_diarized_speakers(tmp_path):
    words, turns = asr_of(SCRIPT)
    p = write(tmp_path, "plain.txt", "\n".join(t for _, _, t in SCRIPT))
    out = call_speech(words, turns, {}, "earnings_call", transcript_path=str(p))
    assert out.transcript["status"] == TranscriptStatus.UNLABELLED.value
    assert {s.speaker for s in out.speakers} == {t.speaker for t in turns}
    text = " ".join(s.text for s in out.segments)
    assert "uh" not in tokens(text) and "twelve percent" in text     # the transcript's words, not the ASR errors


def test_manifest_transcript_outside_the_archive_or_missing(tmp_path):
    arch = tmp_path / "a"
    arch.mkdir()
    (arch / "x.wav").write_bytes(b"RIFF")
    (tmp_path / "secret.txt").write_text("x")
    rows = ["file,event_type,entity,event_time,transcript",
            "x.wav,earnings_call,ACME,2019-01-01T00:00:00Z,../secret.txt",
            "x.wav,earnings_call,ACME,2019-01-01T00:00:00Z,/etc/passwd",
            "x.wav,earnings_call,ACME,2019-01-01T00:00:00Z,missing.txt"]
    (arch / "manifest.csv").write_text("\n".join(rows) + "\n")
    a, b, c = read_manifest(arch)
    assert "points outside the archive" in a.error and "points outside the archive" in b.error
    assert "transcript not found" in c.error and "missing.txt" in c.error


# -- a demo call with its transcript, through the whole flow ----------------------------------------

@pytest.fixture(scope="module")
def with_transcript(tmp_path_factory, prefect_harness, models):
    from front_paths import copy_demo_call
    from pipelines.flows.calls import process_archive

    archive = copy_demo_call(tmp_path_factory.mktemp("archive"), date="20161214", transcript=True)
    cat = tmp_path_factory.mktemp("catalog")
    return archive, cat, process_archive(str(archive), str(cat), show_progress=False)


def test_demo_call_with_its_transcript(with_transcript):
    """Names, roles, outlets, word attribution and turn boundaries against the generator's reference."""
    import sys

    from data_catalog.store import Catalog
    from front_paths import REPO

    sys.path.insert(0, str(REPO / "benchmarks"))
    from transcript_demo import evaluate_call

    _, cat, summary = with_transcript
    (out,) = summary.outcomes
    assert out.status == "processed" and not out.warning
    c = Catalog(cat)
    e = evaluate_call(c, out.call_id, "fomc_press_conference_20161214")
    assert e["names_roles_ok"], e["missing"]
    assert e["words_ok"] >= 0.98 * e["words_in_reference"]          # measured: 302 of 302
    assert np.median(e["start_err"] + e["end_err"]) <= 0.3           # measured: 0.16-0.19 s
    spk = c.read("speakers", out.call_id).to_pandas().set_index("name")
    assert spk.loc["Harriet Torry", "affiliation"] == "Wall Street Journal" and spk.loc["Chair Yellen", "role"] == "chair"
    segs = c.read("segments", out.call_id).to_pandas()
    assert set(segs["text_source"]) == {"transcript"}
    tr = c.read("transcripts", out.call_id).to_pandas().iloc[0]
    assert tr["status"] == "aligned" and tr["asr_coverage"] > 0.7 and tr["shape"] == "text"


def test_changed_transcript_reprocesses_and_a_wrong_one_falls_back(with_transcript, prefect_harness):
    from data_catalog.store import Catalog
    from pipelines.flows.calls import process_archive

    archive, cat, first = with_transcript
    again = process_archive(str(archive), str(cat), show_progress=False)
    assert [o.status for o in again.outcomes] == ["skipped"]
    path = archive / "transcripts" / "fomc_press_conference_20161214.txt"
    path.write_text("Chair Powell (chair): The committee decided to raise the target range for the federal funds rate "
                    "by a quarter point. Household spending and business investment grew strongly this year.\n\n"
                    "Howard Schneider (journalist): Howard Schneider with Reuters. What about the balance sheet?\n")
    third = process_archive(str(archive), str(cat), show_progress=False)
    (out,) = third.outcomes
    assert out.status == "processed" and "transcript not used, ASR instead" in out.warning and str(path) in out.warning
    c = Catalog(cat)
    tr = c.read("transcripts", out.call_id).to_pandas().iloc[0]
    assert tr["status"] == "rejected" and "another call" in tr["reason"]
    assert set(c.read("segments", out.call_id).to_pandas()["text_source"]) == {"asr"}
