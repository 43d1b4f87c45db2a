"""The DDP training loop every torch worker runs: single process or one rank of a group.

One code path: with ``WORLD_SIZE`` > 1 (set by torchrun) it joins a gloo process group (or
uses the one its caller already joined: a multi-node job's world) and wraps the module in
DistributedDataParallel; otherwise it runs the same loop in-process. Rank 0 checkpoints after
every epoch (module, optimiser, epoch, best metric, early-stopping state) to the run's
:mod:`~e2eai.training.checkpoints` location (``checkpoint.pt`` in the run directory unless
the caller names another, e.g. the artifact store) and writes the final model. At start
rank 0 picks the newest checkpoint and every rank loads that one, so a re-run of the same
job resumes where it stopped, on every rank at the same epoch.

What is trained comes from the job's family (:class:`~e2eai.training.torch_family.TorchFamily`):
the module, the datasets (items ``(*inputs, target)``), the loss, the validation metric
(higher is better; it drives early stopping and the best epoch), the optimiser's parameter
groups and how rank 0 writes the model directory. The history and summary call the metric
``validation_auc``: it is ROC-AUC unless the family says otherwise.

Validation is scored once per epoch (and once before the first, the starting point) by all
ranks together: each scores every ``world_size``-th item and the logits are gathered, so
every rank computes the same loss and metric from the same logits. For an encoder that is
what keeps validation from costing more than training: the text task's ~4,100 validation
messages forward-only on each of two ranks, three times over two epochs, were more passes
than its 3,000 training messages twice.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, TensorDataset

from e2eai.errors import TrainingConfigError
from e2eai.training.checkpoints import CHECKPOINT, CheckpointLocation, RunDirCheckpoint
from e2eai.training.families import torch_family
from e2eai.training.torch_family import TorchFamily
from e2eai.training.torch_job import TorchJob, TorchRunSummary

log = logging.getLogger(__name__)

EpochCallback = Callable[[int, float], None]
"""Called after each epoch with (epoch, validation metric); may raise to abort (HPO pruning)."""

_MIN_IMPROVEMENT = 1e-4


def _optimizer(
    name: str, params: list[dict], lr: float, weight_decay: float
) -> torch.optim.Optimizer:
    if name == "adam":  # decoupled decay (AdamW); with weight_decay=0 it is plain Adam
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise TrainingConfigError(f"training.optimizer {name!r} is not one of adam, sgd, rmsprop")


def _scheduler(
    name: str, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """A per-step schedule over the whole run (``epochs`` × batches per epoch).

    Each parameter group (wide, deep) follows the schedule from its own learning rate.
    """
    peaks = [group["lr"] for group in optimizer.param_groups]
    if name == "constant":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: (
                0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
            ),
        )
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peaks, total_steps=total_steps, pct_start=0.2
        )
    raise TrainingConfigError(
        f"training.lr_schedule {name!r} is not one of constant, cosine, onecycle"
    )


def _batches(dataset: Dataset, rows: int) -> list[list[torch.Tensor]]:
    """The whole dataset as one batch when it is held as tensors, else in chunks of ``rows``."""
    if isinstance(dataset, TensorDataset):
        return [list(dataset.tensors)]
    return list(DataLoader(dataset, batch_size=rows))


MIN_STEPS_PER_EPOCH = 32
"""A small table gets smaller batches: at least this many optimiser steps per epoch.

Batch sizes tuned on a large table (1,024 rows over ~100,000 flights) leave a few thousand
rows two steps an epoch, and the model barely moves (credit, 1,500 rows: ROC-AUC 0.78 vs
logistic regression's 0.81). Large tables keep the configured size."""
MIN_BATCH = 32


def effective_batch_size(batch_size: int, rows: int) -> int:
    """``batch_size``, capped so that an epoch over ``rows`` has MIN_STEPS_PER_EPOCH steps."""
    return max(1, min(batch_size, max(MIN_BATCH, rows // MIN_STEPS_PER_EPOCH)))


@torch.no_grad()
def evaluate(
    family: TorchFamily,
    module: nn.Module,
    dataset: Dataset,
    rank: int = 0,
    world_size: int = 1,
) -> tuple[float, float]:
    """(loss, metric) of ``module`` on ``dataset`` in eval mode; with ``world_size`` > 1 every
    rank of the process group must call it: each scores its share, all get the whole."""
    module.eval()
    if world_size > 1 and isinstance(dataset, TensorDataset):
        dataset = TensorDataset(*(t[rank::world_size] for t in dataset.tensors))
    elif world_size > 1:
        dataset = Subset(dataset, range(rank, len(dataset), world_size))  # type: ignore[arg-type]
    logits, targets = [], []
    for *inputs, target in _batches(dataset, family.evaluation_batch):
        logits.append(module(*inputs))
        targets.append(target)
    all_logits, all_targets = torch.cat(logits), torch.cat(targets)
    if world_size > 1:
        shards: list[tuple[torch.Tensor, torch.Tensor] | None] = [None] * world_size
        dist.all_gather_object(shards, (all_logits, all_targets))
        all_logits = torch.cat([shard[0] for shard in shards if shard is not None])
        all_targets = torch.cat([shard[1] for shard in shards if shard is not None])
    loss = family.loss(all_logits, all_targets).item()
    return loss, family.metric(all_targets.numpy(), all_logits)


def state_digest(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict's names and tensor bytes: equal digests, bit-identical models."""
    digest = hashlib.sha256()
    for name, tensor in state.items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def run_worker(
    job: TorchJob,
    on_epoch_end: EpochCallback | None = None,
    checkpoints: CheckpointLocation | None = None,
    *,
    alone: bool = False,
) -> TorchRunSummary:
    """Train (or resume) ``job`` in this process; returns the summary (same on every rank).

    Rank and world size come from torchrun's environment, unless ``alone``: then this
    process trains the job by itself even inside a torchrun world (an HPO trial of a
    multi-node job's leader). ``checkpoints`` None: ``checkpoint.pt`` in ``job.run_dir``.
    """
    world_size = 1 if alone else int(os.environ.get("WORLD_SIZE", "1"))
    rank = 0 if alone else int(os.environ.get("RANK", "0"))
    distributed = world_size > 1
    # A multi-node job's world is joined once for all its torch jobs: use it, leave it open.
    owns_group = distributed and not dist.is_initialized()
    if owns_group:
        dist.init_process_group("gloo")
    run_dir = Path(job.run_dir)
    (run_dir / "workers").mkdir(parents=True, exist_ok=True)
    (run_dir / "workers" / f"rank{rank}.pid").write_text(str(os.getpid()))
    # One intra-op thread, as torchrun gives each worker: on small tabular batches extra
    # threads only spin-wait (measured ~10x slower on a busy 2-core machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    location = checkpoints or RunDirCheckpoint(run_dir / CHECKPOINT)
    try:
        return _train(job, run_dir, rank, world_size, on_epoch_end, location)
    finally:
        torch.set_num_threads(threads)
        if owns_group:
            dist.destroy_process_group()


def _checkpoint_to_resume(
    location: CheckpointLocation, rank: int, distributed: bool
) -> tuple[str | None, dict | None]:
    """(name, checkpoint) every rank resumes from: the one rank 0 found newest."""
    name = location.newest() if rank == 0 else None
    if distributed:
        # Rank 0 decides: a rank must never resume from an epoch another rank does not.
        chosen = [name]
        dist.broadcast_object_list(chosen, src=0)
        name = chosen[0]
    return name, (location.load(name) if name is not None else None)


def _train(
    job: TorchJob,
    run_dir: Path,
    rank: int,
    world_size: int,
    on_epoch_end: EpochCallback | None,
    location: CheckpointLocation,
) -> TorchRunSummary:
    distributed = world_size > 1
    family = torch_family(job.family)
    train = family.dataset(job, job.train_path)
    validation = family.dataset(job, job.validation_path)
    fingerprint = job.fingerprint()

    model = family.build_module(job)
    state: dict = {
        "epoch": 0,
        "best_auc": -1.0,
        "best_epoch": 0,
        "epochs_without_improvement": 0,
        "stopped": False,
        "history": [],
        "best_state": None,
    }
    checkpoint_name, checkpoint = _checkpoint_to_resume(location, rank, world_size > 1)
    if checkpoint is not None:
        if checkpoint["fingerprint"] != fingerprint:
            raise TrainingConfigError(
                f"{location.describe(checkpoint_name)} belongs to a different job (other data "
                "or parameters); use a fresh run directory or delete the checkpoint"
            )
        model.load_state_dict(checkpoint["model"])
        state = checkpoint["state"]
    elif job.init_weights:
        model.load_state_dict(torch.load(job.init_weights, weights_only=True))
    resumed_from = state["epoch"]
    log.info(
        "rank=%d world_size=%d resumed_from_epoch=%d checkpoint=%s",
        rank,
        world_size,
        resumed_from,
        location.describe(checkpoint_name) if checkpoint_name else "none",
    )

    groups = family.parameter_groups(model, job)
    optimizer = _optimizer(
        job.params.optimizer, groups, job.params.learning_rate, job.params.weight_decay
    )

    if not state["history"]:  # epoch 0: the starting point (champion weights or fresh init)
        start_loss, auc = evaluate(family, model, validation, rank, world_size)
        state["history"].append(
            {
                "epoch": 0,
                "train_loss": float("nan"),
                "validation_loss": start_loss,
                "validation_auc": auc,
            }
        )
        state["best_auc"], state["best_state"] = auc, copy.deepcopy(model.state_dict())

    ddp = nn.parallel.DistributedDataParallel(model) if distributed else model
    sampler: DistributedSampler = DistributedSampler(
        train, num_replicas=world_size, rank=rank, shuffle=True, seed=job.seed
    )
    per_worker_batch = max(1, effective_batch_size(job.params.batch_size, len(train)) // world_size)
    loader = DataLoader(train, batch_size=per_worker_batch, sampler=sampler)
    scheduler = _scheduler(job.params.lr_schedule, optimizer, job.epochs * len(loader))
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])

    writer = None
    if rank == 0:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=resumed_from + 1)
    samples, seconds = 0, 0.0
    epoch = state["epoch"]
    while not state["stopped"] and epoch < job.epochs:
        epoch += 1
        sampler.set_epoch(epoch)
        torch.manual_seed(job.seed * 1009 + epoch * 31 + rank)  # dropout: same after resume
        ddp.train()
        started, total, count = time.perf_counter(), 0.0, 0
        for *inputs, target in loader:
            optimizer.zero_grad()
            loss = family.loss(ddp(*inputs), target)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += loss.item() * len(target)
            count += len(target)
        seconds += time.perf_counter() - started
        samples += count * world_size
        val_loss, val_auc = evaluate(family, model, validation, rank, world_size)
        train_loss = total / max(count, 1)
        state["history"].append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "validation_loss": val_loss,
                "validation_auc": val_auc,
            }
        )
        if val_auc > state["best_auc"] + _MIN_IMPROVEMENT:
            state["best_auc"], state["best_epoch"] = val_auc, epoch
            state["best_state"] = copy.deepcopy(model.state_dict())
            state["epochs_without_improvement"] = 0
        else:
            state["epochs_without_improvement"] += 1
        stop = torch.tensor([int(state["epochs_without_improvement"] >= job.patience)])
        if distributed:
            dist.broadcast(stop, src=0)  # every rank must leave the loop at the same epoch
        state["stopped"] = bool(stop.item())
        state["epoch"] = epoch
        if writer is not None:
            writer.add_scalar("loss/train", train_loss, epoch)
            writer.add_scalar("loss/validation", val_loss, epoch)
            writer.add_scalar("roc_auc/validation", val_auc, epoch)
            writer.flush()
        if rank == 0:
            location.save(
                epoch,
                {
                    "fingerprint": fingerprint,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "state": state,
                },
            )
        if distributed:
            dist.barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch, val_auc)

    if writer is not None:
        writer.close()
    model_dir = run_dir / "model"
    summary = TorchRunSummary(
        model_dir=str(model_dir),
        world_size=world_size,
        epochs_run=state["epoch"],
        best_epoch=state["best_epoch"],
        best_validation_auc=state["best_auc"],
        stopped_early=state["stopped"] and state["epoch"] < job.epochs,
        resumed_from_epoch=resumed_from,
        samples_per_second=samples / seconds if seconds else 0.0,
        train_seconds=seconds,
        history=state["history"],
    )
    # Every rank says what it holds: DDP keeps replicas bit-identical, so the digests agree.
    log.info(
        "rank=%d world_size=%d epochs_run=%d best_epoch=%d final_state_sha256=%s "
        "best_state_sha256=%s",
        rank,
        world_size,
        state["epoch"],
        state["best_epoch"],
        state_digest(model.state_dict()),
        state_digest(state["best_state"]),
    )
    if rank == 0:
        family.save_model(state["best_state"], job, model_dir)
        summary.save(run_dir / "summary.json")
    if distributed:
        dist.barrier()
    return summary
