#!/bin/sh
# Build the Debian package dhis2gw_<version>_<arch>.deb (make deb).
#   scripts/build-deb.sh [OUTPUT_DIR]     default: dist/
# The build runs in a temporary copy of the files the package needs, so the working tree (and
# its .venv) is never touched. pip downloads are cached in $DHIS2GW_DEB_CACHE (default
# ~/.cache/dhis2gw-deb) so later builds do not fetch from PyPI again.
# Needs: dpkg-dev, debhelper, python3.11-venv (Debian 12).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
OUT=${1:-$ROOT/dist}
CACHE=${DHIS2GW_DEB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/dhis2gw-deb}

for tool in dpkg-buildpackage dh dpkg-parsechangelog; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build-deb: $tool is missing: apt-get install dpkg-dev debhelper python3.11-venv" >&2
        exit 3
    fi
done
version=$(sed -n 's/^version *= *//p' setup.cfg)
deb_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ "$version" != "$deb_version" ]; then
    echo "build-deb: setup.cfg says $version but debian/changelog says $deb_version: add a changelog entry (dch -v $version)" >&2
    exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/dhis2gw-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
src="$work/dhis2gw-$version"
mkdir -p "$src"
for item in setup.cfg pyproject.toml README.md LICENSE MANIFEST.in dhis2gw twisted migrations conf plugins \
            docs templates static debian; do
    [ -e "$item" ] && cp -R "$item" "$src/"
done
find "$src" \( -name __pycache__ -o -name dropin.cache -o -name '*.pyc' \) -prune -exec rm -rf {} +

mkdir -p "$CACHE" "$OUT"
(cd "$src" && PIP_CACHE_DIR="$CACHE" dpkg-buildpackage -b -us -uc >"$work/build.log" 2>&1) || {
    tail -n 60 "$work/build.log" >&2
    echo "build-deb: dpkg-buildpackage failed (last lines above)" >&2
    exit 1
}
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb="dhis2gw_${version}_${arch}.deb"
cp "$work/$deb" "$OUT/"
echo "$OUT/$deb"
