"""The speech front end, plain functions with no Prefect: decoding (``audio``), voice activity
(``vad``), segmentation and diarization, ASR (``asr``), turns and segments (``turns``), a user's
transcript read (``transcript_formats``) and aligned to the audio (``transcripts``), the
emotion stage's glue (``emotion``), the models a profile loads (``models``), the composed
stages (``frontend``) and DER/WER (``evaluation``)."""
