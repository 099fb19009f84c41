"""Hydra configs shipped as package data (a wheel install finds them: pkg://alpagasus.conf)."""

from pathlib import Path

# The folder itself, for Hydra's config_path (main) and compose() outside a Hydra job.
CONF_DIR = str(Path(__file__).resolve().parent)
