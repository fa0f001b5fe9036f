"""Table schemas of the speechfin catalog (see DESIGN.md, "Tables").

Each table is a set of Parquet *parts*; one part holds the rows of one partition key
(a call, a ticker, a study).  The schema lists the required columns and their Arrow
types; tables that carry model-dependent columns (``emotions``: ``p_<class>``) accept
extra columns with declared prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

UTC_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class TableSchema:
    name: str
    schema: pa.Schema
    partition_by: str
    extra_prefixes: tuple[str, ...] = field(default_factory=tuple)
    description: str = ""
    optional: tuple[str, ...] = ()   # columns added in later versions: NULL when a writer leaves them out
    # a few rows per call: a query joining it reads it into memory first (data_catalog.query), which
    # gives DuckDB's join planner real distinct counts (on Parquet it guessed speakers' call_id unique
    # and built a 24M-row intermediate: the analyst join took 2.4 s instead of 0.4 s)
    dimension: bool = False

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)


def _s(*fields: tuple[str, pa.DataType]) -> pa.Schema:
    return pa.schema([pa.field(n, t) for n, t in fields])


S, F, I, B = pa.string(), pa.float64(), pa.int64(), pa.bool_()

# parts written with every call, before its ``calls`` part (pipelines/tables.py::call_rows); the
# emotion tables (emotions, trajectories, call_features) may come later, when the SER model changes
REQUIRED_CALL_PARTS = ("speakers", "segments", "words", "voices")

# role x section cells of ``call_features`` (<role>_<section>_tone, <role>_<section>_neg_share)
CALL_ROLE_SECTIONS = (("chair", "prepared"), ("chair", "qa"), ("executive", "prepared"), ("executive", "qa"),
                      ("analyst", "qa"), ("journalist", "qa"))

# person-baseline columns of ``call_features`` (ser_models/people.py ``call_abnormal``), filled by the
# catalog-wide baseline step after a batch (NaN when the call is first written)
CALL_ABNORMAL_COLUMNS = ("executive_abnormal_tone", "executive_abnormal_text_tone", "chair_abnormal_tone",
                         "chair_abnormal_text_tone", "analyst_abnormal_tone")

TABLES: dict[str, TableSchema] = {
    t.name: t
    for t in [
        TableSchema(
            "calls",
            _s(("call_id", S), ("event_type", S), ("entity", S), ("event_time", UTC_TS),
               ("language", S), ("duration_s", F), ("source_uri", S), ("title", S),
               ("processed_at", UTC_TS), ("pipeline_version", S), ("profile", S)),
            "call_id", description="one row per processed recording", dimension=True,
        ),
        TableSchema(
            "speakers",
            _s(("call_id", S), ("speaker", S), ("role", S), ("name", S), ("voice_id", S),
               ("talk_time_s", F), ("n_segments", I), ("affiliation", S), ("title", S)),
            "call_id", description="one row per speaker in a call", optional=("affiliation", "title"),
            dimension=True,
        ),
        TableSchema(
            "segments",
            _s(("call_id", S), ("segment_id", I), ("speaker", S), ("start_s", F), ("end_s", F),
               ("section", S), ("text", S), ("asr_confidence", F), ("text_source", S)),
            "call_id", description="speaker turns split at sentence boundaries; text_source asr | transcript",
            optional=("text_source",),
        ),
        TableSchema(
            "transcripts",
            _s(("call_id", S), ("path", S), ("sha256", S), ("status", S), ("reason", S), ("shape", S), ("encoding", S),
               ("n_turns", I), ("n_speakers", I), ("transcript_coverage", F), ("asr_coverage", F),
               ("turns_not_spoken", I), ("tail_s", F), ("seconds", F)),
            "call_id", description="the user's transcript of a call and how it was used (pipelines/speech/transcripts.py)",
        ),
        TableSchema(
            "speaker_disagreements",
            _s(("call_id", S), ("start_s", F), ("end_s", F), ("transcript_speaker", S), ("diarized_speaker", S),
               ("n_words", I)),
            "call_id", description="stretches where the diarized voice is not the transcript speaker's voice",
        ),
        TableSchema(
            "voices",
            _s(("call_id", S), ("speaker", S), ("voice_id", S), ("embedding_model", S),
               ("embedding", pa.list_(pa.float32()))),
            "call_id", description="speaker embedding per call speaker, for cross-call voice links",
        ),
        TableSchema(
            "words",
            _s(("call_id", S), ("segment_id", I), ("word", S), ("start_s", F), ("end_s", F),
               ("score", F)),
            "call_id", description="word-level timestamps",
        ),
        TableSchema(
            "emotions",
            _s(("call_id", S), ("segment_id", I), ("model_id", S), ("arousal", F), ("valence", F),
               ("tone", F), ("tone_abs", F), ("norm_basis", S), ("text_tone", F), ("hawkish", F), ("fused_tone", F),
               ("attention_top15_share", F), ("top_words", S),
               ("lm_positive", F), ("lm_negative", F), ("lm_uncertainty", F), ("lm_tone", F),
               ("n_windows", I), ("skip_reason", S)),
            "call_id", extra_prefixes=("p_",),
            description="segment x SER model (columns: ser_models/calls.py, ser_models/README.md)",
        ),
        TableSchema(
            "trajectories",
            _s(("call_id", S), ("model_id", S), ("speaker", S), ("segment_id", I), ("t_s", F), ("tone", F),
               ("tone_smooth", F)),
            "call_id", extra_prefixes=("p_",), description="per-speaker emotion time series",
        ),
        TableSchema(
            "call_features",
            _s(("call_id", S), ("model_id", S),
               *[(f"{r}_{s}_{k}", F) for k in ("tone", "neg_share") for r, s in CALL_ROLE_SECTIONS],
               ("tone_change_prepared_to_qa", F), ("tone_volatility", F), ("min_smoothed_tone", F),
               ("n_hotspots", I), ("lm_positive", F), ("lm_negative", F), ("lm_uncertainty", F),
               ("lm_tone", F), ("call_tone", F), ("call_tone_abs", F), ("call_text_tone", F), ("call_fused_tone", F),
               ("chair_hawkish", F), ("n_segments_scored", I), ("n_segments_skipped", I),
               ("scored_speech_s", F), *[(c, F) for c in CALL_ABNORMAL_COLUMNS], ("n_persons_with_baseline", I)),
            "call_id", extra_prefixes=("",),
            description="one row per call, finance features (columns: ser_models/calls.py CALL_FEATURE_DOCS)",
            optional=(*CALL_ABNORMAL_COLUMNS, "n_persons_with_baseline"), dimension=True,
        ),
        TableSchema(
            "qa_pairs",
            _s(("call_id", S), ("model_id", S), ("pair_id", I),
               *[(f"{p}_{k}", S) for p in ("asker", "answerer") for k in ("speaker", "role", "name", "voice_id")],
               ("answerers", S), ("n_answerers", I), ("q_start_s", F), ("q_end_s", F), ("a_start_s", F),
               ("a_end_s", F), ("latency_s", F), ("answer_s", F), ("answer_words", I),
               *[(f"{p}_{m}_tone", F) for p in ("q", "a") for m in ("voice", "text", "fused")],
               ("answer_tone_change", F), ("non_answer", B), ("non_answer_phrases", S), ("non_answer_categories", S),
               ("answered", B), ("status", S)),
            "call_id", description="question-answer pairs of a call's Q&A (columns: ser_models/qa.py)",
        ),
        TableSchema(
            "speaker_baselines",
            _s(("call_id", S), ("model_id", S), ("entity", S), ("event_time", UTC_TS), ("person_id", S), ("speaker", S),
               ("role", S), ("name", S), ("voice_id", S), ("talk_s", F), ("voice_tone", F), ("text_tone", F),
               ("fused_tone", F),
               *[c for m, n in (("voice", "n_prior_calls"), ("text", "n_prior_text_calls"),
                                ("fused", "n_prior_fused_calls"))
                 for c in ((n, I), (f"{m}_base_mean", F), (f"{m}_base_sd", F), (f"abnormal_{m}_tone", F),
                           ("baseline_status" if m == "voice" else f"{m}_baseline_status", S))]),
            "call_id", description="person x call: tone against the person's own earlier calls (ser_models/people.py)",
        ),
        TableSchema(
            "prices",
            _s(("ticker", S), ("date", pa.date32()), ("open", F), ("high", F), ("low", F),
               ("close", F), ("adj_close", F), ("volume", F), ("source", S)),
            "ticker", description="daily prices",
        ),
        TableSchema(
            "events",
            _s(("study_id", S), ("event_id", S), ("call_id", S), ("ticker", S), ("event_time", UTC_TS),
               ("event_date", pa.date32()), ("timing", S), ("kept", B)),
            "study_id", description="events of a study on the trading calendar (day 0, timing bmo/intraday/amc/"
                                    "closed/date/rolled); kept = used by the event study",
        ),
        TableSchema(
            "abnormal_returns",
            _s(("study_id", S), ("event_id", S), ("rel_day", I), ("date", pa.date32()), ("ret", F),
               ("expected_ret", F), ("ar", F), ("car", F)),
            "study_id", description="event x relative day over the event period; car cumulates ar from its first day",
        ),
        TableSchema(
            "car",
            _s(("study_id", S), ("event_id", S), ("window", S), ("window_start", I), ("window_end", I),
               ("car", F), ("bhar", F), ("scar", F), ("car_se", F), ("abnormal_volatility", F),
               ("abnormal_volume", F), ("n_estimation", I), ("sigma_estimation", F)),
            "study_id", description="event x event window outcomes",
        ),
        TableSchema(
            "study_results",
            _s(("study_id", S), ("kind", S), ("group", S), ("name", S), ("window", S), ("rel_day", I),
               ("estimate", F), ("std_error", F), ("statistic", F), ("p_value", F), ("n", I), ("value", S)),
            "study_id", description="kind = meta | test | outcome | caar | aar | regression | regression_fit "
                                    "(see finance/README.md)",
        ),
        TableSchema(
            "study_dropped",
            _s(("study_id", S), ("event_id", S), ("ticker", S), ("event_date", pa.date32()), ("stage", S),
               ("reason", S)),
            "study_id", description="events dropped from a study, with the stage and the reason",
        ),
        TableSchema(
            "reports",
            _s(("report_id", S), ("kind", S), ("subject", S), ("path", S), ("format", S), ("inputs", S),
               ("rendered_at", UTC_TS), ("seconds", F), ("git_commit", S)),
            "report_id", description="rendered reports (kind call|study, subject = call_id|study_id); inputs = "
                                     "fingerprint of the catalog parts read, to find stale reports",
        ),
        TableSchema(
            "watched_files",
            _s(("archive_key", S), ("archive", S), ("file", S), ("manifest_row", S), ("size", I),
               ("mtime_ns", I), ("status", S), ("call_id", S), ("seen_at", UTC_TS)),
            "archive_key", description="files of an archive served by `speechfin serve` as of its last run "
                                       "(status processed|skipped|failed), to pick up what was added since",
        ),
        TableSchema(
            "failures",
            _s(("key", S), ("source_uri", S), ("stage", S), ("reason", S), ("failed_at", UTC_TS)),
            "key", description="inputs that failed, with the reason",
        ),
    ]
}
