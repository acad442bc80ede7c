"""What a training process can reach, in-process: modes of the home, staged copies, links a job plants, the
sandbox plan, the built-in algorithm's environment rule, and the container engine's command and detection."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tailor.core import Tailor
from tailor.errors import ServiceUnavailableError, ValidationError
from tailor.jobs import container, isolation
from tailor.settings import Settings
from tests.jobs.specs import put_train_data


@pytest.fixture
def tailor(settings: Settings) -> Iterator[Tailor]:
    put_train_data(settings)
    t = Tailor.open(settings.model_copy(update={"allow_own_code": True, "job_stop_grace_seconds": 1.0}))
    yield t
    t.close()


def shell_job(name: str, script: str, channel: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"ContainerEntrypoint": ["/bin/sh", "-c", script]},
        "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
    }
    if channel:
        spec["InputDataConfig"] = [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": channel}}}]
    return spec


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_home_folders_are_0700_and_the_database_0600(tailor: Tailor) -> None:
    s = tailor.settings
    for d in (s.home, s.buckets_dir, s.jobs_dir, s.models_dir, s.cache_dir):
        assert mode(d) == 0o700, d
    db = s.home / "tailor.db"
    assert mode(db) == 0o600
    tailor.jobs.list()  # a write-ahead log, once it exists, copies the database's mode
    for extra in (s.home / "tailor.db-wal", s.home / "tailor.db-shm"):
        if extra.exists():
            assert mode(extra) == 0o600


def test_staged_copies_keep_no_wider_mode_than_their_source(tailor: Tailor, tmp_path: Path) -> None:
    src = tmp_path / "local-data"
    src.mkdir()
    (src / "private.txt").write_text("p")
    (src / "private.txt").chmod(0o600)
    (src / "shared.txt").write_text("s")
    (src / "shared.txt").chmod(0o640)
    tailor.jobs.create(shell_job("staged", 'echo ok > "$SM_MODEL_DIR/m"', channel=str(src)))
    assert tailor.jobs.wait("staged", timeout=60)["TrainingJobStatus"] == "Completed"
    staged = tailor.settings.jobs_dir / "staged" / "input" / "data" / "train"
    assert (mode(staged / "private.txt"), mode(staged / "shared.txt")) == (0o600, 0o640)
    job_dir = tailor.settings.jobs_dir / "staged"
    assert mode(job_dir) == 0o700 and job_dir.stat().st_uid == os.geteuid()


def test_links_a_job_plants_are_never_followed(tailor: Tailor, admin_credentials: object) -> None:
    """A job owns its dir: a link to a server secret where the server reads output/failure, the log or the
    model must not bring that secret into the FailureReason, the log or the output bucket."""
    master = tailor.settings.home / "auth" / "master.key"
    secret = master.read_bytes()
    script = (
        f'ln -s "{master}" output/failure; ln -s "{master}" model/model.tar.gz; '
        f'ln -s "{master}" checkpoints/key; mkfifo output/data/pipe; exit 1'
    )
    spec = shell_job("planted", script)
    spec["CheckpointConfig"] = {"S3Uri": "s3://out/ckpt"}
    tailor.jobs.create(spec)
    desc = tailor.jobs.wait("planted", timeout=60)
    assert desc["TrainingJobStatus"] == "Failed"
    assert "exited with code 1" in desc["FailureReason"] and secret.hex()[:16] not in desc["FailureReason"]
    assert "ModelArtifacts" not in desc
    assert tailor.storage.list("s3://out/") == []
    log = tailor.jobs.logs("planted")["Text"]
    assert "removed links and special files the job left" in log and "output/failure" in log
    job_dir = tailor.settings.jobs_dir / "planted"
    assert not any(p.is_symlink() for p in job_dir.rglob("*"))


def test_sandbox_plan_hides_the_home_and_what_the_uid_cannot_enter(settings: Settings) -> None:
    job_dir = settings.jobs_dir / "j"
    job_dir.mkdir()
    plan = isolation.plan(settings, job_dir, settings.job_uid_base + 7, builtin=True)
    assert plan["uid"] == plan["gid"] == settings.job_uid_base + 7 and plan["cwd"] == str(job_dir)
    assert str(settings.home) in plan["covers"] or any(str(settings.home).startswith(c) for c in plan["covers"])
    binds = dict((p, rw) for p, rw in plan["binds"])
    assert binds[str(job_dir)] is True
    assert str(settings.cache_dir / "decoded") not in binds  # not created yet: nothing to show
    for path, rw in binds.items():
        if path != str(job_dir):
            assert any(path.startswith(c) for c in plan["covers"]) and (rw is False or "cache" in path)


def test_builtin_algorithm_takes_no_code_loading_environment(tailor: Tailor) -> None:
    spec = {
        "TrainingJobName": "env-inject",
        "AlgorithmSpecification": {"TrainingImage": "tailor/image-classification"},
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://data/train"}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
    }
    for key in ("PYTHONPATH", "LD_PRELOAD", "PYTHONSTARTUP", "PATH"):
        with pytest.raises(ValidationError, match=rf"Environment '{key}': the built-in algorithm accepts only"):
            tailor.jobs.create({**spec, "Environment": {key: "/tmp/x"}})


def test_own_code_in_process_is_off_unless_the_setting_allows_it(settings: Settings) -> None:
    put_train_data(settings)
    with Tailor.open(settings.model_copy(update={"allow_own_code": False})) as t:
        with pytest.raises(ValidationError, match="own training code is disabled on this server"):
            t.jobs.create(shell_job("off", "true"))
        assert t.jobs.list()["TrainingJobSummaries"] == []


def test_container_command_mounts_the_job_dir_with_no_network_and_the_job_uid(tmp_path: Path) -> None:
    cmd = container.command(
        "/usr/bin/podman",
        job_name="mine-1",
        image="registry.local/me/train:1",
        entrypoint=["python", "train.py"],
        arguments=["--epochs", "3"],
        job_dir=tmp_path,
        env_keys=["SM_MODEL_DIR", "SM_HPS"],
        uid=1_900_000_042,
        network=False,
    )
    assert cmd == [
        "/usr/bin/podman", "run", "--rm", "--name", "tailor-job-mine-1", "--network", "none",
        "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--volume", f"{tmp_path}:/opt/ml",
        "--workdir", "/opt/ml", "--user", "1900000042:1900000042", "--env", "SM_HPS", "--env", "SM_MODEL_DIR",
        "--entrypoint", "python", "registry.local/me/train:1", "train.py", "--epochs", "3",
    ]  # fmt: skip
    plain = container.command(
        "docker", job_name="j", image="img", entrypoint=None, arguments=None, job_dir=tmp_path,
        env_keys=[], uid=None, network=True,
    )  # fmt: skip
    assert plain[-2:] == ["img", "train"] and "bridge" in plain and "--user" not in plain


def fake_engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, script: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    exe = bin_dir / name
    exe.write_text(f"#!/bin/sh\n{script}\n")
    exe.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_engine_setting_without_an_answering_engine_is_one_clear_line(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon_down = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"
    fake_engine(tmp_path, monkeypatch, "docker", f'echo "Client:"; echo "{daemon_down}" >&2; exit 1')
    put_train_data(settings)
    spec = {
        "TrainingJobName": "in-a-container",
        "AlgorithmSpecification": {"TrainingImage": "registry.local/me/train:1"},
        "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
    }
    update = {"allow_own_code": True, "own_code_engine": "docker"}
    with Tailor.open(settings.model_copy(update=update)) as t:
        with pytest.raises(ServiceUnavailableError) as err:
            t.jobs.create(spec)
        assert str(err.value) == f"own_code_engine = 'docker', but no docker engine answers: {daemon_down}"
        assert t.jobs.list()["TrainingJobSummaries"] == []
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ServiceUnavailableError) as err:
        container.require_engine("podman")
    assert str(err.value) == "own_code_engine = 'podman', but no podman command is installed"


def test_engine_that_answers_is_used_for_the_job(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stand-in engine that answers `info` and records its `run` command line: the job runs through it."""
    record = tmp_path / "run-args"
    fake_engine(
        tmp_path,
        monkeypatch,
        "podman",
        f'if [ "$1" = info ]; then echo ok; exit 0; fi\n'
        f'if [ "$1" = run ]; then printf "%s\\n" "$@" > "{record}"; echo "SM_MODEL_DIR=$SM_MODEL_DIR"; exit 0; fi\n'
        "exit 0",
    )
    put_train_data(settings)
    spec = {
        "TrainingJobName": "via-podman",
        "AlgorithmSpecification": {"TrainingImage": "registry.local/me/train:1"},
        "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
    }
    with Tailor.open(settings.model_copy(update={"allow_own_code": True, "own_code_engine": "podman"})) as t:
        t.jobs.create(spec)
        desc = t.jobs.wait("via-podman", timeout=60)
        log = t.jobs.logs("via-podman")["Text"]
    args = record.read_text().splitlines()
    assert args[:2] == ["run", "--rm"] and args[-2:] == ["registry.local/me/train:1", "train"]
    assert f"{settings.jobs_dir / 'via-podman'}:/opt/ml" in args and "none" in args
    assert "SM_MODEL_DIR=/opt/ml/model" in log  # the container's view of the contract
    assert ("--user" in args) == (os.geteuid() == 0)
    assert desc["TrainingJobStatus"] == "Failed" and "wrote nothing" in desc["FailureReason"]


def test_python_paths_cover_the_interpreter_and_tailor() -> None:
    paths = isolation.python_paths()
    assert Path(os.path.realpath(sys.base_prefix)) in paths
    import tailor

    assert any(Path(tailor.__file__).resolve().is_relative_to(p) for p in paths)
