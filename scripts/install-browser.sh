#!/usr/bin/env bash
# Install what the real-browser test (tests/test_browser.py) needs:
#   * Debian's chromium package (/usr/bin/chromium) when it is missing;
#   * Playwright for Python (its node driver ships inside the wheel).
# Never runs `playwright install`: no browser is downloaded; the test launches
# /usr/bin/chromium through `executable_path`.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "install-browser: found $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
else
  if [ "$(id -u)" != 0 ]; then
    echo "install-browser: /usr/bin/chromium missing and not root; run: sudo apt-get install -y chromium" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  echo "install-browser: installed $(/usr/bin/chromium --version 2>/dev/null || echo chromium)"
fi
PY=${PYTHON:-python3}
if "$PY" -c "import playwright.sync_api" 2>/dev/null; then
  echo "install-browser: playwright for Python present ($("$PY" -m pip show playwright 2>/dev/null | awk '/^Version/{print $2}'))"
else
  "$PY" -m pip install -q playwright
  echo "install-browser: installed playwright for Python"
fi
