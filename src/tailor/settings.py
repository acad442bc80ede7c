"""One typed settings model for every Tailor process.

Precedence: defaults < ``$TAILOR_HOME/config.toml`` < environment (``TAILOR_*``) < explicit arguments
(CLI flags). The resolved values are passed explicitly to whatever needs them; no layer reads the environment
on its own.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tailor.errors import ValidationError

# The largest network Tailor trains is ResNet-200 (pre-activation, 3x224x224): 64.8 M parameters at 1,000
# classes (sum of numel over state_dict; tests/models/test_artifact.py recounts it from the registry), i.e.
# ~259 MB of float32 in weights.safetensors and as much again in model.onnx: 0.52 GB per artifact. Twice
# that, rounded up: a ResNet-200 artifact of up to ~36,000 classes fits (16 KB per class), a 2 GiB bomb does not.
DEFAULT_MAX_ARTIFACT_BYTES = 1_100_000_000


def _default_home() -> Path:
    return Path(os.environ.get("TAILOR_HOME", "~/.tailor")).expanduser()


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads ``config.toml`` from the home directory chosen by env or argument."""

    def __init__(self, settings_cls: type[BaseSettings], home: Path) -> None:
        super().__init__(settings_cls)
        self.path = home / "config.toml"

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {}
        with self.path.open("rb") as fh:
            return tomllib.load(fh)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TAILOR_", extra="forbid", validate_default=True)

    home: Path = Field(default_factory=_default_home, description="Holds tailor.db, buckets/, jobs/, models/.")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default sqlite:///$TAILOR_HOME/tailor.db (WAL)."
    )
    # Object storage: s3:// URIs map to local buckets under home/buckets unless an endpoint URL is set.
    s3_endpoint_url: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    s3_region: str = "us-east-1"
    dataset_mirror: str | None = Field(
        default=None, description="Base URL (file:// allowed) that replaces the official dataset origins."
    )
    model_zoo: Path | None = Field(default=None, description="Pretrained weights directory; default home/zoo.")
    host: str = "127.0.0.1"
    port: int = Field(default=8023, ge=1, le=65535)
    region: str = "us-east-1"
    account_id: str = Field(default="000000000000", pattern=r"^\d{12}$")
    max_concurrent_jobs: int = Field(default=1, ge=1, le=64)
    # Training jobs: seconds between SIGTERM and SIGKILL on stop / max runtime (SageMaker gives 120 s), and
    # seconds between resource samples (CPU %, RSS, GPU) of a running job.
    job_stop_grace_seconds: float = Field(default=30.0, ge=0)
    job_sample_interval_seconds: float = Field(default=5.0, gt=0)
    # Access keys that Tailor's SDK and CLI sign requests with: these (or TAILOR_ACCESS_KEY_ID /
    # TAILOR_SECRET_ACCESS_KEY) win over the credentials file, an AWS-style INI file that `tailor server init`
    # writes (mode 0600) and boto3 can read too (AWS_SHARED_CREDENTIALS_FILE).
    access_key_id: str | None = None
    secret_access_key: str | None = None
    credentials_file: Path | None = Field(default=None, description="Default home/credentials.")
    profile: str = "default"
    # The Tailor server the CLI talks to when a command gets no --url (TAILOR_URL); unset: in-process on home.
    url: str | None = Field(default=None, pattern=r"^https?://", description="e.g. http://127.0.0.1:8023")
    # Lifetime of `Authorization: Bearer` tokens (12 h: a working day of console use; revocable any time).
    token_ttl_seconds: int = Field(default=43_200, ge=60, le=7 * 86_400)
    # /metrics names endpoints, jobs and workers: it needs a caller allowed tailor:GetMetrics unless this opens it
    # to anyone who can reach the port (for a Prometheus that cannot send a bearer token).
    metrics_public: bool = False
    # Serve the OpenAPI schema at /openapi.json to authenticated callers. Swagger UI and ReDoc pages are never
    # served (they load from a CDN).
    openapi_schema: bool = False
    # Pixels one invocation may decode, read from the PNG/JPEG headers before decoding (413 above): 40 Mpx
    # fits a 6 MB phone photo, not a 388 KB PNG of 20000x20000. At most Pillow's own refusal threshold
    # (2 x Image.MAX_IMAGE_PIXELS = 178,956,970), above which it raises whatever this says.
    max_image_pixels: int = Field(default=40_000_000, ge=1, le=178_956_970)
    # Bytes a model.tar.gz may unpack to, in total (counted while streaming; nothing is left when refused).
    max_artifact_bytes: int = Field(default=DEFAULT_MAX_ARTIFACT_BYTES, ge=1)
    # Own training code (ContainerEntrypoint, or a TrainingImage that is not the built-in algorithm) is refused
    # unless this is true; callers over HTTP also need `tailor:RunCustomCode` on the job's ARN.
    allow_own_code: bool = False
    # Where own code runs: "process" (a sandboxed local process) or "podman"/"docker" (a container of
    # TrainingImage, the job dir mounted at /opt/ml, as SageMaker does); network for own-code containers.
    own_code_engine: Literal["process", "podman", "docker"] = "process"
    own_code_network: bool = False
    # When the server runs as root, training processes drop to uids from this reserved range: the first for the
    # built-in algorithm, one of the others per own-code job (unused by systemd's and distributions' ranges).
    job_uid_base: int = Field(default=1_900_000_000, ge=1000, le=2_147_000_000)
    job_uid_count: int = Field(default=65_536, ge=2, le=1 << 20)
    # Servers sharing one PostgreSQL database: a server whose heartbeat is older than this is dead, and the
    # others take over its training jobs and endpoints (it beats 5 times per lease).
    server_lease_seconds: float = Field(default=15.0, ge=0.5, le=3600)
    # Where training jobs and endpoint workers run: "local" (child processes of this server) or "ray" (an existing
    # Ray cluster at ray_address: "auto" for the cluster this host belongs to, "HOST:PORT" of its head (GCS), or
    # "ray://HOST:10001" through Ray Client). Ray needs the optional extra: pip install 'tailor[cluster]'.
    backend: Literal["local", "ray"] = "local"
    ray_address: str | None = Field(default=None, description='e.g. "auto", "10.0.0.5:6379", "ray://head:10001"')
    # How an InstanceType maps to Ray resources (CPUs, GPUs, memory) on the ray backend; default the table in
    # tailor.backends.instance_types, overridden entry by entry by this TOML file (default home/instance_types.toml).
    instance_types_file: Path | None = None
    # Training on the ray backend: seconds a job waits for its placement group (all instances' resources) before
    # it fails, and how often it restarts from its last checkpoint after losing a node (each restart waits again).
    ray_resource_wait_seconds: float = Field(default=60.0, gt=0)
    ray_max_restarts: int = Field(default=2, ge=0, le=100)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_home = init_settings().get("home") if callable(init_settings) else None
        home = Path(init_home).expanduser() if init_home else _default_home()
        return (init_settings, env_settings, _TomlFileSource(settings_cls, home))

    # Derived locations: one place that knows the home layout.
    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'tailor.db'}"

    @property
    def buckets_dir(self) -> Path:
        return self.home / "buckets"

    @property
    def jobs_dir(self) -> Path:
        return self.home / "jobs"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def credentials_path(self) -> Path:
        return self.credentials_file or self.home / "credentials"

    @property
    def instance_types_path(self) -> Path:
        return self.instance_types_file or self.home / "instance_types.toml"

    @property
    def zoo_dir(self) -> Path:
        return self.model_zoo or self.home / "zoo"

    def ensure_home(self) -> Path:
        """The home directory, created (0700) if missing; only its last level is ever created, so a mistyped
        TAILOR_HOME is an error, not a new tree somewhere."""
        home = self.home
        if home.is_dir():
            return home
        if home.exists():
            raise ValidationError(f"Tailor home {home} is not a directory: set TAILOR_HOME (or --home) to a directory")
        if not home.parent.is_dir():
            raise ValidationError(
                f"Tailor home {home}: its parent {home.parent} does not exist; create it or choose another home"
            )
        try:
            home.mkdir(mode=0o700)
        except FileExistsError:
            pass  # another process created it meanwhile
        except OSError as err:
            raise ValidationError(f"cannot create Tailor home {home}: {err.strerror or err}") from None
        return home

    def ensure_dirs(self) -> Settings:
        """The home and its folders; each created 0700 (owner only: the home holds keys, the database, jobs)."""
        self.ensure_home()
        for d in (self.buckets_dir, self.jobs_dir, self.models_dir, self.cache_dir):
            if d.is_dir():
                continue
            try:
                d.mkdir(mode=0o700, exist_ok=True)
            except OSError as err:
                raise ValidationError(f"cannot create {d}: {err.strerror or err}") from None
        return self


def load_settings(**overrides: Any) -> Settings:
    """Resolve settings; ``None`` overrides (unset CLI flags) are ignored. Bad values raise one-line errors."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except PydanticValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ValidationError(
            f"invalid setting {key!r}: {first['msg']} (from flags, TAILOR_* env or config.toml)"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ValidationError(f"config.toml: {err}") from None
