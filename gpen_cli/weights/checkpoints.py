"""Reading untrusted checkpoint files: tensors only, and one clear line when they do not fit.

Every network the tool runs (GPEN, the detectors, face parsing, FAN) loads its weights
through here, so a file that tries to run code when unpickled is refused the same way
everywhere, and a wrong file is named with what does not fit.
"""

from __future__ import annotations

import contextlib
import pickle
import pickletools
import re
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from torch import nn

from gpen_cli.core.errors import CheckpointError

# Dicts that trainers wrap a state dict in, most specific first.
WRAPPER_KEYS = ("g_ema", "params_ema", "params", "state_dict", "model", "generator", "net_g")
MAX_LISTED = 4
# Room for the container's own bytes when comparing what tensors declare with the file size.
_SIZE_SLACK = 1.05
_SIZE_SLACK_BYTES = 1 << 20
# torch's weights-only unpickler names the global a file asked for in a few wordings.
_GLOBAL_NAME = re.compile(r"GLOBAL ([\w.]+)")
# Modules whose functions a genuine checkpoint's pickle calls (tensor rebuilding, ordered dicts).
_CHECKPOINT_MODULES = ("torch", "collections")

StateDict = dict[str, torch.Tensor]


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Build networks under torch's CPU generator seeded with `seed`, leaving the caller's
    random state as it was (a registry entry's `random_init` changes nothing else)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_checkpoint(path: Path) -> object:
    """Read a checkpoint file without running any pickled code.

    `weights_only=True` refuses anything but tensors and plain containers, so a file that
    tries to execute code is rejected, not run.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        with warnings.catch_warnings():
            # A pickle newer than torch's own protocol 2 is read all the same, or refused below.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # The weights-only unpickler stops at the first function or class outside its
        # allow-list, which a full unpickler would import and call: code the file runs.
        # It names it, unless it stopped before (on an opcode newer than it reads).
        named = _GLOBAL_NAME.search(str(exc))
        call = named.group(1) if named else _call_outside_torch(path)
        if call is None:
            raise CheckpointError(
                f"{path}: not a readable PyTorch checkpoint (corrupt or not a checkpoint)"
            ) from None
        raise CheckpointError(
            f"{path}: refused: the file tried to run code ({call}) when loaded; "
            "nothing was run (checkpoints may only hold tensors)"
        ) from None
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or _first_line(exc)})") from None
    except Exception:  # torch.load fails in many ways on foreign files, none of them telling
        raise CheckpointError(
            f"{path}: not a readable PyTorch checkpoint (corrupt or not a checkpoint)"
        ) from None


def _call_outside_torch(path: Path) -> str | None:
    """The first function or class the file's pickle would import from outside torch and
    `collections`, read from its opcodes (nothing is unpickled); None when there is none or
    the file is no pickle. The pickle is the file itself, or `data.pkl` in torch's zip."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                name = next((n for n in archive.namelist() if n.endswith("/data.pkl")), None)
                return None if name is None else _first_foreign_global(archive.read(name))
        with path.open("rb") as stream:
            return _first_foreign_global(stream)
    except Exception:  # not a pickle after all: the caller says "corrupt"
        return None


def _first_foreign_global(pickled: object) -> str | None:
    strings: list[str] = []
    for opcode, argument, _ in pickletools.genops(pickled):
        if opcode.name in ("GLOBAL", "INST"):
            call = str(argument).replace(" ", ".")
        elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
            call = f"{strings[-2]}.{strings[-1]}"
        else:
            if isinstance(argument, str):
                strings.append(argument)
            continue
        if call.split(".")[0] not in _CHECKPOINT_MODULES:
            return call
    return None


def _read_safetensors(path: Path) -> object:
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise CheckpointError(
            f"{path}: reading .safetensors needs the safetensors package (pip install safetensors)"
        ) from None
    try:
        return load_file(str(path), device="cpu")
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read ({exc.strerror or _first_line(exc)})") from None
    except Exception as exc:  # SafetensorError and friends: truncated, garbage, bad header
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({_first_line(exc)[:160]})"
        ) from None


def check_declared_size(state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Refuse tensors that declare more bytes than the file holds.

    A saved tensor may be a view (stride 0, overlapping strides) of a tiny storage: a 6 kB
    file can declare gigabytes, which copying or building a model of that shape would then
    allocate. A genuine checkpoint stores every element, so its tensors fit in its file.
    """
    declared = sum(tensor.numel() * tensor.element_size() for tensor in state.values())
    file_bytes = Path(path).stat().st_size
    if declared > file_bytes * _SIZE_SLACK + _SIZE_SLACK_BYTES:
        raise CheckpointError(
            f"{path}: refused: its tensors declare {declared / 1e6:.1f} MB but the file holds "
            f"{file_bytes / 1e6:.1f} MB (stride-0 or overlapping views, not real weights)"
        )


def unwrap_state_dict(obj: object, origin: str, what: str = "state dict") -> StateDict:
    """Find the tensors in the variants seen in the wild (wrapping dicts, `module.`)."""
    for _ in range(4):
        if not isinstance(obj, Mapping):
            raise CheckpointError(
                f"{origin}: not a {what} (a {type(obj).__name__}, not a dict of tensors)"
            )
        if obj and all(isinstance(value, torch.Tensor) for value in obj.values()):
            break
        inner = next((obj[key] for key in WRAPPER_KEYS if isinstance(obj.get(key), Mapping)), None)
        if inner is None:
            keys = sorted(map(str, obj))[:8]
            raise CheckpointError(f"{origin}: not a {what} (no tensors; top-level keys are {keys})")
        obj = inner
    return {re.sub(r"^(module\.)+", "", str(key)): value for key, value in obj.items()}


def read_state_dict(path: Path, what: str = "state dict") -> StateDict:
    """The tensors of a checkpoint file, refused when they declare more than the file holds."""
    state = unwrap_state_dict(read_checkpoint(path), str(path), what)
    check_declared_size(state, path)
    return state


def describe_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """What keeps `state` from loading into `model` with strict=True ("" when nothing)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} != {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else ""
            parts.append(f"{label}: {', '.join(items[:MAX_LISTED])}{more}")
    return "; ".join(parts)


def load_strict(
    model: nn.Module, state: Mapping[str, torch.Tensor], origin: str, what: str
) -> None:
    """`load_state_dict(strict=True)`, after saying in one line why it would not fit."""
    mismatch = describe_mismatch(model, state)
    if mismatch:
        raise CheckpointError(f"{origin}: not a {what} ({mismatch})")
    model.load_state_dict(state, strict=True)
