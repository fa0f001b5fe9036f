"""Where the reference corpora of ``../shared/data`` are, and the marker of tests that need them.

CI always has ``../shared`` beside the repository; a newcomer with only the repository gets
those tests skipped with one reason.  ``SPEECHFIN_SHARED_DATA`` points elsewhere (or at a
missing folder, to check that the skips hold).
"""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPEECHFIN_SHARED_DATA", REPO.parent / "shared" / "data"))
HAVE_SHARED = (SHARED / "README.md").is_file()
SKIP_REASON = f"needs the reference corpora of ../shared/data (not found at {SHARED})"

#: mark a test (or a module, with ``pytestmark = needs_shared``) that reads ../shared/data
needs_shared = pytest.mark.skipif(not HAVE_SHARED, reason=SKIP_REASON)
