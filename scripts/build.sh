#!/usr/bin/env bash
# Build drdns into BUILD_DIR (default build/) with -Wall -Wextra -Werror.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  meson setup "$BUILD_DIR" -Dwerror=true -Dwarning_level=2 "$@" >/dev/null
fi
ninja -C "$BUILD_DIR" >/dev/null
