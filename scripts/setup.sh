#!/usr/bin/env bash
# Set up EvoFusion on a fresh machine: Fashion-MNIST's IDX files (Debian package), a virtual
# environment with the CPU build of torch, and the package with its test extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}

if [ ! -d /usr/share/datasets/fashion-mnist ] && [ -z "${EVOFUSION_DATA:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing Fashion-MNIST (Debian package dataset-fashion-mnist)"
    apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
      { apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null; }
  else
    echo "note: Fashion-MNIST not found; install Debian's dataset-fashion-mnist or set EVOFUSION_DATA" >&2
  fi
fi

# Debian's Chromium + ChromeDriver for the dashboard's browser test (skipped when absent).
if [ "${EVOFUSION_BROWSER:-1}" = 1 ] && [ ! -x /usr/bin/chromedriver ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing chromium + chromium-driver (browser tests)"
  apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
    { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } || \
    echo "note: chromium not installed; the browser test will be skipped" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "== creating $VENV"
  python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  # The CPU wheel of torch 2.13.0 lies on this machine's disk; a bare 'torch' requirement would pull a
  # multi-GB CUDA build. A user with a GPU keeps any torch >= 2.10 (the package's own requirement).
  echo "== installing torch (CPU build)"
  "$VENV/bin/pip" install -q torch==2.13.0
fi
echo "== installing evofusion (with the export, trackers, browser-test, ray, prune and crossmodal extras)"
"$VENV/bin/pip" install -q -e ".[dev,export,trackers,browser,ray,prune,crossmodal]"
