"""Derive the IAM actions a Lambda handler's code can call, by reading the code.

The derivation is static and conservative (it may find more than a run would
exercise, never less for code written the way this project writes it):

1. Modules: the import graph from `functions/<name>/app.py` into the `iamguard`
   package (imports under `if TYPE_CHECKING:` are not followed; imports inside
   functions are).
2. Code units: module-level code, and every function or method reachable from it
   and from `lambda_handler`. A plain name resolves to the definition it names
   (through imports and re-exports); `module.name` to that module's definition;
   any other `x.name` to every method called `name` (class-hierarchy analysis,
   as call-graph builders for dynamic languages do). Decorated functions (check
   registrations, API routes) are reachable from the decorator, hence reachable.
3. Services: those a reachable module names - `mypy_boto3_<service>` type
   imports, `.client("<service>")` literals.
4. AWS calls: in reachable units, `x.<operation>(...)` where `<operation>` is a
   botocore operation of one of those services, `get_paginator("<operation>")`,
   and `get_waiter("<waiter>")` (the waiter's operation). The IAM action is
   `<service signing name>:<OperationName>` from botocore's service model.
5. Libraries: the handful of Powertools utilities that call AWS on our behalf,
   with the calls their code makes (checked against that code by a test).

Only the standard library, botocore and the source files are used: nothing is
imported from the code under analysis.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

PACKAGE = "iamguard"
MODULE_CODE = "<module>"

# Calls that need no IAM permission (AWS: "No permissions are required to perform this operation").
NO_PERMISSION_NEEDED = frozenset({"sts:GetCallerIdentity"})

# Signing names that differ from the IAM service prefix.
_PREFIX_OVERRIDES = {"monitoring": "cloudwatch"}
# Operations whose IAM action has another name (Service Authorization Reference).
_ACTION_OVERRIDES = {
    "lambda:Invoke": "lambda:InvokeFunction",
    "lambda:InvokeAsync": "lambda:InvokeFunction",
    "lambda:InvokeWithResponseStream": "lambda:InvokeFunction",
    "sqs:SendMessageBatch": "sqs:SendMessage",  # SQS developer guide: batch actions need the single action
}
# Operations that are no IAM action of their own: each element of the request needs the action of
# the single-item operation it stands for (DynamoDB developer guide, "Using IAM with DynamoDB
# transactions"). The elements are the request's dict keys; reachable code that builds
# {"Put": ...} / {"Update": ...} literals needs PutItem / UpdateItem.
_TRANSACTION_ELEMENTS = {
    "dynamodb:TransactWriteItems": {
        "Put": "dynamodb:PutItem",
        "Update": "dynamodb:UpdateItem",
        "Delete": "dynamodb:DeleteItem",
        "ConditionCheck": "dynamodb:ConditionCheckItem",
    },
    "dynamodb:TransactGetItems": {"Get": "dynamodb:GetItem"},
}

# Powertools utilities that make AWS calls themselves: the name our code uses ->
# (the Powertools module that calls AWS for it, the service, the operations our use
# of it reaches, whether that is every operation of the service the module calls).
# The idempotency layer runs its whole protocol; of the parameter providers our code
# uses `.get()` only. tests/deploy/test_permissions.py checks each against the
# library's code, so an upgrade that changes them is noticed.
LIBRARY_CALLS: dict[str, tuple[str, str, frozenset[str], bool]] = {
    "DynamoDBPersistenceLayer": (
        "aws_lambda_powertools.utilities.idempotency.persistence.dynamodb",
        "dynamodb",
        frozenset({"get_item", "put_item", "update_item", "delete_item"}),
        True,
    ),
    "SecretsProvider": (
        "aws_lambda_powertools.utilities.parameters.secrets",
        "secretsmanager",
        frozenset({"get_secret_value"}),
        False,
    ),
    "SSMProvider": (
        "aws_lambda_powertools.utilities.parameters.ssm",
        "ssm",
        frozenset({"get_parameter"}),
        False,
    ),
    "get_secret": (
        "aws_lambda_powertools.utilities.parameters.secrets",
        "secretsmanager",
        frozenset({"get_secret_value"}),
        False,
    ),
    "get_parameter": (
        "aws_lambda_powertools.utilities.parameters.ssm",
        "ssm",
        frozenset({"get_parameter"}),
        False,
    ),
}


class DerivationError(Exception):
    """The code uses AWS in a way this derivation cannot follow; it says where and how to fix it."""


@dataclass(frozen=True)
class ApiCall:
    """One AWS call site: the IAM action it needs and where it is."""

    action: str
    where: str  # module:qualname:line


@dataclass
class Definition:
    module: str
    qualname: str
    node: ast.AST
    decorated: bool = False


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    is_package: bool
    # local name -> ("module", "a.b") or ("symbol", "a.b:Name")
    bindings: dict[str, tuple[str, str]] = field(default_factory=dict)
    imports: set[str] = field(default_factory=set)  # runtime imports of modules we can read
    services: set[str] = field(default_factory=set)
    definitions: dict[str, Definition] = field(default_factory=dict)
    classes: dict[str, list[str]] = field(default_factory=dict)  # class qualname -> method qualnames


# ---------------------------------------------------------------- botocore facts
@cache
def _botocore() -> botocore.session.Session:
    return botocore.session.get_session()


@cache
def available_services() -> frozenset[str]:
    return frozenset(_botocore().get_available_services())


@cache
def operations(service: str) -> dict[str, str]:
    """snake_case method name -> OperationName."""
    model = _botocore().get_service_model(service)
    return {xform_name(op): op for op in model.operation_names}


@cache
def iam_prefix(service: str) -> str:
    model = _botocore().get_service_model(service)
    name = model.signing_name or model.endpoint_prefix
    return _PREFIX_OVERRIDES.get(name, name)


def action_for(service: str, method: str) -> str:
    action = f"{iam_prefix(service)}:{operations(service)[method]}"
    action = _ACTION_OVERRIDES.get(action, action)
    if action in _TRANSACTION_ELEMENTS:
        return action  # expanded to its elements' actions by `derive`
    if not is_iam_action(action):
        raise DerivationError(
            f"{action} (botocore {service}.{method}) is not an IAM action; add it to _ACTION_OVERRIDES"
        )
    return action


@cache
def iam_actions() -> dict[str, dict[str, dict[str, object]]]:
    """cfn-lint's copy of the Service Authorization Reference: prefix -> action (lowercase) -> facts."""
    import json
    from importlib import resources

    text = resources.files("cfnlint.data.AdditionalSpecs").joinpath("Policies.json").read_text(encoding="utf-8")
    data = json.loads(text)
    return {prefix: {k.lower(): v for k, v in spec.get("Actions", {}).items()} for prefix, spec in data.items()}


def is_iam_action(action: str) -> bool:
    prefix, name = action.split(":", 1)
    return name.lower() in iam_actions().get(prefix, {})


def supports_resource_scoping(action: str) -> bool:
    """Whether the action can be limited to resources (else only "*" works)."""
    prefix, name = action.split(":", 1)
    return bool(iam_actions().get(prefix, {}).get(name.lower(), {}).get("Resources"))


@cache
def waiter_operation(service: str, waiter: str) -> str:
    """The snake_case operation a waiter polls (e.g. dynamodb table_exists -> describe_table)."""
    model = _botocore().get_waiter_model(service)
    names = {xform_name(name): name for name in model.waiter_names}
    if waiter not in names:
        raise DerivationError(f"{service} has no waiter {waiter!r}")
    return xform_name(model.get_waiter(names[waiter]).operation)


def _service_of_type_module(module: str) -> str | None:
    """mypy_boto3_secretsmanager -> secretsmanager; mypy_boto3_<x>.client -> x."""
    head = module.split(".")[0]
    if not head.startswith("mypy_boto3_"):
        return None
    wanted = head.removeprefix("mypy_boto3_")
    for service in available_services():
        if service.replace("-", "_") == wanted:
            return service
    return None


# ---------------------------------------------------------------- reading modules
class CodeBase:
    """The package under `package_root` plus one handler file, read as source."""

    def __init__(self, package_root: Path) -> None:
        self.package_root = package_root
        self.modules: dict[str, Module] = {}

    def module_path(self, name: str) -> tuple[Path, bool] | None:
        base = self.package_root.joinpath(*name.split("."))
        if (base / "__init__.py").is_file():
            return base / "__init__.py", True
        if base.with_suffix(".py").is_file():
            return base.with_suffix(".py"), False
        return None

    def load(self, name: str, path: Path | None = None, is_package: bool = False) -> Module:
        if name in self.modules:
            return self.modules[name]
        if path is None:
            found = self.module_path(name)
            if found is None:
                raise DerivationError(f"module {name} not found under {self.package_root}")
            path, is_package = found
        module = Module(name, path, ast.parse(path.read_text(encoding="utf-8"), str(path)), is_package)
        self.modules[name] = module
        _index(module, self)
        return module

    def is_module(self, name: str) -> bool:
        return name.split(".")[0] == PACKAGE and self.module_path(name) is not None

    def reachable_modules(self, root: Module) -> list[Module]:
        seen: dict[str, Module] = {root.name: root}
        todo = [root]
        while todo:
            module = todo.pop()
            for name in sorted(module.imports):
                if name not in seen:
                    seen[name] = self.load(name)
                    todo.append(seen[name])
        return list(seen.values())


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve_relative(module: Module, level: int, target: str | None) -> str:
    parts = module.name.split(".")
    package = parts if module.is_package else parts[:-1]
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, *([target] if target else [])])


def _walk_runtime(node: ast.AST, *, type_checking: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    """Every node, with whether it sits under `if TYPE_CHECKING:`."""
    yield node, type_checking
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.body:
            yield from _walk_runtime(stmt, type_checking=True)
        for stmt in node.orelse:
            yield from _walk_runtime(stmt, type_checking=type_checking)
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk_runtime(child, type_checking=type_checking)


def _add_import(module: Module, codebase: CodeBase, name: str) -> None:
    parts = name.split(".")
    for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__ too
        prefix = ".".join(parts[:i])
        if codebase.is_module(prefix):
            module.imports.add(prefix)


def _index(module: Module, codebase: CodeBase) -> None:
    for node, type_checking in _walk_runtime(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                service = _service_of_type_module(alias.name)
                if service:
                    module.services.add(service)
                if type_checking:
                    continue
                _add_import(module, codebase, alias.name)
                if alias.asname:
                    module.bindings[alias.asname] = ("module", alias.name)
                else:
                    head = alias.name.split(".")[0]
                    module.bindings[head] = ("module", head)
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_relative(module, node.level, node.module) if node.level else (node.module or "")
            service = _service_of_type_module(source)
            if service:
                module.services.add(service)
            if type_checking:
                continue
            _add_import(module, codebase, source)
            for alias in node.names:
                local = alias.asname or alias.name
                submodule = f"{source}.{alias.name}"
                if codebase.is_module(submodule):
                    _add_import(module, codebase, submodule)
                    module.bindings[local] = ("module", submodule)
                else:
                    module.bindings[local] = ("symbol", f"{source}:{alias.name}")
        elif isinstance(node, ast.Call):
            literal = _client_literal(node)
            if literal:
                if literal not in available_services():
                    raise DerivationError(f"{module.name}: unknown AWS service {literal!r}")
                module.services.add(literal)

    def visit(body: list[ast.stmt], prefix: str, in_class: str | None) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
                qualname = f"{prefix}{stmt.name}"
                trivial = {"staticmethod", "classmethod", "property", "cache", "cached_property", "override"}
                decorated = any(_decorator_name(d) not in trivial for d in stmt.decorator_list)
                module.definitions[qualname] = Definition(module.name, qualname, stmt, decorated)
                if in_class is not None:
                    module.classes[in_class].append(qualname)
            elif isinstance(stmt, ast.ClassDef):
                qualname = f"{prefix}{stmt.name}"
                module.classes[qualname] = []
                visit(stmt.body, f"{qualname}.", qualname)

    visit(module.tree.body, "", None)


def _decorator_name(node: ast.expr) -> str:
    target = node.func if isinstance(node, ast.Call) else node
    if isinstance(target, ast.Attribute):
        return target.attr
    if isinstance(target, ast.Name):
        return target.id
    return ""


def _client_literal(call: ast.Call) -> str | None:
    """The service of `boto3.client("sns")`, `session.client("sns")`, `ctx.client("sns")`."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if name != "client" or not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    return None


# ---------------------------------------------------------------- references in a unit
def _unit_nodes(node: ast.AST, *, module_level: bool) -> Iterator[ast.AST]:
    """The nodes a code unit executes: a def's body (nested defs and lambdas included,
    annotations not), or module-level code (class bodies included, def bodies not)."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        if module_level:
            # Decorators and defaults run at definition time; the body does not.
            yield from _expr_nodes([*node.decorator_list, *node.args.defaults, *node.args.kw_defaults])
            return
        for stmt in node.body:
            yield from _stmt_nodes(stmt)
        return
    if isinstance(node, ast.Module | ast.ClassDef):
        if isinstance(node, ast.ClassDef):
            yield from _expr_nodes([*node.decorator_list, *node.bases])
        for stmt in node.body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                yield from _unit_nodes(stmt, module_level=True)
            elif isinstance(stmt, ast.If) and _is_type_checking(stmt.test):
                continue
            else:
                yield from _stmt_nodes(stmt)


def _expr_nodes(nodes: Iterable[ast.AST | None]) -> Iterator[ast.AST]:
    for node in nodes:
        if node is not None:
            yield from _stmt_nodes(node)


def _stmt_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """All nodes under `node`, skipping annotations (which never run)."""
    yield node
    for name, value in ast.iter_fields(node):
        if name in {"annotation", "returns", "type_comment"}:
            continue
        children = value if isinstance(value, list) else [value]
        for child in children:
            if isinstance(child, ast.AST):
                yield from _stmt_nodes(child)


# ---------------------------------------------------------------- the derivation
@dataclass
class Derivation:
    """What one handler reaches: modules, code units, services and AWS calls."""

    handler: Path
    modules: list[str]
    units: set[tuple[str, str]]
    services: set[str]
    calls: list[ApiCall]
    library_uses: set[str]

    @property
    def actions(self) -> set[str]:
        return {call.action for call in self.calls} - NO_PERMISSION_NEEDED

    def where(self, action: str) -> list[str]:
        return sorted(call.where for call in self.calls if call.action == action)

    def reaches(self, module: str, qualname: str) -> bool:
        return (module, qualname) in self.units


def derive(handler: Path, package_root: Path, handler_name: str = "lambda_handler") -> Derivation:
    """Derive the AWS calls reachable from `handler` (an app.py) with the package under `package_root`."""
    codebase = CodeBase(package_root)
    root = codebase.load(f"handler.{handler.parent.name}", handler)
    modules = {m.name: m for m in codebase.reachable_modules(root)}
    if handler_name not in root.definitions:
        raise DerivationError(f"{handler} defines no {handler_name}")

    # Rapid type analysis: `x.name` reaches the methods called `name` of classes
    # that reachable code mentions (instantiates, subclasses, calls a classmethod of).
    methods_by_name: dict[str, list[tuple[str, str, str]]] = {}
    for module in modules.values():
        for cls, methods in module.classes.items():
            for qualname in methods:
                methods_by_name.setdefault(qualname.rsplit(".", 1)[1], []).append((module.name, cls, qualname))

    def resolve_symbol(ref: str, depth: int = 0) -> tuple[str, str, str] | None:
        """`a.b:Name` -> ("def" | "class", module, qualname), following imports and re-exports."""
        source, name = ref.split(":")
        module = modules.get(source)
        if module is None or depth > 10:
            return None
        if name in module.definitions:
            return ("def", source, name)
        if name in module.classes:
            return ("class", source, name)
        kind, target = module.bindings.get(name, ("", ""))
        return resolve_symbol(target, depth + 1) if kind == "symbol" else None

    def references(module: Module, node: ast.AST, *, module_level: bool) -> Iterator[tuple[str, str, str]]:
        """("def"|"class", module, qualname) for names; ("attr", "", name) for other attributes."""
        for child in _unit_nodes(node, module_level=module_level):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
                name = child.id
                if name in module.definitions or name in module.classes:
                    found = resolve_symbol(f"{module.name}:{name}")
                elif module.bindings.get(name, ("", ""))[0] == "symbol":
                    found = resolve_symbol(module.bindings[name][1])
                else:
                    found = None
                if found is not None:
                    yield found
            elif isinstance(child, ast.Attribute):
                value = child.value
                bound = module.bindings.get(value.id) if isinstance(value, ast.Name) else None
                if bound is not None and bound[0] == "module":
                    found = resolve_symbol(f"{bound[1]}:{child.attr}")
                    if found is not None:
                        yield found
                else:
                    yield ("attr", "", child.attr)

    def unit_node(unit: tuple[str, str]) -> tuple[Module, ast.AST, bool]:
        module = modules[unit[0]]
        if unit[1] == MODULE_CODE:
            return module, module.tree, True
        return module, module.definitions[unit[1]].node, False

    reached: set[tuple[str, str]] = set()
    live: set[tuple[str, str]] = set()
    attrs: set[str] = set()
    todo: list[tuple[str, str]] = [(root.name, handler_name)]
    for module in modules.values():
        todo.append((module.name, MODULE_CODE))
        todo.extend((module.name, d.qualname) for d in module.definitions.values() if d.decorated)

    def make_live(module_name: str, cls: str) -> None:
        if (module_name, cls) in live:
            return
        live.add((module_name, cls))
        module = modules[module_name]
        for qualname in module.classes[cls]:
            short = qualname.rsplit(".", 1)[1]
            if short.startswith("__") or short in attrs:
                todo.append((module_name, qualname))
        for base in _class_node(module, cls).bases:  # inherited methods come with the class
            name = base.id if isinstance(base, ast.Name) else None
            found = resolve_symbol(f"{module_name}:{name}") if name else None
            if found is not None and found[0] == "class":
                make_live(found[1], found[2])

    while todo:
        unit = todo.pop()
        if unit in reached:
            continue
        reached.add(unit)
        module, node, module_level = unit_node(unit)
        for kind, target_module, target in references(module, node, module_level=module_level):
            if kind == "def":
                todo.append((target_module, target))
            elif kind == "class":
                make_live(target_module, target)
            elif target not in attrs:
                attrs.add(target)
                todo.extend((m, q) for m, cls, q in methods_by_name.get(target, []) if (m, cls) in live)
            else:
                continue

    services = set().union(*(m.services for m in modules.values()))
    own_names = {q.rsplit(".", 1)[-1] for m in modules.values() for q in m.definitions}
    calls: list[ApiCall] = []
    library_uses: set[str] = set()
    dict_keys: set[str] = set()
    for unit in sorted(reached):
        module, node, module_level = unit_node(unit)
        nodes = list(_unit_nodes(node, module_level=module_level))
        called = {id(n.func) for n in nodes if isinstance(n, ast.Call)}
        for child in nodes:
            if isinstance(child, ast.Dict):
                dict_keys.update(
                    k.value for k in child.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)
                )
            used = _library_name(child, module)
            if used in LIBRARY_CALLS:
                library_uses.add(used)
            if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute):
                if child.func.attr in {"get_paginator", "get_waiter"}:
                    where = f"{module.name}:{unit[1]}:{child.lineno}"
                    calls.extend(_named_operation(child, services, module, where))
            elif isinstance(child, ast.Attribute) and isinstance(child.ctx, ast.Load):
                # `client.put_item(...)`, and `op = client.query` (a bound operation used later).
                where = f"{module.name}:{unit[1]}:{child.lineno}"
                # A bound operation that is not called right there counts only where the module
                # declares the service (`parsed.query` of a URL is not DynamoDB's Query).
                scope = services if id(child) in called else module.services
                calls.extend(_operation(child.attr, module, scope, own_names, where))
    for used in sorted(library_uses):
        _, service, library_methods, _ = LIBRARY_CALLS[used]
        calls.extend(ApiCall(action_for(service, m), f"{used} (Powertools)") for m in sorted(library_methods))
    return Derivation(handler, sorted(modules), reached, services, _expand_transactions(calls, dict_keys), library_uses)


def _expand_transactions(calls: list[ApiCall], dict_keys: set[str]) -> list[ApiCall]:
    """A transaction call becomes the actions of the elements reachable code builds."""
    expanded: list[ApiCall] = []
    for call in calls:
        elements = _TRANSACTION_ELEMENTS.get(call.action)
        if elements is None:
            expanded.append(call)
            continue
        used = [(key, action) for key, action in elements.items() if key in dict_keys]
        if not used:
            raise DerivationError(
                f"{call.where}: {call.action} with no {'/'.join(elements)} element written as a dict literal"
            )
        expanded.extend(ApiCall(action, f"{call.where} ({key})") for key, action in used)
    return expanded


def _library_name(node: ast.AST, module: Module) -> str | None:
    """`SecretsProvider` (imported from Powertools) or `parameters.get_secret` (module attribute)."""
    if isinstance(node, ast.Name):
        kind, target = module.bindings.get(node.id, ("", ""))
        if kind == "symbol" and target.startswith("aws_lambda_powertools"):
            return target.rsplit(":", 1)[-1]
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        # `from aws_lambda_powertools.utilities import parameters` binds a module, which
        # this reader (it opens only our own package) records as a symbol.
        _, target = module.bindings.get(node.value.id, ("", ""))
        if target.startswith("aws_lambda_powertools"):
            return node.attr
    return None


def _class_node(module: Module, qualname: str) -> ast.ClassDef:
    body: list[ast.stmt] = module.tree.body
    node: ast.ClassDef | None = None
    for part in qualname.split("."):
        node = next(n for n in body if isinstance(n, ast.ClassDef) and n.name == part)
        body = node.body
    assert node is not None
    return node


def _named_operation(call: ast.Call, services: set[str], module: Module, where: str) -> list[ApiCall]:
    """`get_paginator("list_users")` / `get_waiter("table_exists")`: the operation they call."""
    assert isinstance(call.func, ast.Attribute)
    method = call.func.attr
    if not (call.args and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)):
        raise DerivationError(f"{where}: {method}() needs a literal name for the permission derivation")
    name = call.args[0].value
    if method == "get_paginator":
        candidates = [s for s in sorted(services) if name in operations(s)]
        if not candidates:
            raise DerivationError(f"{where}: no service in {sorted(services)} has an operation {name!r}")
        return _one(candidates, name, module, where)
    waiters = [s for s in sorted(services) if _has_waiter(s, name)]
    if not waiters:
        raise DerivationError(f"{where}: no service in {sorted(services)} has a waiter {name!r}")
    return [ApiCall(action_for(s, waiter_operation(s, name)), where) for s in waiters[:1]]


def _operation(method: str, module: Module, services: set[str], own_names: set[str], where: str) -> list[ApiCall]:
    candidates = [s for s in sorted(services) if method in operations(s)]
    if not candidates:
        return []
    if method in own_names:
        # Our own code defines a function of that name: count it as an AWS call only
        # where the module itself declares the service (its client type or a client(...) literal).
        candidates = [s for s in candidates if s in module.services]
        if not candidates:
            return []
    return _one(candidates, method, module, where)


def _one(candidates: list[str], method: str, module: Module, where: str) -> list[ApiCall]:
    if len(candidates) > 1:
        declared = [s for s in candidates if s in module.services]
        if len(declared) != 1:
            raise DerivationError(
                f"{where}: {method}() is an operation of {candidates}; type the client in {module.name} "
                "(a mypy_boto3_<service> import) so the derivation knows which one"
            )
        candidates = declared
    return [ApiCall(action_for(candidates[0], method), where)]


def _has_waiter(service: str, waiter: str) -> bool:
    try:
        model = _botocore().get_waiter_model(service)
    except Exception:  # services without waiters have no waiter model
        return False
    return waiter in {xform_name(name) for name in model.waiter_names}


def library_operations(module_name: str, service: str) -> set[str]:
    """The operations of `service` a library module calls (to keep LIBRARY_CALLS honest)."""
    import importlib.util

    spec = importlib.util.find_spec(module_name)
    if spec is None or spec.origin is None:
        raise DerivationError(f"{module_name} is not installed")
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    ops = operations(service)
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ops
    }
