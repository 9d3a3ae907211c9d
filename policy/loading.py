"""Policy specs: a built-in name, `module:Class`, `path/to/file.py:Class` or an entry point.

Every engine and command names a policy by one string, its *spec*, and resolves it here, so a
user's class runs wherever a built-in does: the simulator, sweep workers (each process
resolves the spec again), the live executor and `fastserve validate`. A spec is:

- a built-in name (`fcfs`, `skip-join-mlfq`, ...; `policy.registry.POLICIES`);
- a name registered by an installed package under the entry-point group `fastserve.policies`
  (`[project.entry-points."fastserve.policies"] my-policy = "pkg.mod:MyPolicy"`);
- `package.module:Class`, imported from `sys.path`;
- `path/to/file.py:Class`, loaded from that file (relative to the working directory).

Any of them may end with `:name=value,name=value`, keyword arguments for the class's
constructor (`cls(config, cost, name=value, ...)`): ints, floats, `true`/`false`, or text.
That is how a sweep grid varies a policy's own parameter.

Invariants: the spec string is the policy's identity everywhere (results' `policy` column,
sweep cells); resolving it twice in one process gives the same class; every failure is a
`PolicyLoadError` (a `ValueError`) whose message is one line naming the spec and what is wrong.
A file's source can be handed over in memory (`provide_file`), so a worker without the file
(a Ray node) loads exactly the bytes the driver hashed.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

ENTRY_POINT_GROUP = "fastserve.policies"


class PolicyLoadError(ValueError):
    """A spec that does not name a usable Scheduler subclass (one-line message)."""


@dataclass(frozen=True)
class PolicySpec:
    """A parsed spec: `target` is a built-in or entry-point name, `module:Class` or `file.py:Class`."""

    text: str
    target: str
    params: tuple[tuple[str, object], ...] = ()

    @property
    def is_file(self) -> bool:
        return ":" in self.target and self.target.rsplit(":", 1)[0].endswith(".py")

    @property
    def is_import(self) -> bool:
        return ":" in self.target and not self.is_file

    def kwargs(self) -> dict[str, object]:
        return dict(self.params)


def _value(text: str) -> object:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_spec(text: str) -> PolicySpec:
    """Split a spec into its target and constructor parameters (see the module docstring)."""
    if not isinstance(text, str) or not text.strip():
        raise PolicyLoadError(f"policy spec must be a non-empty string, got {text!r}")
    target, params = text.strip(), ()
    head, sep, tail = target.rpartition(":")
    if sep and "=" in tail:
        pairs = []
        for item in tail.split(","):
            name, eq, value = item.partition("=")
            if not eq or not name.strip().isidentifier():
                raise PolicyLoadError(f"policy {text!r}: parameter {item!r} is not name=value")
            pairs.append((name.strip(), _value(value.strip())))
        target, params = head, tuple(pairs)
    parts = target.split(":")
    if len(parts) >= 3 and parts[-2].isidentifier() and (parts[-3].endswith(".py") or "/" not in parts[-3]):
        raise PolicyLoadError(f"policy {text!r}: parameters after the class must be name=value, got {parts[-1]!r}")
    if ":" in target and not target.rsplit(":", 1)[1].isidentifier():
        raise PolicyLoadError(f"policy {text!r}: {target.rsplit(':', 1)[1]!r} is not a class name")
    return PolicySpec(text.strip(), target, params)


# -- file sources -----------------------------------------------------------------------------
_provided: dict[str, str] = {}  # path as written in specs -> source text (see `provide_file`)
_file_modules: dict[str, object] = {}  # sha256 -> module loaded from that source


def provide_file(path: str, source: str) -> None:
    """Use `source` for policy file `path` in this process (a worker that may lack the file)."""
    _provided[path] = source


def file_source(path: str) -> str:
    """The text of a policy file: what `provide_file` gave, else the file on disk."""
    if path in _provided:
        return _provided[path]
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise PolicyLoadError(f"policy file {path} does not exist") from None
    except OSError as e:
        raise PolicyLoadError(f"policy file {path}: {e.strerror or e}") from None


def _load_file_module(path: str):
    source = file_source(path)
    digest = hashlib.sha256(source.encode()).hexdigest()
    module = _file_modules.get(digest)
    if module is not None:
        return module, digest
    # One module per source hash: two different files (or two versions) never share a name.
    name = f"fastserve_user_policy_{Path(path).stem}_{digest[:12]}"
    module = type(sys)(name)
    module.__file__ = str(Path(path).resolve())
    sys.modules[name] = module  # dataclasses and pickling look classes up by module name
    try:
        exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - the user's policy
    except Exception as e:  # noqa: BLE001 - any error in user code becomes one line
        del sys.modules[name]
        raise PolicyLoadError(f"policy file {path} failed to load: {type(e).__name__}: {_first_line(e)}") from None
    _file_modules[digest] = module
    return module, digest


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def _import_module(spec: PolicySpec, module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise PolicyLoadError(f"policy {spec.text!r}: no module named {e.name!r}") from None
        raise PolicyLoadError(f"policy {spec.text!r}: importing {module_name} failed: {_first_line(e)}") from None
    except Exception as e:  # noqa: BLE001 - any error in user code becomes one line
        raise PolicyLoadError(f"policy {spec.text!r}: importing {module_name} failed: "
                              f"{type(e).__name__}: {_first_line(e)}") from None


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def known_names() -> list[str]:
    """Built-in and entry-point policy names, for help texts and errors."""
    from policy.registry import POLICIES

    return [*POLICIES, *sorted(set(_entry_points()) - set(POLICIES))]


def _check_class(spec: PolicySpec, cls: object, where: str) -> type:
    from policy.scheduler import Scheduler

    if not (inspect.isclass(cls) and issubclass(cls, Scheduler)):
        what = f"class {cls.__name__}" if inspect.isclass(cls) else type(cls).__name__
        raise PolicyLoadError(f"policy {spec.text!r}: {where} is a {what}, not a policy.Scheduler subclass")
    if inspect.isabstract(cls) or cls is Scheduler:
        raise PolicyLoadError(f"policy {spec.text!r}: {where} is abstract; subclass it")
    return cls


def load_policy_class(spec: str | PolicySpec) -> type:
    """The Scheduler subclass a spec names (PolicyLoadError with one line otherwise)."""
    from policy.registry import POLICIES

    spec = parse_spec(spec) if isinstance(spec, str) else spec
    target = spec.target
    if ":" not in target:
        if target in POLICIES:
            return POLICIES[target]
        ep = _entry_points().get(target)
        if ep is None:
            raise PolicyLoadError(
                f"unknown policy {target!r}; choose one of {', '.join(known_names())}, "
                f"or give module:Class or path/to/file.py:Class")
        try:
            cls = ep.load()
        except Exception as e:  # noqa: BLE001 - an installed package's error becomes one line
            raise PolicyLoadError(f"policy {target!r} (entry point {ep.value}) failed to load: "
                                  f"{type(e).__name__}: {_first_line(e)}") from None
        return _check_class(spec, cls, f"entry point {ep.value}")
    where, class_name = target.rsplit(":", 1)
    module = _load_file_module(where)[0] if spec.is_file else _import_module(spec, where)
    cls = getattr(module, class_name, None)
    if cls is None:
        raise PolicyLoadError(f"policy {spec.text!r}: {where} has no class {class_name!r}")
    return _check_class(spec, cls, f"{where}:{class_name}")


def resolve(spec: str | PolicySpec) -> type:
    """`load_policy_class`, and the spec's parameters checked against the constructor."""
    parsed = parse_spec(spec) if isinstance(spec, str) else spec
    cls = load_policy_class(parsed)
    if parsed.params:
        try:
            inspect.signature(cls).bind(None, None, **parsed.kwargs())
        except TypeError as e:
            raise PolicyLoadError(f"policy {parsed.text!r}: {cls.__name__} does not take these parameters ({e})") from None
    return cls


def instantiate(spec: str, config=None, cost=None):
    """Build the scheduler a spec names, with its parameters (one-line errors)."""
    parsed = parse_spec(spec)
    return resolve(parsed)(config, cost, **parsed.kwargs())


def provenance(spec: str) -> dict:
    """What a run directory records so the run can be repeated: the class, its module, the
    file it came from and that file's sha256 (None where the module has no file)."""
    parsed = parse_spec(spec)
    cls = load_policy_class(parsed)
    if parsed.is_file:
        path = parsed.target.rsplit(":", 1)[0]
        digest = _load_file_module(path)[1]
        return {"spec": spec, "module": Path(path).stem, "class": cls.__qualname__, "file": str(Path(path).resolve()),
                "sha256": digest, "params": parsed.kwargs()}
    module = sys.modules.get(cls.__module__)
    file = getattr(module, "__file__", None)
    digest = hashlib.sha256(Path(file).read_bytes()).hexdigest() if file and Path(file).is_file() else None
    return {"spec": spec, "module": cls.__module__, "class": cls.__qualname__, "file": file,
            "sha256": digest, "params": parsed.kwargs()}
