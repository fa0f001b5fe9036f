"""Example study specs (TOML), shipped as package data."""
