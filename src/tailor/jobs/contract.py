"""The training contract of one job dir: its layout, the command the algorithm runs as and what it sees.

As SageMaker containers have it, rooted at ``<jobs_dir>/<name>/`` instead of ``/opt/ml``::

    input/config/hyperparameters.json   string values (the built-in algorithm's are fully resolved)
    input/config/inputdataconfig.json   {channel: {ContentType, TrainingInputMode, S3DistributionType, ...}}
    input/config/resourceconfig.json    {current_host, hosts, instance_type, instance_count}
    input/data/<channel>/...            the channel's objects, staged from storage
    model/                              the algorithm writes model.tar.gz here (or files that Tailor tars)
    output/failure                      the algorithm's failure message (first 1024 chars -> FailureReason)
    output/data/                        other outputs
    checkpoints/                        kept across stop; synced to CheckpointConfig.S3Uri when given
    training.log                        stdout and stderr of the algorithm plus Tailor's own lines

The built-in algorithm runs as ``python -m tailor.algorithms.image_classification --job-dir DIR``; a user's
command (``ContainerEntrypoint`` + ``ContainerArguments``) runs unchanged with the job dir as its working
directory and SageMaker's environment variables (SM_MODEL_DIR, SM_CHANNEL_<NAME>, SM_CHANNELS, SM_HPS,
SM_OUTPUT_DATA_DIR, SM_CHECKPOINT_DIR, ...) plus TAILOR_JOB_DIR, or as a container of ``TrainingImage``
(``tailor.jobs.container``). With InstanceCount > 1 the command is launched through
``torchrun --standalone --nproc_per_node=<InstanceCount>``. Every algorithm runs in its own process group, so
stop and timeouts reach every process it started. No training process sees the server's environment or
secrets; as root each runs under its own uid in a sandbox (``tailor.jobs.isolation``).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tailor.jobs import isolation
from tailor.jobs.spec import TrainingJobSpec
from tailor.settings import Settings


@dataclass(frozen=True)
class JobContract:
    settings: Settings
    spec: TrainingJobSpec
    dir: Path  # the job dir (SageMaker's /opt/ml)

    def write_config(self) -> None:
        """The job dir's folders and ``input/config/*.json``; a failure file of an earlier run is removed."""
        for sub in ("input/config", "input/data", "model", "output/data", "checkpoints"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        (self.dir / "output" / "failure").unlink(missing_ok=True)
        spec = self.spec
        config = self.dir / "input" / "config"
        _write_json(config / "hyperparameters.json", spec.HyperParameters)
        _write_json(
            config / "inputdataconfig.json",
            {
                c.ChannelName: {
                    "ContentType": c.ContentType or "",
                    "TrainingInputMode": c.InputMode or spec.AlgorithmSpecification.TrainingInputMode,
                    "S3DistributionType": c.DataSource.S3DataSource.S3DataDistributionType or "FullyReplicated",
                    "RecordWrapperType": c.RecordWrapperType or "None",
                }
                for c in spec.InputDataConfig
            },
        )
        hosts = [f"algo-{i + 1}" for i in range(spec.ResourceConfig.InstanceCount)]
        _write_json(
            config / "resourceconfig.json",
            {
                "current_host": hosts[0],
                "hosts": hosts,
                "instance_type": spec.ResourceConfig.InstanceType,
                "instance_count": spec.ResourceConfig.InstanceCount,
            },
        )

    def command(self, *, per_instance: bool = False) -> list[str]:
        """The job's command; ``per_instance``: what one instance runs (a cluster backend starts one per
        instance and sets the torch.distributed variables itself), else torchrun for InstanceCount > 1."""
        spec = self.spec
        algo = spec.AlgorithmSpecification
        selected = algo.algorithm()
        many = spec.ResourceConfig.InstanceCount > 1 and not per_instance
        if selected is not None:
            cache = isolation.builtin_dirs(self.settings)[0]
            body = [*selected.arguments(self.dir), "--cache-dir", str(cache)]
            if many:
                return [sys.executable, "-m", "torch.distributed.run", *self._torchrun_args(), *body]
            return [sys.executable, *body]
        cmd = [*(algo.ContainerEntrypoint or []), *(algo.ContainerArguments or [])]
        if many:
            return [sys.executable, "-m", "torch.distributed.run", *self._torchrun_args(), "--no-python", *cmd]
        return cmd

    def _torchrun_args(self) -> list[str]:
        return ["--standalone", f"--nproc_per_node={self.spec.ResourceConfig.InstanceCount}"]

    def environment(self) -> dict[str, str]:
        """The training process's whole environment: the scrubbed base (``isolation``) and the job's own."""
        return {**isolation.base_environment(self.dir), **self.job_variables(self.dir)}

    def job_variables(self, root: Path) -> dict[str, str]:
        """SageMaker's SM_* contract for a job dir seen at ``root``, and the spec's Environment."""
        d = root
        channels = [c.ChannelName for c in self.spec.InputDataConfig]
        env: dict[str, str] = {}
        if self.spec.AlgorithmSpecification.builtin:
            env["TAILOR_MODEL_ZOO"] = str(isolation.builtin_dirs(self.settings)[1])
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "TAILOR_JOB_DIR": str(d),
                "TAILOR_JOB_NAME": self.spec.TrainingJobName,
                "SM_TRAINING_JOB_NAME": self.spec.TrainingJobName,
                "SM_INPUT_DIR": str(d / "input"),
                "SM_INPUT_CONFIG_DIR": str(d / "input" / "config"),
                "SM_MODEL_DIR": str(d / "model"),
                "SM_OUTPUT_DIR": str(d / "output"),
                "SM_OUTPUT_DATA_DIR": str(d / "output" / "data"),
                "SM_CHECKPOINT_DIR": str(d / "checkpoints"),
                "SM_HPS": json.dumps(self.spec.HyperParameters),
                "SM_CHANNELS": json.dumps(channels),
                "SM_CURRENT_HOST": "algo-1",
                "SM_HOSTS": json.dumps([f"algo-{i + 1}" for i in range(self.spec.ResourceConfig.InstanceCount)]),
            }
        )
        for ch in channels:
            env[f"SM_CHANNEL_{ch.upper().replace('-', '_').replace('.', '_')}"] = str(d / "input" / "data" / ch)
        env.update(self.spec.Environment)
        return env


def _write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
