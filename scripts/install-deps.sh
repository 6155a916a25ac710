#!/usr/bin/env bash
# Installs what dltrain needs on Debian 12: compiler and CMake, OpenBLAS (the
# OpenMP build, which shares dltrain's thread pool), zlib, Open MPI,
# Fashion-MNIST, PyTorch (the oracle tests and the speed peer) and Chromium
# (renders the HTML report headless in its screenshot test), clang and its
# OpenMP runtime (the libFuzzer harnesses of tests/fuzz), a one-machine Slurm
# for the srun test (slurmd, slurmctld, slurm-client, munge; the test starts
# and stops its own daemons), iproute2 and util-linux for the virtual cluster
# (scripts/vcluster.sh).
# CUDA and NCCL are optional and not installed here.
set -euo pipefail
packages=(build-essential cmake pkg-config zlib1g-dev libopenblas-dev libopenblas-openmp-dev
          libopenmpi-dev openmpi-bin dataset-fashion-mnist python3 python3-torch python3-numpy
          chromium clang libomp-dev slurmd slurmctld slurm-client munge iproute2 util-linux)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: all packages present"
    exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
