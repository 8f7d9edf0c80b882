#!/usr/bin/env bash
# What the test suite needs besides Rust, installed when missing (a no-op when present):
# promtool (Debian package prometheus: the metrics test checks the exposition with it), Chromium
# and its WebDriver (chromium, chromium-driver: the console's browser tests), and in a virtualenv
# at .venv the official openai/anthropic Python SDKs (tests/sdk/requirements.txt) and selenium
# (tests/browser/requirements.txt). Uses apt-get (through sudo when not root) and pip.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
apt_updated=""
apt() {
  [ -n "$apt_updated" ] || { $sudo apt-get update -q; apt_updated=1; }
  $sudo apt-get install -y -q --no-install-recommends "$@"
}
command -v promtool >/dev/null || apt prometheus
{ [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; } || apt chromium chromium-driver
if ! .venv/bin/python3 -c "import openai, anthropic, selenium" 2>/dev/null; then
  python3 -m venv .venv 2>/dev/null || { apt python3-venv; python3 -m venv .venv; }
  .venv/bin/pip install -q -r tests/sdk/requirements.txt -r tests/browser/requirements.txt
fi
