"""``python -m streamgmm``: the ``streamgmm`` command."""

from .cli import console

__all__: list[str] = []
"""Nothing here is public API (docs/api.md lists what is)."""

if __name__ == "__main__":
    console()
