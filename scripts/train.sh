#!/usr/bin/env bash
# The main job from a fresh Debian machine: install, build, train lenet on
# Fashion-MNIST (5 epochs) and print the test accuracy.  Arguments go to
# `dltrain train`, e.g. scripts/train.sh --model resnet20 --epochs 30.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
exec ./build/launch/dltrain train "$@"
