"""speechfin's front end, flows and CLI (see README.md and DESIGN.md for the layout)."""

import warnings

# pyannote.audio warns at import when torchcodec cannot load FFmpeg's shared libraries.
# speechfin never decodes through pyannote/torchcodec (PyAV decodes, and pyannote gets
# in-memory waveforms), so the warning says nothing about a speechfin run.
warnings.filterwarnings("ignore", message=r"\s*torchcodec is not installed correctly", category=UserWarning,
                        module=r"pyannote\.audio\.core\.io")
# webrtcvad (resemblyzer's voice-activity helper, which speechfin does not call) reads its own
# version through pkg_resources at import; setuptools warns that this API is deprecated.
warnings.filterwarnings("ignore", message=r"pkg_resources is deprecated as an API", category=UserWarning,
                        module=r"webrtcvad")
