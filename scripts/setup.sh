#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds mixir, and runs the main job.
#   bash scripts/setup.sh            install + build + main job
#   bash scripts/setup.sh --no-demo  install + build only (what CI uses)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
DEMO=1
[[ "${1:-}" == "--no-demo" ]] && DEMO=0
SUDO=""
[[ "$(id -u)" -ne 0 ]] && SUDO="sudo"
PY=${PYTHON:-python3}
LLVM_PREFIX=/usr/lib/llvm-22

say() { printf '\n== %s\n' "$*"; }
t0=$(date +%s)

# 1. Debian packages: LLVM/MLIR 22 (mlir-opt, mlir-tblgen, FileCheck, lit, NVPTX) + build deps.
PKGS="llvm-22-dev llvm-22-tools libmlir-22-dev mlir-22-tools libzstd-dev zlib1g-dev libedit-dev
      libxml2-dev libffi-dev libz3-dev cmake ninja-build g++"
missing=$(for p in $PKGS; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || echo "$p"; done)
if [[ -n "$missing" ]]; then
  say "installing Debian packages:" $missing
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing
fi

# 2. Python packages, torch pinned to the GPU host's version.
need_py=$($PY - <<'PYEOF'
import importlib.metadata as md
want = {"torch": "2.11.0", "numpy": None, "pytest": None}
for name, version in want.items():
    try:
        have = md.version(name)
        if version and not have.startswith(version):
            print(f"{name}=={version}")
    except md.PackageNotFoundError:
        print(f"{name}=={version}" if version else name)
PYEOF
)
if [[ -n "$need_py" ]]; then
  say "installing Python packages:" $need_py
  $PY -m pip install -q $need_py
fi

# 3. Build the compiler (mixer-opt, libmixir_c.so) and the C ABI test.
say "building"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DMLIR_DIR=$LLVM_PREFIX/lib/cmake/mlir -DLLVM_EXTERNAL_LIT=$LLVM_PREFIX/bin/lit >/dev/null
ninja -C build

# 4. The Python package, editable: importable from anywhere.
$PY -m pip install -q --no-deps -e python
say "setup took $(( $(date +%s) - t0 )) s"

# 5. The main job.
if [[ "$DEMO" == 1 ]]; then
  cd /tmp && $PY -m mixir.demo
fi
