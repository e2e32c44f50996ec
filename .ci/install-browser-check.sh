#!/usr/bin/env bash
# Installs what tests/test_book_render.py needs: Debian's Chromium and a local copy of MathJax 3 (npm),
# so the built book can be rendered offline (the site itself loads MathJax from a CDN).
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
if [ ! -f "$root/.cache/mathjax/node_modules/mathjax/es5/tex-mml-chtml.js" ]; then
  npm install --silent --no-audit --no-fund --prefix "$root/.cache/mathjax" mathjax@3 >/dev/null
fi
echo "browser check ready: $(chromium --version 2>/dev/null), MathJax $(node -p "require('$root/.cache/mathjax/node_modules/mathjax/package.json').version")"
