"""Tests of the plugin loader and the plugins shipped in the top-level plugins/ directory."""
