#!/usr/bin/env bash
# Generate tf2_msgs (TFMessage only) with rosidl from the Jazzy wheels when it is not importable:
# tf2_msgs has no PyPI wheel, and the camera nodes publish /tf_static and /tf with it (see
# shared ros-from-pip notes). A full ROS 2 install already has it: then this does nothing.
# Usage: scripts/ros/build_tf2_msgs.sh VENV   (idempotent; run after scripts/build_msgs.sh, which
# fixes the wheels' exported include paths). TF2_MSGS_STAGE_ONLY=1 builds into build/tf2_msgs only.
set -euo pipefail
VENV=$(cd "${1:-.venv}" && pwd)
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY="$VENV/bin/python"
if "$PY" -c "import tf2_msgs.msg" 2>/dev/null; then
  echo "[build_tf2_msgs] tf2_msgs already importable"; exit 0
fi
BUILD="$ROOT/build/tf2_msgs"
rm -rf "$BUILD"; mkdir -p "$BUILD/src/msg"
echo "geometry_msgs/TransformStamped[] transforms" > "$BUILD/src/msg/TFMessage.msg"
cat > "$BUILD/src/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.16)
project(tf2_msgs)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(geometry_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} "msg/TFMessage.msg" DEPENDENCIES geometry_msgs)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
CMAKE
cat > "$BUILD/src/package.xml" <<'XML'
<?xml version="1.0"?>
<package format="3">
  <name>tf2_msgs</name>
  <version>0.36.0</version>
  <description>tf2_msgs/TFMessage generated locally (no PyPI wheel); same definition as ROS 2 Jazzy's.</description>
  <maintainer email="dev@traceany-ros.org">traceany-ros developers</maintainer>
  <license>BSD-3-Clause</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>geometry_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
XML
export AMENT_PREFIX_PATH="$VENV" PATH="$VENV/bin:$PATH" _ROS_WHEELS_BOOTSTRAP_COMPLETE=
cmake -S "$BUILD/src" -B "$BUILD/cmake" -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$BUILD/install" \
  -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Release > "$BUILD/configure.log" 2>&1 \
  || { cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD/cmake" -j"$(nproc)" > "$BUILD/build.log" 2>&1 || { tail -50 "$BUILD/build.log"; exit 1; }
cmake --install "$BUILD/cmake" > "$BUILD/install.log" 2>&1 || { cat "$BUILD/install.log"; exit 1; }
GEN=$(find "$BUILD/install" -type d -path '*site-packages/tf2_msgs' | head -1)
if [[ "${TF2_MSGS_STAGE_ONLY:-0}" == "1" ]]; then
  echo "[build_tf2_msgs] built into $BUILD/install (stage only)"; exit 0
fi
SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cp -a "$BUILD"/install/lib/*.so "$VENV/lib/"
mkdir -p "$VENV/share"
cp -a "$BUILD/install/share/." "$VENV/share/"
rm -rf "$SITE/tf2_msgs"
cp -a "$GEN" "$SITE/tf2_msgs"
"$PY" -c "import tf2_msgs.msg" && echo "[build_tf2_msgs] generated tf2_msgs.msg.TFMessage into $VENV"
