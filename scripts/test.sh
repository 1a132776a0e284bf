#!/usr/bin/env bash
# The one test command (README.md, .ci/run): brings a bare Debian machine to a passing state, then runs
# lint, the formatting check, the production build, type-check and the whole suite. Installs only what
# is absent, so repeated runs stay fast.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use for real parts: librdkafka's mock Kafka cluster (+ gcc to build its
# launcher), chromium for the HTML report check, promtool to lint /metrics, docker-compose to validate
# docker-compose.yml, python3-sklearn only to regenerate oracle fixtures (not needed by tests).
packages=(librdkafka-dev gcc pkg-config chromium prometheus docker-compose)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "test.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# `npm install` from the committed lock rather than `npm ci`: chdb lists per-platform optional packages
# (@chdb/lib-darwin-*, -linux-arm64) that this registry does not carry, so npm records no lock entry for
# them and `npm ci` then refuses the lock as out of sync. `npm install` honours the lock and skips them.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund
fi

npm run lint
npm run format:check
# The build first: tests that spawn bin/modelwatch.js then run the compiled dist/ that ships.
npm run build
npm test
