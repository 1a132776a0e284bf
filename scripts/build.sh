#!/usr/bin/env bash
# `npm run build`: compiles src/ to dist/ (tsconfig.build.json), copies the files the code loads at run
# time next to their modules (every non-TypeScript file under src/, e.g. protocol/proto/*.proto), then
# writes dist/build-stamp. bin/modelwatch.js in a development checkout runs dist/ only when that stamp
# exists and is newer than every source file.
set -euo pipefail
cd "$(dirname "$0")/.."

rm -rf dist
node node_modules/typescript/bin/tsc -p tsconfig.build.json
(cd src && find . -type f ! -name '*.ts' -exec cp --parents {} ../dist/ \;)
node scripts/bundle-report.mjs
date -u +%Y-%m-%dT%H:%M:%SZ > dist/build-stamp
