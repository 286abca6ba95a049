"""Test-session setup shared by tests/, the package's doctests and docs/."""
import os

# MindSpore's C++ logging: errors only (set before mindspore is imported).
os.environ.setdefault("GLOG_v", "3")
