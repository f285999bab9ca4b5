"""IAM policy evaluation for the checks: effective admin, privilege escalation, ChangePassword.

The question is always about one IAM user in its own account: what do the
identity-based policies that apply to it (attached directly, inline, through
its groups; managed policies by their default version, which is the one IAM
enforces) let it do? The answer follows IAM's evaluation logic for a request
inside one account
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):

- an explicit Deny wins over any Allow;
- otherwise the action is allowed when an identity-based policy allows it
  **and**, if the user has a permissions boundary, the boundary allows it too
  (the effective permissions are the intersection).

Conditions cannot be judged without a request, so the verdict is "can this
user, in some request, do it": an Allow counts whatever its Condition says (MFA
can be used, the IP can be right), and a Deny takes a permission away only
when it has no Condition. Service control policies, resource-based policies
and session policies are out of sight of an IAM user's own documents and are
not modelled.

Admin ("can this user do everything?") follows Prowler's `check_admin_access`
(prowler/providers/aws/services/iam/lib/policy.py): an Allow of `Action: *`, or
of any `NotAction`, on `Resource: *` (or with a `NotResource`) grants it. On top
of Prowler, which reads one document at a time and ignores Deny for this
question, an unconditional Deny of every action on every resource in any of the
user's policies takes admin away, and a permissions boundary that is not itself
admin caps it.

The privilege-escalation paths are Prowler's
`privilege_escalation_policies_combination`
(prowler/providers/aws/services/iam/lib/privilege_escalation.py, after Rhino
Security Labs and Bishop Fox) where the path needs nothing that already exists
in the account; paths that depend on an existing Lambda function, stack,
instance or notebook with an admin role (lambda:UpdateFunctionCode,
ssm:SendCommand, …) are left out, because a user's own documents cannot tell
whether such a resource exists. Unlike Prowler, each action is checked against
the resource it needs (a role for iam:PassRole, another user for
iam:CreateAccessKey, …), with Deny and the permissions boundary applied.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from iamguard.domain.account import Group, PolicyDocument, User

Statement = Mapping[str, Any]
Effect = Literal["Allow", "Deny"]

_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def statements(document: PolicyDocument) -> Iterator[Statement]:
    raw = document.get("Statement", [])
    for statement in raw if isinstance(raw, list) else [raw]:
        if isinstance(statement, Mapping):
            yield statement


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str)]
    return []


# -- IAM wildcards ------------------------------------------------------------------------
# IAM patterns know two wildcards: `*` (any run of characters) and `?` (one character).
# Actions compare case-insensitively, resources (ARNs) case-sensitively.


def _matches(pattern: str, text: str) -> bool:
    """Whether the wildcard pattern matches the text, in linear time.

    A set of pattern positions is carried along the text (no backtracking: a policy
    with many `*` cannot make a regular expression engine take exponential time).
    """
    states = _closure(pattern, {0})
    for char in text:
        states = _closure(pattern, _step(pattern, states, char))
        if not states:
            return False
    return len(pattern) in states


def _step(pattern: str, states: set[int], char: str) -> set[int]:
    return {k if pattern[k] == "*" else k + 1 for k in states if k < len(pattern) and pattern[k] in (char, "?", "*")}


def _everything(pattern: str) -> bool:
    """A pattern that matches any string at all (`*`, `**`)."""
    return bool(pattern) and set(pattern) == {"*"}


def intersects(a: str, b: str, *, ignore_case: bool = False) -> bool:
    """Whether two wildcard patterns match at least one common string (a product of their automata)."""
    if ignore_case:
        a, b = a.lower(), b.lower()
    seen: set[tuple[int, int]] = set()
    pending = [(0, 0)]
    while pending:
        i, j = pending.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(a) and j == len(b):
            return True
        ca = a[i] if i < len(a) else None
        cb = b[j] if j < len(b) else None
        if ca == "*":
            pending.append((i + 1, j))  # the star matches nothing more
        if cb == "*":
            pending.append((i, j + 1))
        if ca is None or cb is None or (ca == "*" and cb == "*"):
            continue
        if ca in "*?" or cb in "*?" or ca == cb:  # one common character
            pending.append((i if ca == "*" else i + 1, j if cb == "*" else j + 1))
    return False


def covers(pattern: str, target: str, *, ignore_case: bool = False) -> bool:
    """Whether `pattern` matches every string `target` matches.

    Exact for the targets this module asks about: a literal, or a literal prefix
    followed by one `*`. Any other target is never covered (a Deny must provably
    cover a target to take it away).
    """
    if ignore_case:
        pattern, target = pattern.lower(), target.lower()
    if "*" not in target and "?" not in target:
        return _matches(pattern, target)
    prefix = target[:-1]
    if not target.endswith("*") or "*" in prefix or "?" in prefix:
        return False
    # Run the pattern over the prefix; it covers prefix* when a state is left whose rest is only stars.
    states = _closure(pattern, {0})
    for char in prefix:
        states = _closure(pattern, _step(pattern, states, char))
    return any(k < len(pattern) and _everything(pattern[k:]) for k in states)


# ARNs compare segment by segment (the parts between the first five colons): a wildcard stays inside
# its segment, except a `*` that ends the pattern early, which stands for the rest of the ARN
# (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_resource.html).
def _segments(pattern: str) -> list[str] | None:
    """The six segments of an ARN pattern ([] when it can match no ARN); None when it is not an ARN."""
    if _everything(pattern):
        return ["*"] * 6
    if not pattern.startswith("arn:"):
        return None
    parts = pattern.split(":", 5)
    if len(parts) < 6:
        if not parts[-1].endswith("*"):
            return []  # too short to be an ARN
        parts += ["*"] * (6 - len(parts))
    return parts


def arn_intersects(pattern: str, target: str) -> bool:
    """`intersects` for ARNs: some resource matches both."""
    a, b = _segments(pattern), _segments(target)
    if a is None or b is None:
        return intersects(pattern, target)
    return bool(a and b) and all(intersects(x, y) for x, y in zip(a, b, strict=True))


def arn_covers(pattern: str, target: str) -> bool:
    """`covers` for ARNs: the pattern matches every resource the target matches."""
    a, b = _segments(pattern), _segments(target)
    if a is None or b is None:
        return covers(pattern, target)
    return not b or (bool(a) and all(covers(x, y) for x, y in zip(a, b, strict=True)))


def arn_only(pattern: str, target: str, arn: str) -> bool:
    """Whether the only resource of the target that the pattern matches is `arn` (a literal ARN)."""
    a, b, want = _segments(pattern), _segments(target), _segments(arn)
    if not a or not b or not want:
        return pattern == arn
    for x, y, w in zip(a, b, want, strict=True):
        literal = x if not _wild(x) else y if not _wild(y) else None
        if literal is None or literal != w or not intersects(x, y):
            return False  # wildcards on both sides (more than one resource), or another resource
    return True


def _wild(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def _all_arns(pattern: str) -> bool:
    """Every resource: `*`, or an ARN pattern whose partition is AWS's and every other segment a `*`."""
    parts = _segments(pattern)
    if not parts:
        return pattern == "*:*"
    return (_everything(parts[1]) or parts[1].startswith("aws")) and all(_everything(p) for p in parts[2:])


def _closure(pattern: str, states: set[int]) -> set[int]:
    result, pending = set(states), list(states)
    while pending:
        k = pending.pop()
        if k < len(pattern) and pattern[k] == "*" and k + 1 not in result:
            result.add(k + 1)
            pending.append(k + 1)
    return result


# -- compiled statements ----------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """The resources a step of an escalation path needs: a wildcard pattern, minus one ARN."""

    pattern: str
    described: str
    exclude: str | None = None  # a literal ARN that does not count (the user itself, for "other users")


@dataclass(frozen=True)
class _Statement:
    effect: Effect
    actions: tuple[str, ...]  # lower-cased patterns
    not_action: bool
    written: tuple[str, ...]  # the patterns as the policy writes them (for details)
    resources: tuple[str, ...]
    not_resource: bool
    conditional: bool

    @cached_property
    def _action_matcher(self) -> tuple[frozenset[str], tuple[str, ...], tuple[str, ...]]:
        # ReadOnlyAccess lists over a thousand patterns, nearly all "service:Prefix*": those are compared
        # as prefixes, plain names by lookup, and only the rest wildcard by wildcard.
        exact: set[str] = set()
        prefixes: list[str] = []
        other: list[str] = []
        for pattern in self.actions:
            if not _wild(pattern):
                exact.add(pattern)
            elif pattern.endswith("*") and not _wild(pattern[:-1]):
                prefixes.append(pattern[:-1])
            else:
                other.append(pattern)
        return frozenset(exact), tuple(prefixes), tuple(other)

    def applies_to(self, action: str) -> bool:
        action = action.lower()
        exact, prefixes, other = self._action_matcher
        hit = action in exact or action.startswith(prefixes) or any(_matches(p, action) for p in other)
        return not hit if self.not_action else hit

    @property
    def all_actions(self) -> bool:
        """Every action: `Action: *`, or any NotAction that leaves something (Prowler counts any NotAction)."""
        if self.not_action:
            return not any(_everything(p) for p in self.actions)
        return any(_everything(p) or p == "*:*" for p in self.actions)

    @property
    def all_resources(self) -> bool:
        if self.not_resource:
            return not any(_everything(p) for p in self.resources)
        return any(_all_arns(p) for p in self.resources)


def _compile(statement: Statement) -> _Statement | None:
    effect = statement.get("Effect")
    if not isinstance(effect, str) or effect.strip().lower() not in {"allow", "deny"}:
        return None
    not_action = "NotAction" in statement and "Action" not in statement
    not_resource = "NotResource" in statement and "Resource" not in statement
    written = tuple(_as_list(statement.get("NotAction" if not_action else "Action")))
    return _Statement(
        effect="Allow" if effect.strip().lower() == "allow" else "Deny",
        actions=tuple(p.lower() for p in written),
        not_action=not_action,
        written=written,
        resources=tuple(_as_list(statement.get("NotResource" if not_resource else "Resource"))),
        not_resource=not_resource,
        conditional=bool(statement.get("Condition")),
    )


class _Document:
    """One policy document, compiled once; which statements apply to an action is remembered."""

    def __init__(self, document: PolicyDocument) -> None:
        compiled = (_compile(s) for s in statements(document))
        self.statements: tuple[_Statement, ...] = tuple(s for s in compiled if s is not None)
        self._by_action: dict[str, tuple[_Statement, ...]] = {}

    # Facts about the document alone, the same for every user who holds it.
    @cached_property
    def grants_everything(self) -> _Statement | None:
        """The statement that allows every action on every resource (an `Action: *` one first), or None."""
        granting = [s for s in self.statements if s.effect == "Allow" and s.all_actions and s.all_resources]
        return min(granting, key=lambda s: s.not_action) if granting else None

    @cached_property
    def denies_everything(self) -> bool:
        return any(
            s.effect == "Deny" and not s.conditional and s.all_actions and s.all_resources for s in self.statements
        )

    @cached_property
    def allows_all_iam(self) -> bool:
        def all_iam(s: _Statement) -> bool:
            if s.not_action:
                return not any(intersects(p, "iam:*") for p in s.actions)
            return any(covers(p, "iam:*") for p in s.actions)

        return any(s.effect == "Allow" and s.all_resources and all_iam(s) for s in self.statements)

    @cached_property
    def denies_some_iam(self) -> bool:
        def some_iam(s: _Statement) -> bool:
            if s.not_action:
                return not any(covers(p, "iam:*") for p in s.actions)
            return any(intersects(p, "iam:*") for p in s.actions)

        return any(s.effect == "Deny" and not s.conditional and some_iam(s) for s in self.statements)

    @cached_property
    def escalation_actions(self) -> frozenset[str]:
        """The escalation actions (lower-cased) some Allow statement of this document names."""
        return frozenset(a for a in ESCALATION_ACTIONS if any(s.effect == "Allow" for s in self.for_action(a)))

    def for_action(self, action: str) -> tuple[_Statement, ...]:
        action = action.lower()
        found = self._by_action.get(action)
        if found is None:
            found = self._by_action[action] = tuple(s for s in self.statements if s.applies_to(action))
        return found


class PolicyCache:
    """Compiled documents shared by the users of one evaluation (an audit, one event).

    Users of a group share its documents (the same objects), so a large audit
    compiles each document, and matches each action against it, once.
    """

    def __init__(self) -> None:
        # Keyed by id(), holding the document too so that the id cannot be reused while cached.
        self._documents: dict[int, tuple[PolicyDocument, _Document]] = {}

    def compiled(self, document: PolicyDocument) -> _Document:
        entry = self._documents.get(id(document))
        if entry is None or entry[0] is not document:
            entry = self._documents[id(document)] = (document, _Document(document))
        return entry[1]


# -- the policies of a user ---------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """One policy that applies to a user, and where it comes from."""

    label: str  # "AdministratorAccess (attached directly)", "inline policy x of group ops", …
    document: PolicyDocument
    policy_arn: str | None = None  # managed policies
    inline_name: str | None = None  # inline policies
    group: str | None = None  # the group it comes through


def user_sources(user: User, groups: Mapping[str, Group], documents: Mapping[str, PolicyDocument]) -> list[Source]:
    """The identity-based policies of a user: attached directly, inline, and those of its groups.

    A managed policy whose document could not be read counts as allowing nothing.
    """
    found = [
        Source(f"{ref.name} (attached directly)", documents.get(ref.arn) or {}, policy_arn=ref.arn)
        for ref in user.attached_policies
    ]
    found += [Source(f"inline policy {p.name}", p.document, inline_name=p.name) for p in user.inline_policies]
    for group_name in user.group_names:
        group = groups.get(group_name)
        if group is None:
            continue
        found += [
            Source(f"{ref.name} via group {group.name}", documents.get(ref.arn) or {}, ref.arn, group=group.name)
            for ref in group.attached_policies
        ]
        found += [
            Source(f"inline policy {p.name} of group {group.name}", p.document, inline_name=p.name, group=group.name)
            for p in group.inline_policies
        ]
    return found


@dataclass(frozen=True)
class AdminGrant:
    """A policy that allows every action on every resource (or, with NotAction, all but a few)."""

    source: Source
    except_actions: tuple[str, ...] = ()  # the NotAction of the granting statement

    @property
    def label(self) -> str:
        if not self.except_actions:
            return self.source.label
        return f"{self.source.label}, which allows every action except {', '.join(self.except_actions)}"


@dataclass(frozen=True)
class AdminVerdict:
    """Whether a user can do everything, and why (not)."""

    grants: tuple[AdminGrant, ...]  # identity policies that allow every action on every resource
    denied_by: tuple[str, ...] = ()  # policies with an unconditional Deny of every action
    capped_by: str | None = None  # the permissions boundary's name, when it is not admin itself

    @property
    def is_admin(self) -> bool:
        return bool(self.grants) and not self.denied_by and self.capped_by is None

    @property
    def labels(self) -> list[str]:
        return [grant.label for grant in self.grants]

    @property
    def sources(self) -> tuple[Source, ...]:
        return tuple(grant.source for grant in self.grants)


@dataclass(frozen=True)
class Step:
    """One action an escalation path needs, on the resources it needs it for."""

    action: str
    on: Literal["self", "own_groups", "any_group", "other_users", "roles", "policies", "any"] = "any"


@dataclass(frozen=True)
class EscalationPath:
    steps: tuple[Step, ...]
    how: str  # what the user does with it
    # The gain stays inside the user's own permissions boundary (the user changes only itself).
    capped: bool = False

    @cached_property
    def actions(self) -> frozenset[str]:
        return frozenset(step.action.lower() for step in self.steps)

    def describe(self) -> str:
        return " + ".join(step.action + (f" on {_ON[step.on]}" if step.on != "any" else "") for step in self.steps)


_ON = {
    "self": "itself",
    "own_groups": "its own groups",
    "any_group": "any group",
    "other_users": "other users",
    "roles": "roles",
    "policies": "customer managed policies",
}


def _pass_role(*actions: str, how: str = "run code as a role it passes") -> EscalationPath:
    return EscalationPath((Step("iam:PassRole", "roles"), *(Step(a) for a in actions)), how)


# Prowler's combinations that need nothing pre-existing (see the module docstring).
ESCALATION_PATHS: tuple[EscalationPath, ...] = (
    EscalationPath((Step("iam:CreatePolicyVersion", "policies"),), "rewrite a managed policy it or a role holds"),
    EscalationPath((Step("iam:SetDefaultPolicyVersion", "policies"),), "switch a managed policy to another version"),
    EscalationPath((Step("iam:AttachUserPolicy", "self"),), "attach AdministratorAccess to itself", capped=True),
    EscalationPath((Step("iam:PutUserPolicy", "self"),), "write itself an inline policy", capped=True),
    EscalationPath((Step("iam:AttachGroupPolicy", "own_groups"),), "attach a policy to its group", capped=True),
    EscalationPath((Step("iam:PutGroupPolicy", "own_groups"),), "write its group an inline policy", capped=True),
    EscalationPath((Step("iam:AddUserToGroup", "any_group"),), "join a more privileged group", capped=True),
    EscalationPath((Step("iam:CreateAccessKey", "other_users"),), "create an access key for another user"),
    EscalationPath((Step("iam:CreateLoginProfile", "other_users"),), "give another user a password it knows"),
    EscalationPath((Step("iam:UpdateLoginProfile", "other_users"),), "change another user's password"),
    EscalationPath((Step("iam:AttachRolePolicy", "roles"),), "attach a policy to a role it can use"),
    EscalationPath((Step("iam:PutRolePolicy", "roles"),), "write an inline policy into a role it can use"),
    EscalationPath((Step("iam:UpdateAssumeRolePolicy", "roles"),), "make a privileged role trust it"),
    _pass_role("lambda:CreateFunction", "lambda:InvokeFunction"),
    _pass_role("lambda:CreateFunction", "lambda:CreateEventSourceMapping"),
    _pass_role("lambda:CreateFunction", "lambda:AddPermission"),
    _pass_role("ec2:RunInstances", how="start an instance with a role it passes"),
    _pass_role("ec2:RequestSpotInstances", how="start an instance with a role it passes"),
    _pass_role("autoscaling:CreateAutoScalingGroup", "autoscaling:CreateLaunchConfiguration"),
    _pass_role("autoscaling:UpdateAutoScalingGroup", "autoscaling:CreateLaunchConfiguration"),
    _pass_role("glue:CreateDevEndpoint"),
    _pass_role("glue:CreateJob", "glue:StartJobRun"),
    _pass_role("glue:CreateJob", "glue:CreateTrigger"),
    _pass_role("glue:UpdateJob", "glue:StartJobRun"),
    _pass_role("glue:UpdateJob", "glue:CreateTrigger"),
    _pass_role("cloudformation:CreateStack", how="create a stack with a role it passes"),
    _pass_role("cloudformation:CreateStackSet", "cloudformation:CreateStackInstances"),
    _pass_role("cloudformation:UpdateStackSet"),
    _pass_role("datapipeline:CreatePipeline", "datapipeline:PutPipelineDefinition", "datapipeline:ActivatePipeline"),
    _pass_role("codebuild:CreateProject", "codebuild:StartBuild"),
    _pass_role("codebuild:CreateProject", "codebuild:StartBuildBatch"),
    _pass_role("codestar:CreateProject"),
    _pass_role("ecs:RegisterTaskDefinition", "ecs:CreateService"),
    _pass_role("ecs:RegisterTaskDefinition", "ecs:RunTask"),
    _pass_role("ecs:RegisterTaskDefinition", "ecs:StartTask"),
    _pass_role("sagemaker:CreateNotebookInstance"),
    _pass_role("sagemaker:CreateTrainingJob"),
    _pass_role("sagemaker:CreateProcessingJob"),
    _pass_role("apprunner:CreateService"),
    _pass_role("bedrock-agentcore:CreateCodeInterpreter", "bedrock-agentcore:InvokeCodeInterpreter"),
)
_REMOVE_BOUNDARY = (
    EscalationPath((Step("iam:DeleteUserPermissionsBoundary", "self"),), "remove its own permissions boundary"),
    EscalationPath((Step("iam:PutUserPermissionsBoundary", "self"),), "replace its own permissions boundary"),
)
FULL_IAM = "iam:* on *"
ESCALATION_ACTIONS = frozenset(step.action.lower() for p in ESCALATION_PATHS + _REMOVE_BOUNDARY for step in p.steps)


@dataclass(frozen=True)
class Escalation:
    """A path the user can take, with the policies that allow its steps."""

    path: EscalationPath | None  # None: full IAM access (iam:* on *)
    granted_by: tuple[str, ...]
    leaves: str = ""  # for a boundary removal: what the user can do once the boundary is gone

    def describe(self) -> str:
        if self.path is None:
            return f"{FULL_IAM} (full IAM access, admin-equivalent)"
        text = f"{self.path.describe()} ({self.path.how}"
        return text + (f", which leaves {self.leaves})" if self.leaves else ")")


class Permissions:
    """The effective identity-based permissions of one user."""

    def __init__(
        self,
        user: User,
        groups: Mapping[str, Group],
        documents: Mapping[str, PolicyDocument],
        cache: PolicyCache | None = None,
        *,
        with_boundary: bool = True,
    ) -> None:
        self.user = user
        self.cache = cache or PolicyCache()
        self.identity = tuple(user_sources(user, groups, documents))
        self._groups = groups
        self._documents = documents
        ref = user.permissions_boundary if with_boundary else None
        self.boundary = (
            Source(f"{ref.name} (permissions boundary)", documents.get(ref.arn) or {}, ref.arn) if ref else None
        )
        self._partition, self._account = _arn_parts(user.arn)
        self._variables = {"aws:username": user.name, "aws:userid": user.user_id, "aws:principaltype": "User"}

    # -- admin ------------------------------------------------------------------------------
    def admin(self) -> AdminVerdict:
        """Allow of * (or NotAction) on *, no unconditional Deny of everything, a boundary that is admin too."""
        grants = tuple(g for g in map(self._grant, self.identity) if g is not None)
        denied = tuple(s.label for s in self._all_sources() if self._denies_everything(s))
        capped = None
        if self.boundary is not None and (self._grant(self.boundary) is None or self._denies_everything(self.boundary)):
            capped = self.boundary.label.removesuffix(" (permissions boundary)")
        return AdminVerdict(grants, tuple(dict.fromkeys(denied)), capped)

    def _grant(self, source: Source) -> AdminGrant | None:
        granting = self.cache.compiled(source.document).grants_everything
        if granting is None:
            return None
        return AdminGrant(source, granting.written if granting.not_action else ())

    def _denies_everything(self, source: Source) -> bool:
        return self.cache.compiled(source.document).denies_everything

    def full_iam(self) -> tuple[str, ...]:
        """The policies that allow every IAM action on every resource (none: not full IAM access)."""
        granting = tuple(s.label for s in self.identity if self.cache.compiled(s.document).allows_all_iam)
        if not granting or any(self.cache.compiled(s.document).denies_some_iam for s in self._all_sources()):
            return ()
        if self.boundary is not None and not self.cache.compiled(self.boundary.document).allows_all_iam:
            return ()
        return granting

    # -- one action ----------------------------------------------------------------------------
    def allowed(self, action: str, target: Target) -> tuple[str, ...]:
        """The policies that allow `action` on the target; empty when IAM would not allow it."""
        granting = tuple(
            s.label
            for s in self.identity
            if any(self._reaches(st, target) for st in self._applicable(s, action, "Allow"))
        )
        if not granting:
            return ()
        if any(self._covers(st, target) for s in self._all_sources() for st in self._applicable(s, action, "Deny")):
            return ()
        if self.boundary is not None and not any(
            self._reaches(st, target) for st in self._applicable(self.boundary, action, "Allow")
        ):
            return ()
        return granting

    def _all_sources(self) -> Iterator[Source]:
        yield from self.identity
        if self.boundary is not None:
            yield self.boundary

    def _applicable(self, source: Source, action: str, effect: Effect) -> Iterator[_Statement]:
        for statement in self.cache.compiled(source.document).for_action(action):
            if statement.effect == effect and (effect == "Allow" or not statement.conditional):
                yield statement

    def _resolve(self, pattern: str, *, unknown: str | None) -> str | None:
        """Policy variables: the user's own values; others `unknown` (None: the pattern cannot be judged)."""
        if "${" not in pattern:
            return pattern
        missing = False

        def value(match: re.Match[str]) -> str:
            nonlocal missing
            known = self._variables.get(match.group(1).lower())
            if known is None:
                missing = True
                return unknown or ""
            return known

        resolved = _VARIABLE.sub(value, pattern)
        return None if missing and unknown is None else resolved

    def _reaches(self, statement: _Statement, target: Target) -> bool:
        """An Allow statement's resources include some resource of the target."""
        if statement.not_resource:
            excluded = (self._resolve(p, unknown=None) for p in statement.resources)
            return not any(p is not None and arn_covers(p, target.pattern) for p in excluded)
        for raw in statement.resources:
            pattern = self._resolve(raw, unknown="*")
            if pattern is None or not arn_intersects(pattern, target.pattern):
                continue
            if target.exclude is None or not arn_only(pattern, target.pattern, target.exclude):
                return True
        return False

    def _covers(self, statement: _Statement, target: Target) -> bool:
        """A Deny statement's resources include every resource of the target."""
        if statement.not_resource:
            kept = (self._resolve(p, unknown="*") for p in statement.resources)
            return not any(p is not None and arn_intersects(p, target.pattern) for p in kept)
        resolved = (self._resolve(p, unknown=None) for p in statement.resources)
        return any(p is not None and arn_covers(p, target.pattern) for p in resolved)

    # -- privilege escalation --------------------------------------------------------------------
    def targets(self, on: str) -> list[Target]:
        iam = f"arn:{self._partition}:iam::{self._account}"
        if on == "self":
            return [Target(self.user.arn, "itself")]
        if on == "own_groups":
            arns = [self._groups[g].arn for g in self.user.group_names if g in self._groups]
            return [Target(arn, arn.rsplit("/", 1)[-1]) for arn in arns]
        if on == "any_group":
            return [Target(f"{iam}:group/*", "any group")]
        if on == "other_users":
            return [Target(f"{iam}:user/*", "other users", exclude=self.user.arn)]
        if on == "roles":
            return [Target(f"{iam}:role/*", "roles")]
        if on == "policies":
            return [Target(f"{iam}:policy/*", "customer managed policies")]
        return [Target("*", "any resource")]

    @cached_property
    def _named_escalation_actions(self) -> frozenset[str]:
        """Escalation actions the user's policies name at all: most users have none, and are done quickly."""
        return frozenset().union(*(self.cache.compiled(s.document).escalation_actions for s in self.identity))

    def _take(self, path: EscalationPath) -> tuple[str, ...] | None:
        """The policies that allow every step of the path, or None when a step is not allowed."""
        if not path.actions <= self._named_escalation_actions:
            return None
        labels: list[str] = []
        for step in path.steps:
            granted = next((g for t in self.targets(step.on) if (g := self.allowed(step.action, t))), ())
            if not granted:
                return None
            labels.extend(granted)
        return tuple(dict.fromkeys(labels))

    def escalations(self) -> list[Escalation]:
        """Every known way this user can make itself an administrator (empty for none)."""
        found: list[Escalation] = []
        full = self.full_iam()
        if full:
            found.append(Escalation(None, full))
        if not self._named_escalation_actions:
            return found
        capped = self.boundary is not None and self.admin().capped_by is not None
        for path in ESCALATION_PATHS:
            if path.capped and capped:
                continue  # the boundary stays on the user: changing its own policies gains nothing beyond it
            granted = self._take(path)
            if granted is not None:
                found.append(Escalation(path, granted))
        if capped:
            found.extend(self._boundary_removals())
        return found

    def _boundary_removals(self) -> list[Escalation]:
        """Removing or replacing its own boundary, when what is left without it is admin or a capped path."""
        unbounded = Permissions(self.user, self._groups, self._documents, self.cache, with_boundary=False)
        if unbounded.admin().is_admin:
            leaves = "full administrator access"
        else:
            paths = [p for p in ESCALATION_PATHS if p.capped and unbounded._take(p) is not None]
            if not paths:
                return []
            leaves = paths[0].describe()
        removals = []
        for path in _REMOVE_BOUNDARY:
            granted = self._take(path)
            if granted is not None:
                removals.append(Escalation(path, granted, leaves))
        return removals

    def can_change_own_password(self) -> bool:
        return bool(self.allowed("iam:ChangePassword", Target(self.user.arn, "itself")))


def _arn_parts(arn: str) -> tuple[str, str]:
    parts = arn.split(":")
    return (parts[1], parts[4]) if len(parts) > 4 else ("aws", "")


# -- what the rest of iamguard asks --------------------------------------------------------------
def admin_verdict(
    user: User,
    groups: Mapping[str, Group],
    policy_documents: Mapping[str, PolicyDocument],
    cache: PolicyCache | None = None,
) -> AdminVerdict:
    return Permissions(user, groups, policy_documents, cache).admin()


def admin_sources(user: User, groups: Mapping[str, Group], policy_documents: Mapping[str, PolicyDocument]) -> list[str]:
    """Where the user's admin rights come from ('AdministratorAccess via group ops'); empty when not admin."""
    verdict = admin_verdict(user, groups, policy_documents)
    return verdict.labels if verdict.is_admin else []


def can_change_own_password(
    user: User,
    groups: Mapping[str, Group],
    policy_documents: Mapping[str, PolicyDocument],
    cache: PolicyCache | None = None,
) -> bool:
    """Whether the user's effective permissions allow iam:ChangePassword on itself."""
    return Permissions(user, groups, policy_documents, cache).can_change_own_password()


def policy_arns_in_effect(user: User, groups: Mapping[str, Group]) -> set[str]:
    """Managed policy ARNs attached to the user directly or through its groups."""
    arns = {ref.arn for ref in user.attached_policies}
    for group_name in user.group_names:
        group = groups.get(group_name)
        if group is not None:
            arns.update(ref.arn for ref in group.attached_policies)
    return arns
