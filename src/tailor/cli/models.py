"""`tailor models create|list|describe|delete` and `tailor endpoint-configs create|list|describe|delete`."""

from __future__ import annotations

import click

from tailor.cli.root import json_option as _json
from tailor.cli.root import settings_of
from tailor.cli.root import url_option as _url


@click.group("models")
def models() -> None:
    """Models: an artifact (model.tar.gz) registered for serving."""


@models.command("create")
@click.argument("name")
@click.option("--model-data-url", "-m", required=True, help="model.tar.gz URI (s3://; a local path without --url).")
@click.option("--image", default="tailor/image-classification", show_default=True, help="Container/algorithm.")
@_url
@click.pass_context
def create_model(ctx: click.Context, name: str, model_data_url: str, image: str, url: str | None) -> None:
    """CreateModel: verify and safely unpack the artifact."""
    from tailor.cli._jobs_common import open_client

    with open_client(settings_of(ctx), url) as client:
        out = client.create_model(ModelName=name, PrimaryContainer={"Image": image, "ModelDataUrl": model_data_url})
    click.echo(out["ModelArn"])


@models.command("list")
@click.option("--name-contains")
@click.option("--max-results", type=click.IntRange(1, 100), default=50, show_default=True)
@_url
@_json
@click.pass_context
def list_models(
    ctx: click.Context, name_contains: str | None, max_results: int, url: str | None, as_json: bool
) -> None:
    """List models, newest first."""
    from tailor.cli._jobs_common import echo_json, open_client, table, when

    with open_client(settings_of(ctx), url) as client:
        out = client.list_models(**({"NameContains": name_contains} if name_contains else {}), MaxResults=max_results)
    if echo_json(out, as_json):
        return
    click.echo(table([[m["ModelName"], when(m["CreationTime"])] for m in out["Models"]], ["NAME", "CREATED"]))


@click.group("endpoint-configs")
def endpoint_configs() -> None:
    """Endpoint configurations: which models serve, on how many instances, with what traffic weight."""


@endpoint_configs.command("create")
@click.argument("name")
@click.option(
    "--variant",
    "variants",
    multiple=True,
    required=True,
    metavar="VARIANT=MODEL[:COUNT[:WEIGHT[:TYPE]]]",
    help="A production variant (repeat for up to 10), e.g. AllTraffic=fmnist:2:1:ml.m5.large.",
)
@_url
@click.pass_context
def create_endpoint_config(ctx: click.Context, name: str, variants: tuple[str, ...], url: str | None) -> None:
    """CreateEndpointConfig."""
    from tailor.cli._jobs_common import open_client

    with open_client(settings_of(ctx), url) as client:
        out = client.create_endpoint_config(
            EndpointConfigName=name, ProductionVariants=[parse_variant(v) for v in variants]
        )
    click.echo(out["EndpointConfigArn"])


def parse_variant(text: str) -> dict[str, object]:
    variant, sep, rest = text.partition("=")
    parts = rest.split(":")
    if not sep or not variant or not parts[0] or len(parts) > 4:
        raise click.BadParameter(f"{text!r}: expected VARIANT=MODEL[:COUNT[:WEIGHT[:TYPE]]]", param_hint="--variant")
    try:
        out: dict[str, object] = {
            "VariantName": variant,
            "ModelName": parts[0],
            "InitialInstanceCount": int(parts[1]) if len(parts) > 1 and parts[1] else 1,
            "InitialVariantWeight": float(parts[2]) if len(parts) > 2 and parts[2] else 1.0,
        }
    except ValueError:
        raise click.BadParameter(f"{text!r}: COUNT is an integer and WEIGHT a number", param_hint="--variant") from None
    if len(parts) > 3 and parts[3]:
        out["InstanceType"] = parts[3]
    return out


@endpoint_configs.command("list")
@click.option("--name-contains")
@_url
@_json
@click.pass_context
def list_endpoint_configs(ctx: click.Context, name_contains: str | None, url: str | None, as_json: bool) -> None:
    """List endpoint configurations, newest first."""
    from tailor.cli._jobs_common import echo_json, open_client, table, when

    with open_client(settings_of(ctx), url) as client:
        out = client.list_endpoint_configs(**({"NameContains": name_contains} if name_contains else {}), MaxResults=100)
    if echo_json(out, as_json):
        return
    rows = [[c["EndpointConfigName"], when(c["CreationTime"])] for c in out["EndpointConfigs"]]
    click.echo(table(rows, ["NAME", "CREATED"]))


def _describe_and_delete(group: click.Group, noun: str, describe: str, delete: str) -> None:
    """``describe NAME`` (the Describe* answer as JSON) and ``delete NAME`` for one kind of resource."""

    @group.command("describe", help=f"Describe{noun.title().replace(' ', '')} (JSON).")
    @click.argument("name")
    @_url
    @click.pass_context
    def describe_cmd(ctx: click.Context, name: str, url: str | None) -> None:
        from tailor.cli._jobs_common import call, to_json

        click.echo(to_json(call(ctx, url, lambda client: getattr(client, describe)(name))))

    @group.command("delete", help=f"Delete{noun.title().replace(' ', '')}.")
    @click.argument("name")
    @_url
    @click.pass_context
    def delete_cmd(ctx: click.Context, name: str, url: str | None) -> None:
        from tailor.cli._jobs_common import call

        call(ctx, url, lambda client: getattr(client, delete)(name))
        click.echo(f"deleted {noun} {name}")


_describe_and_delete(models, "model", "describe_model", "delete_model")
_describe_and_delete(endpoint_configs, "endpoint config", "describe_endpoint_config", "delete_endpoint_config")

commands: list[click.Command] = [models, endpoint_configs]
