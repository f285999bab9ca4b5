"""The permission derivation itself, on small packages written for each case."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.support.derive_permissions import DerivationError, derive, supports_resource_scoping


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def actions(tmp_path: Path, package: dict[str, str], handler: str) -> set[str]:
    write(tmp_path / "layer", {"iamguard/__init__.py": "", **package})
    write(tmp_path / "functions" / "fn", {"app.py": handler})
    return derive(tmp_path / "functions" / "fn" / "app.py", tmp_path / "layer").actions


def test_client_calls_paginators_and_waiters_become_actions(tmp_path: Path) -> None:
    # Given a module that makes its own clients and one typed with a mypy_boto3 import
    package = {
        "iamguard/notify.py": """
            from iamguard.aws import AwsContext

            def send(ctx: AwsContext, text: str) -> None:
                ctx.client("sns").publish(TopicArn="t", Message=text)
        """,
        "iamguard/aws.py": """
            class AwsContext:
                def client(self, name): ...
        """,
        "iamguard/store.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from mypy_boto3_dynamodb import DynamoDBClient

            class Store:
                def __init__(self, client: "DynamoDBClient") -> None:
                    self.client = client

                def rows(self):
                    for page in self.client.get_paginator("query").paginate(TableName="t"):
                        yield page

                def create(self):
                    self.client.get_waiter("table_exists").wait(TableName="t")
        """,
    }
    handler = """
        from iamguard.notify import send
        from iamguard.store import Store

        def lambda_handler(event, context):
            store = Store(None)
            list(store.rows())
            store.create()
            send(None, "hi")
    """
    # Then each call is one IAM action, named as IAM names it
    assert actions(tmp_path, package, handler) == {"sns:Publish", "dynamodb:Query", "dynamodb:DescribeTable"}


def test_unreached_code_does_not_count(tmp_path: Path) -> None:
    package = {
        "iamguard/users.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from mypy_boto3_iam import IAMClient
                import iamguard.never  # type-only import: not followed

            class Reader:
                def __init__(self, iam: "IAMClient") -> None:
                    self.iam = iam
                def read(self, name):
                    return self.iam.get_user(UserName=name)
                def purge(self, name):  # nothing calls purge()
                    self.iam.delete_user(UserName=name)

            class LocalOnly:  # never instantiated from the handler
                def __init__(self, iam: "IAMClient") -> None:
                    self.iam = iam
                def read(self, name):
                    self.iam.create_user(UserName=name)

            def local_helper(iam: "IAMClient"):
                return LocalOnly(iam)
        """,
        "iamguard/never.py": """
            def boom(iam):
                iam.delete_account_alias(AccountAlias="x")
        """,
    }
    handler = """
        from iamguard.users import Reader

        def lambda_handler(event, context):
            return Reader(None).read(event["user"])
    """
    assert actions(tmp_path, package, handler) == {"iam:GetUser"}


def test_decorated_functions_and_lazy_imports_count(tmp_path: Path) -> None:
    # Given a route registered by a decorator and a module imported inside a function
    package = {
        "iamguard/routes.py": """
            import boto3

            class App:
                def get(self, path):
                    return lambda fn: fn

            app = App()

            @app.get("/keys")
            def keys():
                return boto3.client("iam").list_access_keys()

            def later():
                from iamguard import lazy
                return lazy.go()
        """,
        "iamguard/lazy.py": """
            import boto3

            def go():
                return boto3.client("secretsmanager").get_secret_value(SecretId="s")
        """,
    }
    handler = """
        from iamguard.routes import app, later

        def lambda_handler(event, context):
            later()
            return app
    """
    assert actions(tmp_path, package, handler) == {"iam:ListAccessKeys", "secretsmanager:GetSecretValue"}


def test_bound_operations_count_but_unrelated_attributes_do_not(tmp_path: Path) -> None:
    package = {
        "iamguard/store.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from mypy_boto3_dynamodb import DynamoDBClient

            def items(client: "DynamoDBClient", by_index: bool):
                operation = client.query if by_index else client.scan
                return operation(TableName="t")
        """,
        "iamguard/links.py": """
            import urllib.parse

            def query_of(url):
                return urllib.parse.urlparse(url).query  # a URL's query, not DynamoDB's
        """,
    }
    handler = """
        from iamguard.store import items
        from iamguard.links import query_of

        def lambda_handler(event, context):
            return items(None, True), query_of("https://x/?a=1")
    """
    assert actions(tmp_path, package, handler) == {"dynamodb:Query", "dynamodb:Scan"}


def test_operation_names_map_to_iam_action_names(tmp_path: Path) -> None:
    package = {
        "iamguard/launch.py": """
            import boto3

            def start():
                boto3.client("lambda").invoke(FunctionName="f", InvocationType="Event")
                boto3.client("sts").get_caller_identity()  # needs no permission
        """,
    }
    handler = """
        from iamguard import launch

        def lambda_handler(event, context):
            launch.start()
    """
    assert actions(tmp_path, package, handler) == {"lambda:InvokeFunction"}


def test_a_transaction_needs_the_actions_of_the_elements_it_writes(tmp_path: Path) -> None:
    # Given code that puts one item and updates another in one TransactWriteItems
    package = {
        "iamguard/claims.py": """
            import boto3

            def step(key):
                return {"Update": {"TableName": "t", "Key": key, "UpdateExpression": "REMOVE x"}}

            def claim(item, key):
                put = {"Put": {"TableName": "t", "Item": item}}
                boto3.client("dynamodb").transact_write_items(TransactItems=[put, step(key)])
        """,
    }
    handler = """
        from iamguard.claims import claim

        def lambda_handler(event, context):
            claim({}, {})
    """
    # Then it needs PutItem and UpdateItem (there is no TransactWriteItems action), not Delete or ConditionCheck
    assert actions(tmp_path, package, handler) == {"dynamodb:PutItem", "dynamodb:UpdateItem"}


def test_powertools_idempotency_needs_its_table_actions(tmp_path: Path) -> None:
    handler = """
        from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

        persistence = DynamoDBPersistenceLayer(table_name="t")

        def lambda_handler(event, context):
            return event
    """
    assert actions(tmp_path, {}, handler) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
    }


def test_an_unknown_paginator_is_an_error(tmp_path: Path) -> None:
    package = {
        "iamguard/bad.py": """
            import boto3

            def go():
                return boto3.client("iam").get_paginator("list_everything")
        """,
    }
    handler = """
        from iamguard.bad import go

        def lambda_handler(event, context):
            go()
    """
    with pytest.raises(DerivationError, match="list_everything"):
        actions(tmp_path, package, handler)


def test_resource_scoping_facts() -> None:
    assert supports_resource_scoping("iam:AttachUserPolicy")
    assert supports_resource_scoping("dynamodb:PutItem")
    assert not supports_resource_scoping("iam:GetAccountSummary")
    assert not supports_resource_scoping("iam:GetAccountAuthorizationDetails")


def test_powertools_parameter_providers_need_their_read_actions(tmp_path: Path) -> None:
    package = {
        "iamguard/secret.py": """
            from aws_lambda_powertools.utilities import parameters
            from aws_lambda_powertools.utilities.parameters import SSMProvider

            def from_ssm(name):
                return SSMProvider().get(name, decrypt=True)

            def from_secrets_manager(name):
                return parameters.get_secret(name)
        """,
    }
    handler = """
        from iamguard.secret import from_ssm, from_secrets_manager

        def lambda_handler(event, context):
            return from_ssm("/x"), from_secrets_manager("y")
    """
    assert actions(tmp_path, package, handler) == {"ssm:GetParameter", "secretsmanager:GetSecretValue"}


def test_methods_chosen_at_run_time_count(tmp_path: Path) -> None:
    # Given an enforcer that picks attach or detach as a bound method, then calls it (iamguard.enforce does)
    package = {
        "iamguard/enforce.py": """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from mypy_boto3_iam import IAMClient

            class Enforcer:
                def __init__(self, iam: "IAMClient") -> None:
                    self.iam = iam

                def act(self, detach: bool) -> None:
                    call = self.detach_guardrail if detach else self._attach
                    call("bob", "arn:aws:iam::123456789012:policy/guardrail")

                def _attach(self, user, arn):
                    self.iam.attach_user_policy(UserName=user, PolicyArn=arn)

                def detach_guardrail(self, user, arn):
                    self.iam.detach_user_policy(UserName=user, PolicyArn=arn)

                def purge(self, user):  # nothing calls purge()
                    self.iam.delete_user(UserName=user)
        """,
    }
    handler = """
        from iamguard.enforce import Enforcer

        def lambda_handler(event, context):
            Enforcer(None).act(event["detach"])
    """
    # Then both writes are derived (so the role must grant both), and nothing unreached is
    assert actions(tmp_path, package, handler) == {"iam:AttachUserPolicy", "iam:DetachUserPolicy"}
