"""Package data of ser_models (so that it installs with the wheel)."""
