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
# The version lives in one place, dhis2gw/__init__.py (setup.cfg reads it from there; `dhis2gw
# --version` and /health print it); the changelog's top entry must name the same one.
version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' dhis2gw/__init__.py)
deb_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
if [ -z "$version" ] || [ "$version" != "$deb_version" ]; then
    echo "build-deb: dhis2gw/__init__.py says ${version:-nothing} but debian/changelog says $deb_version: add a changelog entry (dch -v $version)" >&2
    exit 2
fi

# Reproducible: two builds of one tree give the same bytes.
# - every timestamp in the package is the changelog's date (dpkg-deb clamps file times to it);
# - the build runs in a fixed directory: pip records the hashes of the venv's scripts while their
#   #! line still names the staging path, so a random directory made each build's RECORD files
#   and direct_url.json differ (one build at a time per user: the lock);
# - no byte-code is shipped (postinst compiles it), file lists are sorted by dpkg-deb.
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l debian/changelog -S Timestamp)
export SOURCE_DATE_EPOCH
export PYTHONDONTWRITEBYTECODE=1 LC_ALL=C.UTF-8 TZ=UTC
work="${TMPDIR:-/tmp}/dhis2gw-deb-build-$(id -u)"
exec 9>"$work.lock"
flock 9
rm -rf "$work"
mkdir -p "$work"
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
