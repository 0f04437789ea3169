"""Start-up errors a person can act on: Qt itself would abort with "Reinstalling the application
may fix this problem"."""
import subprocess
import sys

from layerloom.gui.preflight import XCB_LIBRARIES, display_problem, missing_libraries


def test_no_display_is_one_line_that_points_at_the_headless_cli():
    line = display_problem(environ={}, platform="linux")
    assert "no display found" in line and "layerloom check" in line and "\n" not in line


def test_a_missing_xcb_library_names_its_debian_package_and_the_apt_command():
    loads = lambda soname: soname not in ("libxcb-cursor.so.0", "libxcb-icccm.so.4")  # noqa: E731
    line = display_problem(environ={"DISPLAY": ":0"}, platform="linux", loads=loads)
    assert line.endswith("sudo apt-get install libxcb-cursor0 libxcb-icccm4")
    assert display_problem(environ={"DISPLAY": ":0"}, platform="linux", loads=lambda s: True) is None


def test_a_chosen_platform_or_wayland_is_left_to_qt():
    assert display_problem(environ={"QT_QPA_PLATFORM": "offscreen"}, platform="linux") is None
    assert display_problem(environ={"WAYLAND_DISPLAY": "wayland-0"}, platform="linux") is None
    assert display_problem(environ={}, platform="darwin") is None


def test_this_machine_has_every_library_the_window_needs():
    """CI installs exactly the README's apt line: every library of the table must then load."""
    assert missing_libraries() == []
    assert len(set(XCB_LIBRARIES.values())) == len(XCB_LIBRARIES)


def test_the_command_without_a_display_exits_with_the_line_and_no_qt_abort(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "layerloom"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "layerloom: " + display_problem(environ={}, platform="linux")]
