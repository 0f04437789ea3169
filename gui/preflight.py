"""Before Qt starts: is there a display, and can Qt's xcb plugin load?

Qt answers both failures by aborting the process (exit 134) with "Reinstalling the application may
fix this problem", which is wrong advice. These checks run first, import no Qt, and return one line
a person can act on: no display (the CLI still works headless), or the system libraries the xcb
plugin needs and the apt command that installs them.
"""
from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping

# The shared libraries Qt 6.11's xcb platform plugin (libqxcb.so, libQt6XcbQpa, libQt6Gui) loads,
# as `ldd` lists them on Debian 12, with the Debian package that ships each.
XCB_LIBRARIES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-util.so.1": "libxcb-util1", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0", "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0", "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0", "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-render.so.0": "libxcb-render0", "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0", "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1", "libX11.so.6": "libx11-6",
    "libGL.so.1": "libgl1", "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1", "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0", "libdbus-1.so.3": "libdbus-1-3",
}


def _loads(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_libraries(libraries: Mapping[str, str] = XCB_LIBRARIES,
                      loads: Callable[[str], bool] = _loads) -> list[str]:
    """The Debian packages whose library the dynamic loader cannot find, in table order."""
    packages: list[str] = []
    for soname, package in libraries.items():
        if not loads(soname) and package not in packages:
            packages.append(package)
    return packages


def display_problem(environ: Mapping[str, str] = os.environ, platform: str = sys.platform,
                    loads: Callable[[str], bool] = _loads) -> str | None:
    """One line saying why the window cannot open here, or None when it should."""
    if not platform.startswith("linux"):
        return None
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen and not chosen.startswith("xcb"):
        return None  # offscreen, wayland, vnc …: the person picked it; Qt reports its own errors
    if not environ.get("DISPLAY") and not (environ.get("WAYLAND_DISPLAY") and not chosen):
        return ("no display found (DISPLAY is not set): the window needs a desktop session; "
                "the command line works headless (layerloom check|train|export|generate GRAPH)")
    if not environ.get("DISPLAY"):
        return None  # a Wayland session: Qt picks its wayland plugin
    missing = missing_libraries(loads=loads)
    if missing:
        return (f"Qt's xcb display plugin cannot load: missing system libraries; install them "
                f"with: sudo apt-get install {' '.join(missing)}")
    return None
