#!/usr/bin/env bash
# Chromium (Debian package) for tests/test_view.py's real-browser test, when it is absent.
# Never fails: without it that one test skips and says why.
for name in chromium chromium-browser google-chrome google-chrome-stable; do
  command -v "$name" >/dev/null 2>&1 && exit 0
done
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no Chromium and no apt-get: the viewer's browser test will skip (install chromium to run it)."
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
    echo "note: no Chromium, and installing it needs root: the viewer's browser test will skip (apt-get install chromium)."
    exit 0
  fi
fi
echo "Installing Chromium for the viewer's browser test (apt-get install chromium)..."
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 \
  || { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq chromium >/dev/null 2>&1; } \
  || echo "note: apt-get could not install chromium: the viewer's browser test will skip."
exit 0
