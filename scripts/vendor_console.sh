#!/usr/bin/env bash
# The web console's front-end libraries, fetched from the npm registry into
# center/static/vendor/ (git-ignored): the operations machines reach no CDN, so the API
# serves them itself. Pinned versions, checked against the registry's sha512 integrity;
# idempotent and quick when done (a stamp file names what is installed).
#
#   Leaflet 1.9.4  the site map (GeoJSON boundary, work-order markers, optional tiles)
#   uPlot 1.6.32   the water-depth chart of waterlogging work orders
#   swagger-ui-dist 5.35.0  the API's interactive docs at /docs (FastAPI's default loads a CDN)
set -euo pipefail
cd "$(dirname "$0")/.."

VENDOR=center/static/vendor
# name@version  sha512 integrity (npm view NAME@VERSION dist.integrity)  files to keep (from package/)
PACKAGES=(
  "leaflet@1.9.4 sha512-nxS1ynzJOmOlHp+iL3FyWqK89GtNL8U8rvlMOsQdTTssxZwCXh8N2NB3GDQOL+YR3XnWyZAxwQixURb+FA74PA== dist/leaflet.js dist/leaflet.css dist/images/layers.png dist/images/layers-2x.png dist/images/marker-icon.png dist/images/marker-icon-2x.png dist/images/marker-shadow.png LICENSE"
  "uplot@1.6.32 sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw== dist/uPlot.iife.min.js dist/uPlot.min.css LICENSE"
  "swagger-ui-dist@5.35.0 sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ== swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE"
)
say() { printf '\033[1;34m[vendor]\033[0m %s\n' "$*"; }

stamp="$VENDOR/.installed"
want="$(printf '%s\n' "${PACKAGES[@]}" | sha256sum | cut -c1-16)"
complete() {
  local spec name files f
  for spec in "${PACKAGES[@]}"; do
    read -r name _ files <<<"$spec"
    for f in $files; do [ -s "$VENDOR/${name%@*}/$f" ] || return 1; done
  done
}
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && complete; then
  say "console libraries are up to date in $VENDOR"
  exit 0
fi

command -v npm >/dev/null 2>&1 || { echo "vendor_console.sh: npm is needed (apt-get install npm)" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for spec in "${PACKAGES[@]}"; do
  read -r name integrity files <<<"$spec"
  say "fetching $name from the npm registry"
  tarball="$(cd "$work" && npm pack --silent "$name" | tail -n1)"
  got="$(node -e 'const c = require("crypto"), fs = require("fs");
    process.stdout.write("sha512-" + c.createHash("sha512").update(fs.readFileSync(process.argv[1])).digest("base64"))' "$work/$tarball")"
  if [ "$got" != "$integrity" ]; then
    echo "vendor_console.sh: $name tarball integrity $got does not match the pinned $integrity" >&2
    exit 1
  fi
  mkdir -p "$work/${name%@*}"
  tar -xzf "$work/$tarball" -C "$work/${name%@*}"
  dest="$VENDOR/${name%@*}"
  rm -rf "$dest"
  for f in $files; do
    [ -s "$work/${name%@*}/package/$f" ] || { echo "vendor_console.sh: $name has no $f" >&2; exit 1; }
    install -D -m 0644 "$work/${name%@*}/package/$f" "$dest/$f"
  done
done
echo "$want" > "$stamp"
say "console libraries in $VENDOR"
