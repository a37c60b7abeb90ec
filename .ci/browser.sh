#!/usr/bin/env bash
# A headless browser for tests/ui: Debian's Chromium, driven by Playwright (the `playwright`
# Python package, from the dev extra) with executable_path=/usr/bin/chromium. Playwright's own
# browser download (`playwright install`) cannot reach its CDN here, so it is never used.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "browser: $(/usr/bin/chromium --version 2>/dev/null || echo chromium) already installed"
  exit 0
fi
echo "browser: installing Debian's chromium"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends chromium >/dev/null
echo "browser: $(/usr/bin/chromium --version)"
