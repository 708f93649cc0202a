#!/usr/bin/env bash
# Generate the package's ROS 2 interfaces (msg/, srv/, action/) with rosidl from the
# Jazzy PyPI wheels and put the generated Python next to the sources, so that
# one `traceany_ros` package holds both (see shared ros-from-pip notes).
# Usage: scripts/build_msgs.sh VENV   (idempotent: skips when up to date)
set -euo pipefail
VENV=$(cd "${1:-.venv}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY="$VENV/bin/python"
BUILD="$ROOT/build/interfaces"
STAMP="$ROOT/traceany_ros/msg/.stamp"

hash_inputs() { cat "$ROOT"/msg/*.msg "$ROOT"/srv/*.srv "$ROOT"/action/*.action "$ROOT/CMakeLists.txt" "$ROOT/package.xml" "$0" | sha256sum | cut -d' ' -f1; }
WANT=$(hash_inputs)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" && -f "$VENV/share/ament_index/resource_index/packages/traceany_ros" ]]; then
  echo "[build_msgs] interfaces up to date"; exit 0
fi

# The wheels' exported CMake files name the include paths of the machine that
# built them; point them at this venv's Python and numpy.
PYINC=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
NPINC=$("$PY" -c 'import numpy; print(numpy.get_include())')
for f in $(grep -rlE '/opt/python/cp311-cp311/(include|lib)' "$VENV/share" --include='*Export.cmake' || true); do
  sed -i -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g" \
         -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" "$f"
done

rm -rf "$BUILD"; mkdir -p "$BUILD/src"
# Configure from a copy of the interface sources: CMake refuses include paths
# inside the source directory, and the venv may live inside the repo.
cp -a "$ROOT/CMakeLists.txt" "$ROOT/package.xml" "$ROOT/msg" "$ROOT/srv" "$ROOT/action" "$BUILD/src/"
export AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" _ROS_WHEELS_BOOTSTRAP_COMPLETE=
cmake -S "$BUILD/src" -B "$BUILD/cmake" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$BUILD/install" \
  -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF -DTRACEANY_INTERFACES_ONLY=ON \
  -DCMAKE_BUILD_TYPE=Release > "$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD/cmake" -j"$(nproc)" > "$BUILD/build.log" 2>&1 || { tail -50 "$BUILD/build.log"; exit 1; }
cmake --install "$BUILD/cmake" > "$BUILD/install.log" 2>&1 || { cat "$BUILD/install.log"; exit 1; }

INST="$BUILD/install"
SITE_GEN=$(find "$INST" -type d -path '*site-packages/traceany_ros' | head -1)
# C libraries and the ament index / share files go into the venv (its lib/ is
# on the library path that ros_wheels_bootstrapper sets).
cp -a "$INST"/lib/*.so "$VENV/lib/"
mkdir -p "$VENV/share"
cp -a "$INST/share/." "$VENV/share/"
# Generated Python (msg/, srv/, action/, type-support extensions) joins the sources.
rm -rf "$ROOT/traceany_ros/msg" "$ROOT/traceany_ros/srv" "$ROOT/traceany_ros/action"
cp -a "$SITE_GEN/msg" "$SITE_GEN/srv" "$SITE_GEN/action" "$ROOT/traceany_ros/"
cp -a "$SITE_GEN"/*.so "$ROOT/traceany_ros/"
echo "$WANT" > "$STAMP"
echo "[build_msgs] generated traceany_ros.msg / traceany_ros.srv / traceany_ros.action"
