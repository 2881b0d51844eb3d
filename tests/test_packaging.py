"""The installed package holds every module: an editable install finds modules in the source
tree even when pyproject.toml leaves their package out, so the suite checks the list itself."""

import tomllib

from support import ROOT

TOP_FOLDERS = ("hw", "sw", "sim", "synth", "data")


def test_every_python_package_is_in_the_distribution():
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(settings["packages"])
    on_disk = {
        "reuse_accel." + ".".join(init.parent.relative_to(ROOT).parts)
        for folder in TOP_FOLDERS for init in (ROOT / folder).rglob("__init__.py")
    }
    assert on_disk - listed == set()
    assert {"reuse_accel.hw.frontend", "reuse_accel.hw.core", "reuse_accel.sim.cocotb"} <= listed


def test_every_package_folder_is_mapped_to_its_source():
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = settings["package-dir"]
    for package in settings["packages"]:
        parts = package.split(".")[1:]
        # setuptools maps a subpackage through its nearest mapped parent
        for depth in range(len(parts), 0, -1):
            parent = "reuse_accel." + ".".join(parts[:depth])
            if parent in mapping:
                folder = ROOT / mapping[parent] / "/".join(parts[depth:])
                break
        assert (folder / "__init__.py").is_file() or package.endswith(".configs"), package
