#!/usr/bin/env bash
# Installs what tests/test_book_render.py needs: Debian's Chromium (with CJK fonts). The site ships its
# own MathJax (sphinx-mathjax-offline, in requirements.txt), so the check renders it with no network.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
  else
    echo "chromium is missing: install Debian's 'chromium' package (needs root)" >&2
    exit 1
  fi
fi
echo "browser check ready: $(chromium --version 2>/dev/null)"
