"""Write docs/api.md from the docstrings and the command's help texts.

    python docs/make_api.py            # rewrite docs/api.md
    python docs/make_api.py --check    # exit 1 if docs/api.md is out of date

tests/test_docs.py runs the check, so the reference always matches the code.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path

API_PATH = Path(__file__).with_name("api.md")

MODULES = [
    "streamgmm",
    "streamgmm.datasets",
    "streamgmm.plot",
    "streamgmm.progress",
    "streamgmm.inputs",
    "streamgmm.io",
    "streamgmm.outputs",
    "streamgmm.online",
    "streamgmm.selection",
    "streamgmm.engine",
    "streamgmm.hyperparameters",
    "streamgmm.validation",
    "streamgmm.mixture",
    "streamgmm.bayesian",
]
"""The modules with a public API, in the reference's order. Each documents
exactly its ``__all__``; every other module's ``__all__`` is empty
(tests/test_architecture.py checks both)."""

HEADER = """# API reference

Generated from the docstrings by `python docs/make_api.py`; do not edit by hand.
Parameters keep the names and meanings of `sklearn.mixture.GaussianMixture`;
[the user guide](user-guide.md) shows them in use.

"""


def _signature(name: str, obj) -> str:
    try:
        return f"{name}{inspect.signature(obj)}"
    except (TypeError, ValueError):
        return name


def _docstring(obj) -> str:
    return inspect.cleandoc(obj.__doc__ or "(no docstring)")


def _block(text: str) -> str:
    return f"```text\n{text}\n```\n"


def _public_methods(cls) -> list[tuple[str, object]]:
    return [
        (name, member)
        for name, member in vars(cls).items()
        if not name.startswith("_")
        and (inspect.isfunction(member) or isinstance(member, property))
    ]


def _document(module_name: str, name: str, seen: dict[int, str]) -> str:
    obj = getattr(importlib.import_module(module_name), name)
    title = f"### `{module_name}.{name}`\n\n"
    if (inspect.isclass(obj) or callable(obj)) and id(obj) in seen:
        return f"{title}The same as `{seen[id(obj)]}`.\n\n"
    seen[id(obj)] = f"{module_name}.{name}"
    if not (inspect.isclass(obj) or callable(obj)):
        return f"{title}{_block(f'{name} = {obj!r}')}\n"
    text = title + _block(f"{_signature(name, obj)}\n\n{_docstring(obj)}") + "\n"
    if inspect.isclass(obj) and not issubclass(obj, BaseException):
        for method_name, method in _public_methods(obj):
            if isinstance(method, property):
                body = _docstring(method)
            else:
                body = f"{_signature(method_name, method)}\n\n{_docstring(method)}"
            text += f"#### `{name}.{method_name}`\n\n{_block(body)}\n"
    return text


def _command_help() -> str:
    import click

    from streamgmm.cli import main

    text = "## The `streamgmm` command\n\n"
    root = click.Context(
        main,
        info_name="streamgmm",
        terminal_width=99,
        max_content_width=99,
        **main.context_settings,
    )
    text += _block(main.get_help(root)) + "\n"
    for name, command in main.commands.items():
        context = click.Context(
            command, info_name=name, parent=root, terminal_width=99, max_content_width=99
        )
        text += f"### `streamgmm {name}`\n\n{_block(command.get_help(context))}\n"
    return text


def render() -> str:
    text = HEADER
    seen: dict[int, str] = {}
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        text += f"## `{module_name}`\n\n{_docstring(module)}\n\n"
        text += "".join(_document(module_name, name, seen) for name in module.__all__)
    return text.rstrip("\n") + "\n\n" + _command_help().rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not API_PATH.exists() or API_PATH.read_text() != text:
            print(f"{API_PATH} is out of date: run python docs/make_api.py", file=sys.stderr)
            return 1
        return 0
    API_PATH.write_text(text)
    print(f"wrote {API_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
