"""speechfin's front end, flows and CLI (see README.md and DESIGN.md for the layout)."""

import warnings

# pyannote.audio warns at import when torchcodec cannot load FFmpeg's shared libraries.
# speechfin never decodes through pyannote/torchcodec (PyAV decodes, and pyannote gets
# in-memory waveforms), so the warning says nothing about a speechfin run.
warnings.filterwarnings("ignore", message=r"\s*torchcodec is not installed correctly", category=UserWarning,
                        module=r"pyannote\.audio\.core\.io")
