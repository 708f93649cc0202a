#!/usr/bin/env bash
# Create .venv (Python 3.11) with every pinned dependency, generate the ROS 2
# interfaces, and install traceany_ros in editable mode. Idempotent: with
# nothing changed a second run takes a few seconds.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV="${VENV:-$ROOT/.venv}"
cd "$ROOT"

# libusb: pyrealsense2 and open3d load libusb-1.0.so.0.
if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "[install] apt-get install libusb-1.0-0"
    apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q libusb-1.0-0 >/dev/null; }
  else
    echo "[install] ERROR: libusb-1.0-0 is missing (pyrealsense2 and open3d need it)." >&2
    echo "          Run: sudo apt-get install -y libusb-1.0-0   then run make install again." >&2
    exit 1
  fi
fi

PYTHON="${PYTHON:-$(command -v python3.11 || true)}"
if [[ -z "$PYTHON" ]]; then echo "[install] ERROR: python3.11 not found (pybullet has wheels for CPython 3.11 only)" >&2; exit 1; fi
if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[install] creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

REQ_HASH=$(cat requirements.txt setup.py | sha256sum | cut -d' ' -f1)
if [[ ! -f "$VENV/.traceany-req" || "$(cat "$VENV/.traceany-req")" != "$REQ_HASH" ]]; then
  echo "[install] pip install -r requirements.txt (first time ~2 min)"
  "${PIP[@]}" install -r requirements.txt 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  "${PIP[@]}" install --no-deps -e . 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  echo "$REQ_HASH" > "$VENV/.traceany-req"
else
  echo "[install] python dependencies up to date"
fi

bash scripts/build_msgs.sh "$VENV"
bash scripts/ros/build_tf2_msgs.sh "$VENV"   # tf2_msgs has no wheel: generate TFMessage for /tf, /tf_static
"$VENV/bin/python" -c "import traceany_ros.msg, traceany_ros.field, tf2_msgs.msg, rclpy, torch, pybullet" \
  || { echo "[install] ERROR: import check failed" >&2; exit 1; }
echo "[install] ok: $VENV"
