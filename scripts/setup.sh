#!/usr/bin/env bash
# Set up everything snaresynth needs on a Debian/Ubuntu machine, idempotently:
#   system packages (PortAudio; JACK for the end-to-end tests) and a virtualenv in .venv with
#   the package installed editable. Usage: scripts/setup.sh [serve|test]
#   serve: only what playing needs (no TensorFlow); test: everything (the train, plots and test
#   extras too). A later "test" adds the extras to a "serve" environment.
set -euo pipefail
cd "$(dirname "$0")/.."
purpose="${1:-serve}"

packages=(libportaudio2 libsndfile1)
if [ "$purpose" = test ]; then
    # chromium: the browser tests/e2e/test_web.py drives through Playwright (never a download)
    packages+=(jackd2 chromium)
    packages+=(hydrogen drumgizmo)  # tests/e2e/test_export.py plays exported kits in them
fi

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing system packages: ${missing[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: missing system packages; run: sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: Python 3.11 or newer is needed ($python is $("$python" --version 2>&1))" >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
# Reinstall only when the dependency list changed, or more is wanted than is installed.
if [ "$purpose" = test ]; then
    extras="[train,plots,test]"
else
    extras=""
fi
stamp=.venv/.snaresynth-installed
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $extras"
have="$(cat "$stamp" 2>/dev/null || true)"
# a test environment has everything a serve one needs: "serve" after "test" installs nothing
if [ "$have" != "$want" ] && ! { [ -z "$extras" ] && [ "${have%% *}" = "${want%% *}" ]; }; then
    echo "setup: installing Python dependencies${extras:+ with $extras} into .venv" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".$extras"
    echo "$want" > "$stamp"
fi
# Compile the real-time kernels now rather than at the daemon's first start (numba caches them
# in the user cache folder, one folder per version of their sources: snaresynth/rt/kernel_cache.py;
# later imports load them in well under a second).
.venv/bin/python -c 'from snaresynth.rt.mixer import Mixer; Mixer(48000); import snaresynth.rt.portaudio' \
    || echo "setup: could not compile the mixer kernels now; the daemon will on its first start" >&2
.venv/bin/python -c 'import snaresynth.rt.jack' 2>/dev/null \
    || echo "setup: no libjack, so the JACK callbacks were not compiled (JACK is optional)" >&2
