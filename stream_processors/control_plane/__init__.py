"""The control-plane file: load, validate and hot-reload (see docs/control-plane.md)."""

from meterline.stream_processors.control_plane.errors import ControlPlaneError, Problem
from meterline.stream_processors.control_plane.loader import (
    ENV_VAR,
    load_control_plane,
    load_from_env,
    parse_control_plane,
)
from meterline.stream_processors.control_plane.reload import ControlPlaneWatcher

__all__ = [
    "ENV_VAR",
    "ControlPlaneError",
    "ControlPlaneWatcher",
    "Problem",
    "load_control_plane",
    "load_from_env",
    "parse_control_plane",
]
