#!/usr/bin/env bash
# setup.sh: prepares the torch build of diffinv (build tag `torch`, gotch
# v0.7.0 on Debian's libtorch-dev 1.13.x). Idempotent; run from the repo root
# (`make setup-torch` does).
#
#  1. Installs libtorch-dev when missing (through scripts/setup.sh, which says
#     what to run by hand when it cannot) and checks that libtorch is 1.13.x.
#  2. Writes build/torch/compat-<hash>.h, a copy of scripts/torch/compat.h
#     whose name carries the first 16 hex digits of its SHA-256: the forced
#     header's path is part of CGO_CXXFLAGS, which Go's build cache keys on,
#     so a changed header forces libtch to rebuild (Go does not track
#     -include'd files itself).
#  3. Writes an empty static archive build/torch/stubs/lib<name>.a for each
#     CUDA library named in gotch's #cgo LDFLAGS that the system lacks: they
#     satisfy the linker and add no runtime dependency.
#  4. Writes build/torch/env.sh (shell: `. build/torch/env.sh`) and
#     build/torch/env.mk (make) with CGO_CXXFLAGS and CGO_LDFLAGS, and prints
#     them.
set -euo pipefail

root=$(pwd)
out="$root/build/torch"
mkdir -p "$out/stubs"

# 1. libtorch-dev, version 1.13.x.
if ! dpkg-query -W -f='${Status}' libtorch-dev 2>/dev/null | grep -q "install ok installed"; then
  bash "$root/scripts/setup.sh" libtorch-dev || {
    echo "setup-torch: FAILED: libtorch-dev is not installed; run by hand (as root):" >&2
    echo "  apt-get update && apt-get install -y libtorch-dev" >&2
    exit 1
  }
fi
inc=/usr/include/torch/csrc/api/include
vh="$inc/torch/version.h"
if [ ! -f "$vh" ]; then
  echo "setup-torch: FAILED: $vh not found although libtorch-dev is installed; reinstall it: apt-get install --reinstall -y libtorch-dev" >&2
  exit 1
fi
major=$(awk '/define TORCH_VERSION_MAJOR/ {print $3}' "$vh")
minor=$(awk '/define TORCH_VERSION_MINOR/ {print $3}' "$vh")
patch=$(awk '/define TORCH_VERSION_PATCH/ {print $3}' "$vh")
if [ "$major.$minor" != "1.13" ]; then
  echo "setup-torch: FAILED: libtorch is $major.$minor.$patch ($vh), want 1.13.x:" >&2
  echo "  gotch v0.7.0 with scripts/torch/compat.h builds against Debian 12's libtorch-dev 1.13.1 only." >&2
  exit 1
fi
libdir=$(dpkg -L libtorch-dev | sed -n 's#/libtorch\.so$##p' | head -1)
if [ -z "$libdir" ] || [ ! -e "$libdir/libtorch.so" ]; then
  echo "setup-torch: FAILED: libtorch.so not found in libtorch-dev's file list (dpkg -L libtorch-dev)" >&2
  exit 1
fi

# 2. The forced compatibility header, named by its hash.
src="$root/scripts/torch/compat.h"
hash=$(sha256sum "$src" | cut -c1-16)
hdr="$out/compat-$hash.h"
if [ ! -f "$hdr" ] || ! cmp -s "$src" "$hdr"; then
  find "$out" -maxdepth 1 -name 'compat-*.h' -delete
  cp "$src" "$hdr.tmp" && mv "$hdr.tmp" "$hdr"
fi

# 3. Empty archives for the CUDA libraries gotch links by name.
for name in cuda cudart cublas cudnn caffe2_nvrtc nvrtc-builtins nvrtc nvToolsExt c10_cuda torch_cuda; do
  stub="$out/stubs/lib$name.a"
  if ldconfig -p 2>/dev/null | grep -q "lib$name\.so " || [ -e "/usr/local/cuda/lib64/lib$name.so" ]; then
    rm -f "$stub" # the real library is there: link it
  elif [ ! -f "$stub" ]; then
    printf '!<arch>\n' > "$stub"
  fi
done

# 4. The cgo flags.
cxx="-I$inc -include $hdr"
ld="-L$out/stubs -L$libdir"
printf 'export CGO_ENABLED=1\nexport CGO_CXXFLAGS=%q\nexport CGO_LDFLAGS=%q\n' "$cxx" "$ld" > "$out/env.sh.tmp"
mv "$out/env.sh.tmp" "$out/env.sh"
printf 'export CGO_ENABLED := 1\nexport CGO_CXXFLAGS := %s\nexport CGO_LDFLAGS := %s\n' "$cxx" "$ld" > "$out/env.mk.tmp"
mv "$out/env.mk.tmp" "$out/env.mk"
debver=$(dpkg-query -W -f='${Version}' libtorch-dev 2>/dev/null || echo unknown)
echo "setup-torch: libtorch-dev $debver (headers say $major.$minor.$patch) in $libdir; compat header $hdr"
echo "setup-torch: CGO_CXXFLAGS=\"$cxx\""
echo "setup-torch: CGO_LDFLAGS=\"$ld\""
