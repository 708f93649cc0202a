"""Session-wide test settings: keep the 2-core machine usable and tests isolated."""
import os

# One BLAS/torch thread per test process: CI has 2 cores and ROS tests spawn processes.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
