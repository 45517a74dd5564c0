"""What a cluster user sets for ``reproduce --executor slurm`` (``neural.learning.slurm``), apart from the executor,
so that the command line shows the defaults without importing it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SlurmOptions:
    """What a cluster user sets; ``None`` leaves it to the cluster's defaults."""

    partition: str | None = None
    account: str | None = None
    time_minutes: int = 60  # per job; a cell that needs longer is checkpointed and requeued
    gpus_per_job: int = 0
    cpus_per_job: int = 2
    mem_gb: float = 8.0
    array_parallelism: int = 64  # tasks of the array running at once
    sbatch_args: tuple[tuple[str, str], ...] = ()  # extra #SBATCH --KEY=VALUE lines
    signal_seconds: int = 90  # the warning before the time limit
    max_requeues: int = 20  # after time limits; requeues after preemption are not counted
    wait: bool = False  # wait for the tasks and collect their rows, rather than print the job ids and return
    poll_seconds: float = 15.0

    def parameters(self, job_name: str) -> dict:
        """submitit's ``update_parameters`` for these options."""
        params = {"job_name": job_name, "time": self.time_minutes, "cpus_per_task": self.cpus_per_job,
                  "mem": f"{self.mem_gb:g}GB", "array_parallelism": self.array_parallelism,
                  "signal_delay_s": self.signal_seconds, "nodes": 1, "ntasks_per_node": 1}
        if self.partition:
            params["partition"] = self.partition
        if self.account:
            params["account"] = self.account
        if self.gpus_per_job:
            params["gpus_per_node"] = self.gpus_per_job
        if self.sbatch_args:
            params["additional_parameters"] = dict(self.sbatch_args)
        return params

    @property
    def device(self) -> str:
        """The device a task trains on, as the groups are planned for it."""
        return "cuda" if self.gpus_per_job else "cpu"

    @property
    def plan_memory(self) -> float:
        """The bytes a task's group may be planned into: half the job's memory on a CPU; on a GPU, half of 16 GiB
        (the smallest GPU this is sized for)."""
        return (16 if self.gpus_per_job else self.mem_gb) * 2 ** 30 / 2
