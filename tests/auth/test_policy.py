"""IAM policy parsing and evaluation: wildcards, NotAction/NotResource, Deny > Allow > implicit deny."""

from __future__ import annotations

import json

import pytest

from tailor.auth.policy import ADMIN_POLICY, Decision, evaluate, parse_policy, resource_arn, wildcard_match
from tailor.errors import ValidationError

ACCOUNT = "123456789012"
EP = resource_arn("us-east-1", ACCOUNT, "endpoint", "fashion")


def doc(*statements: dict) -> dict:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_seed_policy_works_as_written() -> None:
    text = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": "sagemaker:InvokeEndpoint",
                    "Resource": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:endpoint/fashion",
                }
            ],
        }
    )
    p = parse_policy(text)
    assert p.evaluate("sagemaker:InvokeEndpoint", EP) is Decision.ALLOW
    other = resource_arn("us-east-1", ACCOUNT, "endpoint", "other")
    assert p.evaluate("sagemaker:InvokeEndpoint", other) is Decision.IMPLICIT_DENY
    assert p.evaluate("sagemaker:DeleteEndpoint", EP) is Decision.IMPLICIT_DENY


def test_arn_keeps_the_name_as_describe_prints_it() -> None:
    assert resource_arn("us-east-1", ACCOUNT, "endpoint", "MyEndpoint").endswith(":endpoint/MyEndpoint")


@pytest.mark.parametrize(
    ("pattern", "value", "hit"),
    [
        ("*", "anything:at/all", True),
        ("arn:aws:sagemaker:*:*:endpoint/*", EP, True),
        ("arn:aws:sagemaker:*:*:endpoint/fashio?", EP, True),
        ("arn:aws:sagemaker:*:*:endpoint/fashio?", EP + "x", False),
        ("arn:aws:sagemaker:*:*:endpoint/f*n", EP, True),
        ("arn:aws:sagemaker:*:*:model/*", EP, False),
        ("arn:aws:sagemaker:us-east-1:123456789012:endpoint/fashion", EP, True),
        ("arn:aws:sagemaker:us-east-1:123456789012:endpoint/fashion.", EP, False),  # '.' is literal
        ("arn:aws:sagemaker:us-east-1:123456789012:endpoint/[a-z]*", EP, False),  # no regex classes
    ],
)
def test_wildcards(pattern: str, value: str, hit: bool) -> None:
    assert wildcard_match(pattern, value) is hit


def test_actions_match_case_insensitively_resources_do_not() -> None:
    p = parse_policy(doc({"Effect": "Allow", "Action": "SageMaker:invoke*", "Resource": EP}))
    assert p.evaluate("sagemaker:InvokeEndpoint", EP).allowed
    assert not p.evaluate("sagemaker:InvokeEndpoint", EP.upper()).allowed


def test_explicit_deny_overrides_allow_across_policies() -> None:
    allow_all = parse_policy(ADMIN_POLICY)
    deny = parse_policy(doc({"Sid": "NoDelete", "Effect": "Deny", "Action": "sagemaker:Delete*", "Resource": "*"}))
    assert evaluate([allow_all, deny], "sagemaker:DeleteEndpoint", EP) is Decision.EXPLICIT_DENY
    assert evaluate([deny, allow_all], "sagemaker:DeleteEndpoint", EP) is Decision.EXPLICIT_DENY
    assert evaluate([allow_all, deny], "sagemaker:CreateEndpoint", EP) is Decision.ALLOW
    assert evaluate([deny], "sagemaker:CreateEndpoint", EP) is Decision.IMPLICIT_DENY
    assert evaluate([], "sagemaker:CreateEndpoint", EP) is Decision.IMPLICIT_DENY


def test_not_action_and_not_resource() -> None:
    p = parse_policy(
        doc(
            {"Effect": "Allow", "NotAction": "sagemaker:Delete*", "Resource": "*"},
            {"Effect": "Deny", "Action": "*", "NotResource": "arn:aws:sagemaker:*:*:endpoint/public-*"},
        )
    )
    public = resource_arn("us-east-1", ACCOUNT, "endpoint", "public-a")
    assert p.evaluate("sagemaker:InvokeEndpoint", public).allowed
    assert p.evaluate("sagemaker:InvokeEndpoint", EP) is Decision.EXPLICIT_DENY
    assert p.evaluate("sagemaker:DeleteEndpoint", public) is Decision.IMPLICIT_DENY


def test_single_statement_object_and_action_lists() -> None:
    p = parse_policy(
        {
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Action": ["sagemaker:DescribeEndpoint", "sagemaker:InvokeEndpoint"],
                "Resource": [EP],
            },
        }
    )
    assert p.evaluate("sagemaker:DescribeEndpoint", EP).allowed
    assert not p.evaluate("sagemaker:ListEndpoints", "*").allowed


def test_list_actions_need_star_resource() -> None:
    scoped = parse_policy(doc({"Effect": "Allow", "Action": "sagemaker:List*", "Resource": EP}))
    assert not scoped.evaluate("sagemaker:ListEndpoints", "*").allowed
    star = parse_policy(doc({"Effect": "Allow", "Action": "sagemaker:List*", "Resource": "*"}))
    assert star.evaluate("sagemaker:ListEndpoints", "*").allowed


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ("not json", "not valid JSON"),
        ("[" * 10_000, "nested deeper than 32 levels"),  # json.loads alone raised RecursionError
        ({"Statement": []}, "Version"),
        ({"Version": "2012-10-17", "Statement": []}, "non-empty"),
        (doc({"Effect": "Maybe", "Action": "*", "Resource": "*"}), "Effect"),
        (doc({"Effect": "Allow", "Resource": "*"}), "Action or NotAction"),
        (doc({"Effect": "Allow", "Action": "*", "NotAction": "*", "Resource": "*"}), "Action or NotAction"),
        (doc({"Effect": "Allow", "Action": "*"}), "Resource or NotResource"),
        (doc({"Effect": "Allow", "Action": "InvokeEndpoint", "Resource": "*"}), "invalid action"),
        (doc({"Effect": "Allow", "Action": [], "Resource": "*"}), "non-empty"),
        (doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Condition": {}}), "Condition"),
        (doc({"Effect": "Allow", "Action": "*", "Resource": "*", "Principal": "*"}), "Principal"),
        ({"Version": "2012-10-17", "Statement": [], "Extra": 1}, "Extra"),
    ],
)
def test_invalid_documents_are_refused_with_the_reason(document: object, fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        parse_policy(document)  # type: ignore[arg-type]


JOB = "arn:aws:sagemaker:us-east-1:000000000000:training-job/mine-1"


def _allow(action: str | list[str], key: str = "Action") -> dict:
    return {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", key: action, "Resource": "*"}]}


@pytest.mark.parametrize(
    ("document", "granted"),
    [
        (ADMIN_POLICY, True),  # the full wildcard "*" (admin)
        (_allow("tailor:RunCustomCode"), True),
        (_allow("tailor:*"), True),
        (_allow("TAILOR:runcustomcode"), True),  # action names compare case-insensitively
        (_allow("sagemaker:*"), False),
        (_allow(["*:*", "t*:*", "*:RunCustomCode", "tailor?:*"]), False),  # look-alikes do not name tailor
        (_allow("sagemaker:DeleteEndpoint", key="NotAction"), False),  # never granted by exclusion
    ],
)
def test_tailor_actions_are_granted_only_by_naming_them(document: dict, granted: bool) -> None:
    policy = parse_policy(document)
    assert policy.evaluate("tailor:RunCustomCode", JOB).allowed is granted


def test_sagemaker_wildcards_still_grant_sagemaker_actions() -> None:
    assert parse_policy(_allow(["sagemaker:*"])).evaluate("sagemaker:CreateTrainingJob", JOB).allowed
    assert parse_policy(_allow(["*:*"])).evaluate("sagemaker:CreateTrainingJob", JOB).allowed


def test_a_deny_of_a_look_alike_pattern_still_denies_tailor_actions() -> None:
    deny = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*:*", "Resource": JOB}]}
    assert evaluate([parse_policy(ADMIN_POLICY), parse_policy(deny)], "tailor:RunCustomCode", JOB) is (
        Decision.EXPLICIT_DENY
    )
