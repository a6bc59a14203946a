"""Scenario files: a whole experiment as one validated pydantic model.

A scenario names the nodes and their hardware, the links and their physics,
which implementation runs each layer, what the applications are asked to do,
when to stop, and the seed. YAML (or JSON) files map one-to-one onto
:class:`Scenario`; anything a file can say, Python code can say by building
the same models.

Errors in a scenario raise :class:`ScenarioError` naming the field
(``links.0.length_km``) and the problem in one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from qnetstack.application.service import AppRequest
from qnetstack.physical.params import DetectorParams, FibreParams, HardwareParams, NodeHardware, SingleClickLinkParams
from qnetstack.physical.schemes.registry import HERALDING_SCHEMES, scheme_named
from qnetstack.physical.service import HeraldingScheme, Probability

__all__ = [
    "NodeSpec",
    "LinkSpec",
    "Implementations",
    "AppSpec",
    "StopSpec",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
]


class ScenarioError(ValueError):
    """A scenario that cannot be run: ``field`` says where, ``problem`` says what."""

    def __init__(self, field: str, problem: str, source: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{field}: {problem}" if field else f"{where}{problem}")


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class NodeSpec(_Spec):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    hardware: NodeHardware = NodeHardware()


# Fields of every scheme's parameter model that LinkSpec sets itself.
_LINK_FIELDS = ("length_km", "fibre", "detector", "bright_state_population")


class LinkSpec(_Spec):
    """A heralded link between nodes ``a`` and ``b`` (station at the midpoint).

    ``scheme`` is the heralding scheme; its parameter model (e.g.
    ``qnetstack.physical.params.SingleClickLinkParams``) gets ``length_km``, ``fibre``,
    ``detector``, the single-click ``bright_state_population`` (left out: the
    parameter model's default, 0.1; other schemes have none) and the scheme's own fields from ``scheme_params``
    (e.g. ``two_photon_visibility`` for ``barrett-kok``).
    """

    a: str
    b: str
    length_km: float = Field(gt=0.0)
    fibre: FibreParams = FibreParams()
    detector: DetectorParams = DetectorParams()
    scheme: HeraldingScheme = "single-click"
    bright_state_population: Probability | None = None
    scheme_params: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def _single_click_alpha_default(cls, data: Any) -> Any:
        # single-click links always show their α (the parameter model's default when not given)
        if isinstance(data, dict) and data.get("scheme", "single-click") == "single-click" and data.get("bright_state_population") is None:
            data = {**data, "bright_state_population": SingleClickLinkParams.model_fields["bright_state_population"].default}
        return data

    @property
    def name(self) -> str:
        return f"{self.a}-{self.b}"

    def physics(self) -> HardwareParams:
        """The link's parameter model for its scheme (raises ``ValueError`` or
        pydantic's ``ValidationError`` for settings the scheme does not take)."""
        entry = scheme_named(self.scheme)
        if entry is None:
            available = ", ".join(e.name for e in HERALDING_SCHEMES)
            raise ValueError(f"scheme {self.scheme!r} is not available in this build (available: {available})")
        fields: dict[str, Any] = {"length_km": self.length_km, "fibre": self.fibre, "detector": self.detector}
        if self.bright_state_population is not None:
            if entry.alpha_field is None:
                raise ValueError(f"the {self.scheme} scheme has no bright-state population; leave it out")
            fields["bright_state_population"] = self.bright_state_population
        clash = sorted(set(self.scheme_params) & set(_LINK_FIELDS))
        if clash:
            raise ValueError(f"set {', '.join(clash)} on the link itself, not in scheme_params")
        fields.update(self.scheme_params)
        return entry.params_type.model_validate(fields)


class Implementations(_Spec):
    """Which implementation runs each layer: a registered name or ``module:Class``."""

    # None: "qutip-single-click" when every link is single-click, else "model-heralding"
    physical: str | None = None
    link: str = "single-click-egp"
    network: str = "swap-asap"
    application: str = "basic-apps"


class AppSpec(_Spec):
    """A request handed to the application of ``node`` at ``at_ns``.

    ``request.request_id`` names the request in every response to it. Within
    a scenario the ids of one node's requests must all differ (the scenario
    cannot know when a request will have closed, so it does not reuse ids).
    Left out, a request gets the smallest id that no other request of its node
    has, in the order of ``applications``: a scenario that gives no ids numbers
    each node's requests 0, 1, 2, ...
    """

    node: str
    at_ns: int = Field(0, ge=0)
    request: AppRequest


class StopSpec(_Spec):
    """When to stop: when nothing is left to do, or at ``max_time_ns``, or after
    ``max_events`` events, whichever comes first.

    A run also stops, as stalled, when no application request has progressed
    for ``stall_after_ns`` of simulated time or ``stall_after_events`` events
    (left out: spans derived from the links' expected time per pair, see
    ``qnetstack.stack.runner``), and when ``wall_limit_s`` seconds of wall-clock
    time have passed (left out: no limit)."""

    max_time_ns: int | None = Field(None, gt=0)
    max_events: int | None = Field(10_000_000, gt=0)
    stall_after_ns: int | None = Field(None, gt=0)
    stall_after_events: int | None = Field(None, gt=0)
    wall_limit_s: float | None = Field(None, gt=0)


class Scenario(_Spec):
    name: str = "scenario"
    description: str = ""
    seed: int = Field(1, ge=0)
    nodes: list[NodeSpec] = Field(min_length=2)
    links: list[LinkSpec] = Field(min_length=1)
    implementations: Implementations = Implementations()
    applications: list[AppSpec] = []
    stop: StopSpec = StopSpec()
    keep_trace: bool = False

    @model_validator(mode="before")
    @classmethod
    def _number_requests(cls, data: Any) -> Any:
        # fills in the request ids left out (AppSpec); malformed entries are left for validation to report
        if not isinstance(data, dict) or not isinstance(data.get("applications"), list):
            return data
        apps = list(data["applications"])
        taken: dict[Any, set[int]] = {}
        missing = []
        for i, entry in enumerate(apps):
            node, request = _node_and_request(entry)
            if not isinstance(node, str) or request is None:
                continue
            given = _given_request_id(request)
            if given is None:
                missing.append((i, node, request))
            elif (number := _lax_request_id(given)) is not None:
                taken.setdefault(node, set()).add(number)
        for i, node, request in missing:
            used = taken.setdefault(node, set())
            request_id = next(n for n in range(len(used) + 1) if n not in used)
            used.add(request_id)
            if isinstance(request, BaseModel):
                request = request.model_copy(update={"request_id": request_id})
            else:
                request = {**request, "request_id": request_id}
            entry = apps[i]
            apps[i] = entry.model_copy(update={"request": request}) if isinstance(entry, AppSpec) else {**entry, "request": request}
        return {**data, "applications": apps}

    @model_validator(mode="after")
    def _references_resolve(self) -> Scenario:
        names = [n.name for n in self.nodes]
        seen: set[str] = set()
        for i, name in enumerate(names):
            if name in seen:
                raise _FieldProblem(f"nodes.{i}.name", f"duplicate node name {name!r}")
            seen.add(name)
        pairs: set[frozenset[str]] = set()
        for i, link in enumerate(self.links):
            for end in ("a", "b"):
                value = getattr(link, end)
                if value not in seen:
                    raise _FieldProblem(f"links.{i}.{end}", f"unknown node {value!r} (nodes: {', '.join(names)})")
            if link.a == link.b:
                raise _FieldProblem(f"links.{i}.b", f"a link needs two different nodes, got {link.a!r} twice")
            _check_physics(link, i)
            pair = frozenset((link.a, link.b))
            if pair in pairs:
                raise _FieldProblem(f"links.{i}", f"second link between {link.a!r} and {link.b!r}")
            pairs.add(pair)
        for i, app in enumerate(self.applications):
            if app.node not in seen:
                raise _FieldProblem(f"applications.{i}.node", f"unknown node {app.node!r}")
            remote = app.request.remote_node
            if remote not in seen:
                raise _FieldProblem(f"applications.{i}.request.remote_node", f"unknown node {remote!r}")
            if remote == app.node:
                raise _FieldProblem(f"applications.{i}.request.remote_node", "must differ from the app's own node")
        first_with: dict[tuple[str, int], int] = {}
        for i, app in enumerate(self.applications):
            key = (app.node, app.request.request_id)
            if key in first_with:
                raise _FieldProblem(
                    f"applications.{i}.request.request_id",
                    f"request_id {key[1]} is already used by applications.{first_with[key]} at node {app.node!r}",
                )
            first_with[key] = i
        return self


def _node_and_request(entry: Any) -> tuple[Any, Any]:
    if isinstance(entry, AppSpec):
        return entry.node, entry.request
    if isinstance(entry, dict) and isinstance(entry.get("request"), (dict, BaseModel)):
        return entry.get("node"), entry["request"]
    return None, None


_REQUEST_ID = TypeAdapter(int)


def _lax_request_id(value: Any) -> int | None:
    """The id pydantic will make of a given ``request_id`` (``0``, ``"0"`` and ``0.0``
    all name request 0), so numbering never hands out an id the file already uses;
    None for a value validation will refuse anyway."""
    try:
        return _REQUEST_ID.validate_python(value)
    except ValidationError:
        return None


def _given_request_id(request: Any) -> Any:
    """The request id a request states, or None when it leaves it out."""
    if isinstance(request, BaseModel):
        # a name in model_fields_set is a field of the model, so whatever model it is has the attribute
        return cast(Any, request).request_id if "request_id" in request.model_fields_set else None
    return request.get("request_id")


def _check_physics(link: LinkSpec, index: int) -> None:
    """The link's scheme exists and takes the link's settings, else a one-line problem naming the field."""
    try:
        link.physics()
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(part) for part in err["loc"])
        field = f"links.{index}.{loc}" if loc in _LINK_FIELDS else f"links.{index}.scheme_params.{loc}"
        raise _FieldProblem(field, f"{err['msg']} (scheme {link.scheme})") from None
    except ValueError as exc:
        where = (
            "scheme"
            if scheme_named(link.scheme) is None
            else ("bright_state_population" if "bright-state" in str(exc) else "scheme_params")
        )
        raise _FieldProblem(f"links.{index}.{where}", str(exc)) from None


class _FieldProblem(ValueError):
    """Raised inside validators so the field path survives pydantic's wrapping."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def parse_scenario(data: Any, source: str | None = None) -> Scenario:
    """Validate a scenario given as plain data (e.g. parsed YAML)."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise _one_line(exc, source) from None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a YAML or JSON scenario file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError("", f"cannot read scenario file: {exc.strerror}", str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "file"
        raise ScenarioError(where, f"not valid YAML: {getattr(exc, 'problem', exc)}", str(path)) from None
    if not isinstance(data, dict):
        raise ScenarioError("", "a scenario file must hold a mapping at the top level", str(path))
    return parse_scenario(data, source=str(path))


def _one_line(exc: ValidationError, source: str | None) -> ScenarioError:
    err = exc.errors()[0]
    ctx_error = (err.get("ctx") or {}).get("error")
    if isinstance(ctx_error, _FieldProblem):
        return ScenarioError(ctx_error.field, ctx_error.problem, source)
    loc = ".".join(str(part) for part in err["loc"] if not _is_union_tag(part))
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return ScenarioError(loc, msg, source)


# pydantic puts the discriminator value ("teleport") into the location of
# errors inside a tagged union; the user never wrote it as a key.
_APP_KINDS = frozenset(member.model_fields["kind"].default for member in get_args(get_args(AppRequest)[0]))


def _is_union_tag(part: Any) -> bool:
    return part in _APP_KINDS
