"""The Python side of SparseJL's C entry points (docs/abi.md), made from the table Julia reads too.

SparseJL's ``src/abi.txt`` names the types a key may hold and, for every entry point, its type
parameters and its slots in order. Here each entry point becomes an `Entry` whose `key` spells
the key from dtypes and whose `pack` (generated from the table) puts slot values given by name
into the table's order, so no call site writes a slot number. Read on first use, never at import:
the backends that do not need Julia do not need the table either.
"""

from __future__ import annotations

import functools
import keyword
from pathlib import Path

import numpy as np


class Entry:
    """One entry point of abi.txt.

    `pack(**slots)`: the slot values, given by name, as a tuple in the table's order (addresses
    as ints). `pack_arrays(**slots)`, for entry points whose address slots come last: the values
    of the other slots and the NumPy arrays whose data pointers fill the address slots, the two
    tuples that `Runtime.call_arrays` takes.
    """

    def __init__(self, name: str, bootstrap: bool, types: tuple, slots: tuple, addresses: tuple):
        self.name, self.bootstrap = name, bootstrap
        self.types, self.slots, self.addresses = types, slots, addresses
        for slot in slots:
            if not slot.isidentifier() or keyword.iskeyword(slot):
                raise ValueError(f"abi.txt: slot {slot!r} of {name} is not a Python name")
        params = ", ".join(slots)
        first_address = addresses.index(True) if True in addresses else len(slots)
        code = f"def pack(*, {params}):\n    return ({params},)\n"
        if all(addresses[first_address:]):
            values, arrays = slots[:first_address], slots[first_address:]
            code += (f"def pack_arrays(*, {params}):\n"
                     f"    return ({''.join(v + ', ' for v in values)}), ({''.join(a + ', ' for a in arrays)})\n")
        namespace: dict = {}
        exec(code, namespace)  # noqa: S102 (the table's names, checked above)
        self.pack = namespace["pack"]
        if "pack_arrays" in namespace:
            self.pack_arrays = namespace["pack_arrays"]

    def key(self, *dtypes) -> str:
        """The key that names this entry point for values of `dtypes`, one per type parameter."""
        if len(dtypes) != len(self.types):
            raise TypeError(f"{self.name} takes {len(self.types)} types ({', '.join(self.types)}), "
                            f"got {len(dtypes)}")
        return f"{self.name}:{','.join(map(julia_type, dtypes))}" if dtypes else self.name

    def __repr__(self) -> str:
        return f"Entry({self.name!r}, types={self.types}, slots={self.slots})"


def table_path() -> Path:
    from .julia.find import package_dir
    return package_dir() / "src" / "abi.txt"


@functools.lru_cache(maxsize=None)
def table() -> tuple[dict, dict]:
    """The rows of abi.txt: ({NumPy dtype name: type row}, {entry point name: Entry})."""
    types, entries = {}, {}
    path = table_path()
    for lineno, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        words = line.split()
        if words[0] == "type" and len(words) >= 4:
            types[words[2]] = {"name": words[1], "dtype": words[2], "cpu": "cpu" in words[3:],
                               "gpu": "gpu" in words[3:]}
        elif words[0] in ("entry", "bootstrap") and "|" in line:
            head, tail = line.split("|")
            head = head.split()
            slots = tail.split()
            entries[head[1]] = Entry(head[1], words[0] == "bootstrap", tuple(head[2:]),
                                     tuple(s.lstrip("*") for s in slots), tuple(s.startswith("*") for s in slots))
        else:
            raise ValueError(f"{path}:{lineno}: not a type, entry or bootstrap row: {raw}")
    return types, entries


def entry(name: str) -> Entry:
    """The entry point `name` of abi.txt."""
    try:
        return table()[1][name]
    except KeyError:
        raise KeyError(f"abi.txt has no entry point {name!r}") from None


_julia_names: dict = {}


def julia_type(dtype) -> str:
    """The name that keys give values of `dtype` (float32 -> Float32), from abi.txt."""
    try:
        return _julia_names[dtype]
    except (KeyError, TypeError):
        pass
    row = table()[0].get(np.dtype(dtype).name)
    if row is None:
        raise TypeError(f"no SparseJL type for dtype {np.dtype(dtype).name}; abi.txt has "
                        + ", ".join(table()[0]))
    try:
        _julia_names[dtype] = row["name"]
    except TypeError:
        pass
    return row["name"]
