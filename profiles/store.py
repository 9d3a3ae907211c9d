"""Profiles on disk: JSON <-> `Profile`, the bundled profiles in profiles/data/, and lookup by name.

`load_profile` accepts a bundled name (a file stem in profiles/data/) or a path. Every schema
problem is one line: `<file>: field '<path>': <what is wrong>`. `save_profile` writes compact,
diff-friendly JSON (numeric lists on one line) whose floats round-trip exactly, so a saved and
reloaded profile gives bit-identical costs.
"""

from __future__ import annotations

import json
from pathlib import Path

from profiles.models import ModelSpec
from profiles.schema import (
    SCHEMA_VERSION,
    EngineOverhead,
    LatencyCurve,
    LatencyGrid,
    Profile,
    ProfileError,
)

DATA_DIR = Path(__file__).resolve().parent / "data"
DEFAULT_PROFILE = "opt-13b_a100-80gb_tp1"
REQUIRED = ("schema_version", "source", "generated_by", "model", "hardware", "software",
            "parallelism", "kv", "prefill", "decode", "swap")


def list_profiles() -> list[str]:
    return sorted(p.stem for p in DATA_DIR.glob("*.json"))


def resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        return path
    bundled = DATA_DIR / f"{name_or_path}.json"
    if bundled.exists():
        return bundled
    raise ProfileError("<file>", f"no such file, and no bundled profile named {str(name_or_path)!r}; "
                                 f"bundled: {', '.join(list_profiles()) or 'none'}", str(name_or_path))


def load_profile(name_or_path: str | Path) -> Profile:
    path = resolve(name_or_path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ProfileError("<file>", f"cannot read: {e.strerror or e}", str(path)) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError("<json>", f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}",
                           str(path)) from None
    try:
        return profile_from_dict(data)
    except ProfileError as e:
        raise e.at(str(path)) from None


def save_profile(profile: Profile, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_dumps(profile_to_dict(profile)) + "\n")
    return path


# -- dict <-> Profile -----------------------------------------------------------------------
def profile_to_dict(p: Profile) -> dict:
    out = {
        "schema_version": p.schema_version, "source": p.source, "generated_by": p.generated_by,
        "model": p.model.to_dict(), "hardware": p.hardware, "software": p.software,
        "parallelism": {"tp": p.tp, "pp": p.pp}, "mixed_batch": p.mixed_batch,
        "kv": {"bytes_per_token": p.kv_bytes_per_token, "device_tokens": p.device_kv_tokens,
               "host_tokens": p.host_kv_tokens},
        "prefill": _grid_dict(p.prefill, "prompt_tokens"),
        "decode": _grid_dict(p.decode, "context_tokens"),
        "swap": {"bytes": list(p.swap_out.size_bytes), "out_s": list(p.swap_out.latency_s),
                 "in_s": list(p.swap_in.latency_s)},
    }
    collectives = {name: {"bytes": list(c.size_bytes), "latency_s": list(c.latency_s)}
                   for name, c in (("send_recv", p.send_recv), ("all_reduce", p.all_reduce)) if c}
    if collectives:
        out["collectives"] = collectives
    if p.decode_context != "mean":  # optional fields: written only when they say something
        out["decode_context"] = p.decode_context
    if p.transfers != _default_transfers(p.hardware):
        out["transfers"] = p.transfers
    if p.mixed_shared_s is not None:
        out["mixed_shared_s"] = p.mixed_shared_s
    if p.forward_scale != 1.0:
        out["forward_scale"] = p.forward_scale
    if p.forward_noise:
        out["forward_noise"] = list(p.forward_noise)
    if p.forward_scale_by_batch:
        out["forward_scale_by_batch"] = [list(pair) for pair in p.forward_scale_by_batch]
    if p.prefill_context is not None:
        out["prefill_context"] = _grid_dict(p.prefill_context, "context_tokens", "chunk_tokens")
    if p.mixed_chunk is not None:
        out["mixed_chunk"] = _grid_dict(p.mixed_chunk, "context_tokens", "chunk_tokens")
    if p.overhead is not None:
        out["engine_overhead"] = _overhead_dict(p.overhead)
    if p.policy_overhead:
        out["engine_overhead_by_policy"] = {name: _overhead_dict(o) for name, o in p.policy_overhead.items()}
    if p.notes:
        out["notes"] = p.notes
    return out


def profile_from_dict(d) -> Profile:
    if not isinstance(d, dict):
        raise ProfileError("<root>", f"must be a JSON object, got {type(d).__name__}")
    for key in REQUIRED:
        if key not in d:
            raise ProfileError(key, "missing")
    if d["schema_version"] != SCHEMA_VERSION:  # checked first: other fields may differ by version
        raise ProfileError("schema_version", f"expected {SCHEMA_VERSION}, got {d['schema_version']!r}")
    par, kv, swap = _obj(d, "parallelism"), _obj(d, "kv"), _obj(d, "swap")
    coll = _obj(d, "collectives") if "collectives" in d else {}
    curves = {name: _curve(f"collectives.{name}", _obj(coll, name, "collectives."), "latency_s")
              for name in ("send_recv", "all_reduce") if name in coll}
    overhead = _overhead(_obj(d, "engine_overhead"), "engine_overhead.") if "engine_overhead" in d else None
    by_policy = _obj(d, "engine_overhead_by_policy") if "engine_overhead_by_policy" in d else {}
    policy_overhead = {name: _overhead(_obj(by_policy, name, "engine_overhead_by_policy."),
                                       f"engine_overhead_by_policy.{name}.") for name in by_policy}
    return Profile(
        model=_model(_obj(d, "model")), hardware=_obj(d, "hardware"), software=_obj(d, "software"),
        tp=_get(par, "tp", "parallelism."), pp=_get(par, "pp", "parallelism."),
        prefill=_grid(_obj(d, "prefill"), "prefill", "prompt_tokens"),
        decode=_grid(_obj(d, "decode"), "decode", "context_tokens"),
        swap_out=_curve("swap", swap, "out_s"), swap_in=_curve("swap", swap, "in_s"),
        kv_bytes_per_token=_get(kv, "bytes_per_token", "kv."),
        device_kv_tokens=_get(kv, "device_tokens", "kv."), host_kv_tokens=_get(kv, "host_tokens", "kv."),
        source=d["source"], generated_by=d["generated_by"],
        send_recv=curves.get("send_recv"), all_reduce=curves.get("all_reduce"),
        mixed_batch=d.get("mixed_batch", "fused"), notes=d.get("notes", {}),
        decode_context=d.get("decode_context", "mean"), overhead=overhead, policy_overhead=policy_overhead,
        transfers=d.get("transfers", _default_transfers(d["hardware"])),
        mixed_shared_s=d.get("mixed_shared_s"),
        forward_scale=d.get("forward_scale", 1.0), forward_noise=_tuple(d.get("forward_noise", [])),
        forward_scale_by_batch=d.get("forward_scale_by_batch", ()),
        prefill_context=(_grid(_obj(d, "prefill_context"), "prefill_context", "context_tokens", "chunk_tokens")
                         if "prefill_context" in d else None),
        mixed_chunk=(_grid(_obj(d, "mixed_chunk"), "mixed_chunk", "context_tokens", "chunk_tokens")
                     if "mixed_chunk" in d else None),
        schema_version=d["schema_version"],
    )


def _default_transfers(hardware) -> str:
    """Profiles from before the field: a CPU engine's copies were synchronous, a GPU's not."""
    return "sync" if isinstance(hardware, dict) and hardware.get("name") == "cpu" else "async"


def _overhead_dict(o: EngineOverhead) -> dict:
    return {name: getattr(o, name) for name in EngineOverhead.FIELDS}


def _overhead(o: dict, prefix: str) -> EngineOverhead:
    absent = {k: 0.0 for k in EngineOverhead.OPTIONAL_FIELDS if k not in o}  # profiles from before them
    return EngineOverhead(**{k: absent[k] if k in absent else _get(o, k, prefix) for k in EngineOverhead.FIELDS})


def _get(d: dict, key: str, prefix: str = ""):
    if key not in d:
        raise ProfileError(prefix + key, "missing")
    return d[key]


def _obj(d: dict, key: str, prefix: str = "") -> dict:
    value = _get(d, key, prefix)
    if not isinstance(value, dict):
        raise ProfileError(prefix + key, f"must be a JSON object, got {type(value).__name__}")
    return value


def _tuple(value):
    return tuple(_tuple(v) for v in value) if isinstance(value, list) else value


def _model(d: dict) -> ModelSpec:
    known = ModelSpec.__dataclass_fields__
    for key in d:
        if key not in known:
            raise ProfileError(f"model.{key}", "unknown field")
    for key in known:  # all required in a file, even those with a catalog default (dtype)
        if key not in d:
            raise ProfileError(f"model.{key}", "missing")
    try:
        return ModelSpec(**d)
    except ValueError as e:
        raise ProfileError("model", str(e)) from None


def _grid(d: dict, prefix: str, token_axis: str, row_axis: str = "batch_sizes") -> LatencyGrid:
    return LatencyGrid(_tuple(_get(d, row_axis, prefix + ".")),
                       _tuple(_get(d, token_axis, prefix + ".")),
                       _tuple(_get(d, "latency_s", prefix + ".")))


def _grid_dict(g: LatencyGrid, token_axis: str, row_axis: str = "batch_sizes") -> dict:
    return {row_axis: list(g.batch_sizes), token_axis: list(g.tokens),
            "latency_s": [list(r) for r in g.latency_s]}


def _curve(prefix: str, d: dict, values: str) -> LatencyCurve:
    return LatencyCurve(_tuple(_get(d, "bytes", prefix + ".")), _tuple(_get(d, values, prefix + ".")))


def _dumps(value, indent: int = 0) -> str:
    """JSON with objects indented and lists of scalars kept on one line."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {_dumps(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        return "[\n" + ",\n".join(inner + _dumps(v, indent + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value)
