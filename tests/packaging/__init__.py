"""Tests of the Debian package (debian/, scripts/build-deb.sh)."""
