"""Hydra configs shipped as package data (a wheel install finds them: pkg://alpagasus.conf)."""
