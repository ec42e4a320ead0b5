"""Minimal stand-ins for ROS 2's `launch` and `launch_ros` (not installable here), faithful enough to run a launch
file's `generate_launch_description()` and evaluate what it would start.

The classes take the same keyword arguments as the real ones (a misspelt keyword is a TypeError here too) and
implement the semantics the launch files rely on: launch configurations set by DeclareLaunchArgument defaults
or overrides (with `choices` enforced), substitutions performed against them, IfCondition, ParameterValue
coercion with YAML rules, IncludeLaunchDescription of a Python launch file with launch arguments.
FindPackageShare('vla_bringup') resolves to the repository root, which has the layout of the install.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
SHARES = {"vla_bringup": REPO}


class LaunchError(RuntimeError):
    """What `ros2 launch` would refuse: a missing required argument, a value outside `choices`."""


# ---------------------------------------------------------------------------------------------- substitutions
class Substitution:
    def perform(self, context: Context) -> str:
        raise NotImplementedError


def perform(context: Context, value: Any) -> str:
    """A SomeSubstitutionsType (str, Substitution or a list of them, concatenated) -> text."""
    if isinstance(value, str):
        return value
    if isinstance(value, Substitution):
        return value.perform(context)
    if isinstance(value, Iterable):
        return "".join(perform(context, v) for v in value)
    raise TypeError(f"not a substitution: {value!r}")


class LaunchConfiguration(Substitution):
    def __init__(self, variable_name: str, *, default: Any = None) -> None:
        self.variable_name = variable_name
        self.default = default

    def perform(self, context: Context) -> str:
        if self.variable_name in context.configurations:
            return context.configurations[self.variable_name]
        if self.default is not None:
            return perform(context, self.default)
        raise LaunchError(f"launch configuration '{self.variable_name}' does not exist")


class PathJoinSubstitution(Substitution):
    def __init__(self, substitutions: Iterable[Any]) -> None:
        self.substitutions = list(substitutions)

    def perform(self, context: Context) -> str:
        return os.path.join(*(perform(context, s) for s in self.substitutions))


class FindPackageShare(Substitution):
    def __init__(self, package: Any) -> None:
        self.package = package

    def perform(self, context: Context) -> str:
        name = perform(context, self.package)
        if name not in SHARES:
            raise LaunchError(f"package '{name}' not found")
        return str(SHARES[name])


class ParameterValue:
    def __init__(self, value: Any, *, value_type: type | None = None) -> None:
        self.value = value
        self.value_type = value_type

    def evaluate(self, context: Context) -> Any:
        text = perform(context, self.value)
        if self.value_type is str:
            return text
        parsed = yaml.safe_load(text) if text else ""
        if self.value_type is not None and not isinstance(parsed, self.value_type):
            raise LaunchError(f"parameter value {text!r} is not a {self.value_type.__name__}")
        return parsed


class IfCondition:
    def __init__(self, predicate_expression: Any) -> None:
        self.predicate_expression = predicate_expression

    def evaluate(self, context: Context) -> bool:
        text = perform(context, self.predicate_expression).strip().lower()
        if text not in ("true", "false", "1", "0"):
            raise LaunchError(f"IfCondition expects true/false, got {text!r}")
        return text in ("true", "1")


class UnlessCondition(IfCondition):
    def evaluate(self, context: Context) -> bool:
        return not super().evaluate(context)


# ------------------------------------------------------------------------------------------------ actions
class Action:
    def __init__(self, *, condition: IfCondition | None = None) -> None:
        self.condition = condition


class DeclareLaunchArgument(Action):
    def __init__(self, name: str, *, default_value: Any = None, description: str | None = None,
                 choices: Iterable[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.name = name
        self.default_value = default_value
        self.description = description
        self.choices = None if choices is None else list(choices)


class ExecuteProcess(Action):
    def __init__(self, *, cmd: list[Any], name: Any = None, cwd: Any = None, env: Any = None,
                 additional_env: Any = None, shell: bool = False, output: str = "log", emulate_tty: bool = False,
                 respawn: bool = False, respawn_delay: float | None = None, on_exit: Any = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.cmd = cmd
        self.name = name
        self.output = output


class Node(ExecuteProcess):
    def __init__(self, *, executable: Any, package: Any = None, name: Any = None, namespace: Any = None,
                 exec_name: Any = None, parameters: list[Any] | None = None, remappings: Any = None,
                 ros_arguments: Any = None, arguments: list[Any] | None = None, **kwargs: Any) -> None:
        super().__init__(cmd=[package, executable, *(arguments or [])], **kwargs)
        self.package = package
        self.executable = executable
        self.node_name = name
        self.namespace = namespace
        self.parameters = parameters or []
        self.remappings = remappings or []
        self.arguments = arguments or []


class OpaqueFunction(Action):
    """Runs `function(context)` where it stands; the real one's context has `launch_configurations`."""

    def __init__(self, *, function: Any, args: Any = None, kwargs: Any = None, **more: Any) -> None:
        super().__init__(**more)
        self.function = function


class Inert(Action):
    """Actions that start nothing when a launch begins (shutdown, logging, event handlers)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(condition=kwargs.pop("condition", None))


class PythonLaunchDescriptionSource:
    def __init__(self, launch_file_path: Any) -> None:
        self.launch_file_path = launch_file_path


class IncludeLaunchDescription(Action):
    def __init__(self, launch_description_source: PythonLaunchDescriptionSource, *,
                 launch_arguments: Iterable[tuple[Any, Any]] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.launch_description_source = launch_description_source
        self.launch_arguments = list(launch_arguments or [])


class LaunchDescription:
    def __init__(self, initial_entities: Iterable[Action] | None = None) -> None:
        self.entities = list(initial_entities or [])

    def get_launch_arguments(self) -> list[DeclareLaunchArgument]:
        return [e for e in self.entities if isinstance(e, DeclareLaunchArgument)]


# ----------------------------------------------------------------------------------------------- running
@dataclass
class Context:
    configurations: dict[str, str] = field(default_factory=dict)

    @property
    def launch_configurations(self) -> dict[str, str]:
        return self.configurations


@dataclass
class Started:
    """A process the launch would start, with everything evaluated."""

    package: str
    executable: str
    name: str
    parameters: dict[str, Any]
    arguments: list[str]
    cmd: list[str]


def run(description: LaunchDescription, overrides: dict[str, str] | None = None,
        context: Context | None = None) -> tuple[Context, list[Started]]:
    """Execute a description the way `ros2 launch file.py name:=value ...` would, without starting anything."""
    context = context or Context()
    context.configurations.update(overrides or {})
    started: list[Started] = []
    for entity in description.entities:
        if entity.condition is not None and not entity.condition.evaluate(context):
            continue
        if isinstance(entity, DeclareLaunchArgument):
            if entity.name not in context.configurations:
                if entity.default_value is None:
                    raise LaunchError(f"missing required argument '{entity.name}'")
                context.configurations[entity.name] = perform(context, entity.default_value)
            value = context.configurations[entity.name]
            if entity.choices is not None and value not in entity.choices:
                raise LaunchError(f"argument '{entity.name}' got '{value}', expected one of {entity.choices}")
        elif isinstance(entity, Node):
            parameters: dict[str, Any] = {}
            for group in entity.parameters:
                for key, value in group.items():
                    parameters[key] = value.evaluate(context) if isinstance(value, ParameterValue) else value
            started.append(Started(
                perform(context, entity.package), perform(context, entity.executable),
                perform(context, entity.node_name), parameters,
                [perform(context, a) for a in entity.arguments], [perform(context, c) for c in entity.cmd],
            ))
        elif isinstance(entity, ExecuteProcess):
            cmd = [perform(context, c) for c in entity.cmd]
            started.append(Started("", cmd[0], perform(context, entity.name or ""), {}, cmd[1:], cmd))
        elif isinstance(entity, OpaqueFunction):
            try:
                entity.function(context)
            except RuntimeError as error:
                raise LaunchError(str(error)) from error
        elif isinstance(entity, Inert):
            pass
        elif isinstance(entity, IncludeLaunchDescription):
            path = Path(perform(context, entity.launch_description_source.launch_file_path))
            if not path.is_file():
                raise LaunchError(f"included launch file not found: {path}")
            included = load_launch_file(path).generate_launch_description()
            given = {perform(context, key): perform(context, value) for key, value in entity.launch_arguments}
            for argument in included.get_launch_arguments():  # as launch does: only what the include passes counts
                if argument.default_value is None and argument.name not in given:
                    raise LaunchError(f"Included launch description missing required argument '{argument.name}'")
            context.configurations.update(given)
            started += run(included, context=context)[1]
        else:
            raise TypeError(f"unexpected entity {entity!r}")
    return context, started


# -------------------------------------------------------------------------------------------- installing
def get_package_share_directory(package: str) -> str:
    """ament_index_python's lookup over SHARES (a test adds 'rviz2' to have it installed)."""
    if package not in SHARES:
        raise LookupError(f"package '{package}' not found")
    return str(SHARES[package])


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


FAKE_MODULES = {
    "launch": _module("launch", LaunchDescription=LaunchDescription, LaunchContext=Context),
    "launch.actions": _module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument,
                              ExecuteProcess=ExecuteProcess, IncludeLaunchDescription=IncludeLaunchDescription,
                              OpaqueFunction=OpaqueFunction, EmitEvent=Inert, LogInfo=Inert,
                              RegisterEventHandler=Inert, Shutdown=Inert),
    "launch.conditions": _module("launch.conditions", IfCondition=IfCondition, UnlessCondition=UnlessCondition),
    "launch.event_handlers": _module("launch.event_handlers", OnProcessExit=Inert),
    "launch.events": _module("launch.events", Shutdown=Inert),
    "launch.launch_description_sources": _module("launch.launch_description_sources",
                                                 PythonLaunchDescriptionSource=PythonLaunchDescriptionSource),
    "launch.substitutions": _module("launch.substitutions", LaunchConfiguration=LaunchConfiguration,
                                    PathJoinSubstitution=PathJoinSubstitution),
    "ament_index_python": _module("ament_index_python"),
    "ament_index_python.packages": _module("ament_index_python.packages",
                                           get_package_share_directory=get_package_share_directory),
    "launch_ros": _module("launch_ros"),
    "launch_ros.actions": _module("launch_ros.actions", Node=Node),
    "launch_ros.parameter_descriptions": _module("launch_ros.parameter_descriptions", ParameterValue=ParameterValue),
    "launch_ros.substitutions": _module("launch_ros.substitutions", FindPackageShare=FindPackageShare),
}


@contextmanager
def fake_launch_modules() -> Iterator[None]:
    """Install the stand-ins (and src/vla_bringup on sys.path) for the duration of a test."""
    bringup = str(REPO / "src" / "vla_bringup")
    names = [*FAKE_MODULES, "vla_bringup", "vla_bringup.launch_common"]
    saved = {name: sys.modules.get(name) for name in names}
    sys.modules.update(FAKE_MODULES)
    for name in ("vla_bringup", "vla_bringup.launch_common"):
        sys.modules.pop(name, None)
    sys.path.insert(0, bringup)
    try:
        yield
    finally:
        sys.path.remove(bringup)
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def load_launch_file(path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"launch_file_{path.stem.replace('.', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
