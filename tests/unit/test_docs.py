"""The configuration reference (docs/source/reference/config.md) lists every configurable class."""

import importlib
import inspect
import pkgutil
import re
from pathlib import Path

from traitlets.config import Configurable

import backendai_hub

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "source" / "reference" / "config.md"
DIRECTIVE = re.compile(r"^\.\. autoconfigurable:: (\S+)\s*$", re.MULTILINE)

# Scripts rather than modules: alembic's env.py runs only inside an alembic command, and the service's
# __main__ starts the service (and creates its database) when imported.
NOT_IMPORTED = ("backendai_hub.alembic",)


def _module_names(path, prefix):
    for info in pkgutil.iter_modules(path, prefix):
        if info.name in NOT_IMPORTED or info.name.endswith(".__main__"):
            continue
        yield info.name
        if info.ispkg:
            yield from _module_names(importlib.import_module(info.name).__path__, info.name + ".")


def _ours(trait):
    return trait.this_class.__module__.split(".")[0] == "backendai_hub"


def package_configurables():
    """Public Configurable classes defined in backendai_hub with a config=True setting of backendai_hub."""
    found = {}
    for name in _module_names(backendai_hub.__path__, "backendai_hub."):
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if (inspect.isclass(obj) and issubclass(obj, Configurable) and obj.__module__ == name
                    and not obj.__name__.startswith("_")
                    and any(_ours(t) for t in obj.class_traits(config=True).values())):
                found[f"{name}.{obj.__qualname__}"] = obj
    return found


def documented():
    """The import paths the reference page documents, each with the class it names."""
    paths = DIRECTIVE.findall(REFERENCE.read_text())
    classes = {}
    for path in paths:
        module, _, attr = path.rpartition(".")
        classes[path] = getattr(importlib.import_module(module), attr)
    return classes


def test_the_reference_names_configurable_classes():
    classes = documented()
    assert classes, f"no '.. autoconfigurable::' directive in {REFERENCE}"
    not_configurable = [p for p, c in classes.items() if not (inspect.isclass(c) and issubclass(c, Configurable))]
    assert not not_configurable, f"not traitlets Configurables: {not_configurable}"
    assert len(set(classes.values())) == len(classes), "a class is documented twice"


def test_every_configurable_is_documented():
    listed = set(documented().values())
    missing = sorted(path for path, cls in package_configurables().items() if cls not in listed)
    assert not missing, (
        f"configurable classes missing from {REFERENCE.relative_to(REFERENCE.parents[3])}: {missing}; "
        "add an '.. autoconfigurable::' directive naming each by its public import path"
    )
