#!/usr/bin/env bash
# npm run build:moddable [-- key=value ...]
# Builds the firmware with the user's installed Moddable SDK ($MODDABLE, mcconfig on PATH), the
# build the README documents: `mcconfig -d -m -p lin -t build` (the Moddable Linux host) and
# `mcconfig -d -m -p esp32 -t build` (needs ESP-IDF: $IDF_PATH). Every TypeScript module is
# type-checked against the SDK's own typings by mcconfig. Without ESP-IDF the esp32 build stops at
# its ESP-IDF step, so the esp32-only modules (src/board/esp32.ts) are type-checked here against the
# same SDK typings, with the module paths mcconfig generated for the lin build.
# key=value arguments go to mcconfig as config (token=..., server=coap://host:5683, ssid=...).
# Output: build/moddable/ (gitignored). Never pass secrets here on a shared machine's command line.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
if [ -z "${MODDABLE:-}" ] || ! command -v mcconfig >/dev/null; then
  echo "build:moddable: needs the Moddable SDK: set \$MODDABLE and put \$MODDABLE/build/bin/lin/release on PATH (docs/moddable.md)" >&2
  exit 2
fi
export PATH="$ROOT/node_modules/.bin:$PATH"   # mcconfig runs `tsc`: the project's TypeScript
OUT="$ROOT/build/moddable"
mkdir -p "$OUT"

echo "== lin: mcconfig -d -m -p lin -t build"
mcconfig -d -m -p lin -t build -o "$OUT" "$@"
echo "lin: $OUT/bin/lin/mc/debug/main/mc.so"

BASE="$OUT/tmp/lin/mc/debug/main/modules/tsconfig-base.json"
node -e '
const fs = require("fs"), path = require("path");
const [base, root, out] = process.argv.slice(1);
const b = JSON.parse(fs.readFileSync(base, "utf8"));
const paths = { ...b.compilerOptions.paths, "board/sensors": [path.join(root, "src/board/esp32")],
  "ota/platform": [path.join(root, "src/platform/moddable/esp32/ota")] };
fs.writeFileSync(out, JSON.stringify({ extends: base, compilerOptions: { noEmit: true, paths },
  files: [path.join(root, "src/board/esp32.ts"), path.join(root, "src/platform/moddable/esp32/ota.ts"),
    path.join(root, "hardware/ota/ota_native.d.ts"), path.join(root, "src/main.ts")] }, null, 1));
' "$BASE" "$ROOT" "$OUT/esp32-typecheck.json"
echo "== esp32: tsc against the SDK typings (src/board/esp32.ts, src/platform/moddable/esp32/ota.ts, src/main.ts)"
tsc -p "$OUT/esp32-typecheck.json"

if [ -n "${IDF_PATH:-}" ]; then
  echo "== esp32: mcconfig -d -m -p esp32 -t build"
  mcconfig -d -m -p esp32 -t build -o "$OUT" "$@"
else
  echo "esp32: \$IDF_PATH not set: the mcconfig esp32 build needs ESP-IDF v6.0 (docs/moddable.md); type check done, build skipped"
fi
