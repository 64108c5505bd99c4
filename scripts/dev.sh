#!/bin/sh
# Set up a virtual environment and run the gateway (embedded default) or the whole test suite.
#   scripts/dev.sh run     # gateway on http://127.0.0.1:9090 with embedded PostgreSQL, Redis and DHIS2 simulator
#   scripts/dev.sh test    # ruff, mypy, then every test (uses PostgreSQL/Redis on 127.0.0.1 when they answer, else
#                          # embedded ones); with arguments, only pytest with those arguments
set -eu
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

need_venv_module() {
    if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        echo "dhis2gw: installing python3-venv (needed to create the virtual environment)" >&2
        if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
        $SUDO apt-get update -qq && $SUDO apt-get install -y -qq python3-venv >/dev/null
    fi
}

# The admin app (KivyMD) builds pycairo and needs GL/EGL libraries: Debian packages.
ADMIN_DEBS="libcairo2-dev pkg-config libegl1 libgl1-mesa-dri libegl-mesa0 libmtdev1 xclip"

admin_debs_present() {
    for p in $ADMIN_DEBS; do dpkg -s "$p" >/dev/null 2>&1 || return 1; done
}

need_admin_debs() {
    admin_debs_present && return 0
    command -v apt-get >/dev/null 2>&1 || return 1
    echo "dhis2gw: installing the Debian packages the admin app needs ($ADMIN_DEBS)" >&2
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $ADMIN_DEBS >/dev/null; } || return 1
}

setup() {
    stamp="$VENV/.installed-$(cat setup.cfg pyproject.toml admin/pyproject.toml | cksum | cut -d' ' -f1)"
    [ -f "$stamp" ] && return 0
    need_venv_module
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    # setuptools explains its editable modes at every editable install (~25 lines each). The modes
    # follow from the layout on purpose (setup.cfg's package_dir = =. makes the gateway's install a
    # .pth line for the checkout, so twistd finds twisted/plugins there), so those notices — and
    # only those, by module — are silenced for the installs below.
    editable_notices="ignore:::setuptools.command.editable_wheel"
    "$VENV/bin/pip" install -q --upgrade pip
    PYTHONWARNINGS=$editable_notices "$VENV/bin/pip" install -q -e ".[embedded,test]"
    # The admin app: its dependencies through the [admin] extra, the app itself from admin/.
    if need_admin_debs; then
        PYTHONWARNINGS=$editable_notices "$VENV/bin/pip" install -q -e ".[admin]"
        PYTHONWARNINGS=$editable_notices "$VENV/bin/pip" install -q -e admin --no-deps
    else
        echo "dhis2gw: admin app not installed (its Debian packages are missing): its tests will not run" >&2
    fi
    # twistd finds plugins through a cache written next to the plugin files: build it now.
    "$VENV/bin/python" -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
}

cmd=${1:-run}
[ $# -gt 0 ] && shift
case "$cmd" in
    setup) setup ;;
    run)   setup; exec "$VENV/bin/dhis2gw" --config conf/dev.yml --demo "$@" ;;
    test)  setup
           status=0
           # Lint and types first (seconds; settings in pyproject.toml). A failure fails the command,
           # and the tests still run. A subset of tests (arguments given) skips them.
           if [ $# -eq 0 ]; then
               "$VENV/bin/ruff" check . || status=$?
               "$VENV/bin/mypy" || status=$?
           fi
           "$VENV/bin/pytest" "$@" || status=$?
           # The admin app's tests run in their own processes (Kivy installs its reactor at import).
           if [ $# -eq 0 ] && [ -x "$VENV/bin/dhis2gw-admin" ]; then
               "$VENV/bin/pytest" -p no:cacheprovider admin/tests || status=$?
               "$VENV/bin/pytest" -p no:cacheprovider admin/tests/ui || status=$?
           fi
           exit $status ;;
    *) echo "usage: scripts/dev.sh run|test|setup" >&2; exit 2 ;;
esac
