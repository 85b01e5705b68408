#!/usr/bin/env bash
# Installs what the test suite talks to, on a fresh Debian machine (CI runs as root):
#   - Debian: zookeeper (real ZooKeeper server), libhessian-java (Caucho Hessian, the reference),
#     default-jdk-headless (javac for the small Java vector generator),
#     chromium (headless browser for the admin status page test).
#   - npm peers under tests/interop/node (hessian.js, Dubbo consumers/providers).
# Idempotent: each step is skipped when already satisfied. Fails loudly otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(zookeeper libhessian-java default-jdk-headless chromium)
missing=()
for p in "${DEBS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  echo "setup_deps: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v node >/dev/null || { echo "setup_deps: node is required for the interop tests" >&2; exit 1; }
(cd tests/interop/node && npm install --no-audit --no-fund --loglevel=error)
echo "setup_deps: ok"
