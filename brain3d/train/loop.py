"""The one training loop: every phase runs through `run_phase`, which only reads the phase's data.

Per epoch: batches seeded by (seed, epoch) and sharded over processes, forward through a phase objective
(DDP-wrapped by accelerate when several processes run), backward with gradient accumulation (no gradient
sync between accumulation steps), gradient clipping, AdamW step at the lr of the warm-up + cosine schedule,
then a validation pass, early-stopping bookkeeping and an atomic resume state. The best validation state is
restored at the end. Randomness (LoRA dropout) is re-seeded from (seed, phase, epoch, rank) at every epoch,
so a run resumed from an epoch's state replays exactly what an unbroken run does.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from brain3d import quiet
from brain3d.data.cache import tensors_digest
from brain3d.data.dataset import ReportDataset, collate, epoch_batches
from brain3d.errors import TrainingError
from brain3d.fsutil import append_jsonl_rows, stable_int
from brain3d.train.features import TextBank
from brain3d.train.findings import report_labels
from brain3d.train.keywords import keyword_positions, keyword_weights
from brain3d.train.losses import symmetric_info_nce, weighted_lm_loss
from brain3d.train.phases import PhaseConfig, select_trainable
from brain3d.train.schedule import lr_factor, warmup_steps_for
from brain3d.train.selection import grounding_score
from brain3d.train.state import load_state, save_state


@dataclass
class PhaseData:
    """What a phase iterates over. inputs: 'volumes' (the encoder runs) or 'features' (cached encoder output)."""

    train: ReportDataset
    val: ReportDataset | None
    inputs: str
    bank: TextBank | None = None  # phase 1: train reports (+ mirrored twins)
    val_bank: TextBank | None = None  # phase 1: validation reports


@dataclass
class LoopContext:
    """Run-wide things the loop needs besides the phase itself."""

    accelerator: Any
    seed: int
    state_dir: Path
    metrics_path: Path
    max_grad_norm: float | None
    eval_batch_size: int
    progress: bool = True
    on_epoch_end: Callable[[str, int, dict], None] | None = None

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process


@dataclass
class PhaseResult:
    name: str
    best_val_loss: float | None
    best_epoch: int | None
    initial_val_loss: float | None
    epochs_run: int
    steps: int
    stopped_early: bool
    final_train_loss: float | None
    trainable_parameters: int
    rank_digests: list[str] = field(default_factory=list)
    best_grounding: float | None = None  # validation grounding score of the kept state (select: grounding)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def report_loss(model: nn.Module, phase: PhaseConfig, reports: list[str], inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """Phase-2 loss of one batch: the LM's own mean loss, or the keyword-weighted one (`phase.keyword_weight`)."""
    out = model(reports, **inputs)
    if phase.keyword_weight == 1.0:
        return out.loss
    flags = keyword_positions(model.tokenizer, reports, model.config.max_report_tokens)
    return weighted_lm_loss(out.logits, out.labels, keyword_weights(out.labels, flags, phase.keyword_weight))


class PhaseObjective(nn.Module):
    """batch -> scalar loss of one phase. The Brain3D model is a submodule, so DDP sees its parameters."""

    def __init__(self, model: nn.Module, phase: PhaseConfig, inputs: str, bank: TextBank | None = None):
        super().__init__()
        self.model = model
        self.phase = phase
        self.inputs = inputs
        self.bank = bank
        if phase.objective == "contrastive" and bank is None:
            raise TrainingError("the contrastive phase needs the report-embedding bank")

    def forward(self, inputs: torch.Tensor, reports: list[str], labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.phase.objective == "contrastive":
            feats = self.model.encode_volume(inputs) if self.inputs == "volumes" else inputs  # (B, N, dv)
            soft = self.model.visual_tokens(feats)  # (B, K, dlm)
            v = soft.float().mean(dim=1)  # (B, dlm), as volume_embedding
            ids = self.bank.ids(reports)
            bank = self.bank.emb if self.phase.bank else None
            loss = symmetric_info_nce(v, self.bank.emb[ids], ids, self.phase.temperature, bank)
            if self.phase.findings_weight > 0:
                logits = self.model.findings_logits(soft)  # (B, L)
                loss = loss + self.phase.findings_weight * F.binary_cross_entropy_with_logits(
                    logits.float(), report_labels(reports, logits.device))
            if self.phase.region_weight > 0:
                loss = loss + self.phase.region_weight * self.model.region_loss(feats, labels)
            return loss
        return report_loss(self.model, self.phase, reports, {self.inputs: inputs})


@torch.no_grad()
def evaluate(model: nn.Module, phase: PhaseConfig, data: PhaseData, batch_size: int,
             autocast: Callable = contextlib.nullcontext) -> float | None:
    """Validation loss (every process computes the whole, small, validation set; no communication).

    contrastive: InfoNCE of all validation volumes at once against the validation reports (a fixed
    candidate set, independent of the batch size); lm: batch-size-weighted mean of the masked LM loss."""
    val = data.val
    if val is None or len(val) == 0:
        return None
    was_training = model.training
    model.eval()
    try:
        items = [collate([val[j] for j in range(i, min(i + batch_size, len(val)))]) for i in range(0, len(val), batch_size)]
        dev = model.device
        with autocast():
            if phase.objective == "contrastive":
                if len(val) < 2 or data.val_bank is None:
                    return None
                embs, logits, reports, region = [], [], [], 0.0
                for b in items:
                    x = b["inputs"].to(dev)
                    feats = model.encode_volume(x) if data.inputs == "volumes" else x
                    soft = model.visual_tokens(feats)  # (b, K, dlm)
                    embs.append(soft.float().mean(dim=1))  # as volume_embedding
                    if phase.findings_weight > 0:
                        logits.append(model.findings_logits(soft).float())
                    if phase.region_weight > 0:
                        region += float(model.region_loss(feats, b["labels"])) * len(b["report"]) / len(val)
                    reports += b["report"]
                ids = data.val_bank.ids(reports)
                bank = data.val_bank.emb if phase.bank else None
                if bank is None and len(set(ids.tolist())) < 2:
                    return None
                loss = float(symmetric_info_nce(torch.cat(embs), data.val_bank.emb[ids], ids, phase.temperature, bank))
                if logits:  # the validation loss is the training objective: the findings target counts too
                    loss += phase.findings_weight * float(F.binary_cross_entropy_with_logits(
                        torch.cat(logits), report_labels(reports, dev)))
                return loss + phase.region_weight * region
            total, n = 0.0, 0
            for b in items:
                kw = {data.inputs: b["inputs"].to(dev)}
                total += float(report_loss(model, phase, b["report"], kw)) * len(b["report"])
                n += len(b["report"])
            return total / n
    finally:
        model.train(was_training)


def run_phase(ctx: LoopContext, name: str, phase: PhaseConfig, model: nn.Module, data: PhaseData,
              resume: dict | None = None) -> PhaseResult:
    """Train `model` for one phase; `resume` is the state.json of an interrupted run of this phase."""
    acc = ctx.accelerator
    rank, world = acc.process_index, acc.num_processes
    if phase.objective == "contrastive" and phase.batch_size < 2:
        raise TrainingError(
            f"phase {name} has batch_size {phase.batch_size}: contrastive (InfoNCE) training needs at least 2 volumes "
            "per batch and process, because with one volume the loss has no negatives and is identically zero"
        )
    groups = select_trainable(model, phase)
    params = [p for g in groups for p in g["params"]]
    optimizer = torch.optim.AdamW(groups, lr=phase.lr, weight_decay=phase.weight_decay)
    # torch deprecates DDP's broadcast_buffers (accelerate cannot pass its successor); its advice for a run that
    # needs no buffer sync per forward is to keep it, so the warning is only noise here (see run._accelerator)
    with quiet.ignoring(r"`broadcast_buffers` is deprecated", FutureWarning):
        objective = acc.prepare(PhaseObjective(model, phase, data.inputs, data.bank))
    min_last = 2 if phase.objective == "contrastive" else 1

    def batches(epoch: int) -> list[list[int]]:
        return epoch_batches(len(data.train), phase.batch_size, seed=stable_int(ctx.seed, "phase", name), epoch=epoch,
                             min_last=min_last, rank=rank, world_size=world)

    per_epoch = math.ceil(len(batches(0)) / phase.grad_accum)
    if per_epoch == 0:
        raise TrainingError(f"phase {name} has no training batch: the train split is empty")
    total = per_epoch * phase.epochs
    warmup = warmup_steps_for(total, phase.warmup_ratio)

    by_grounding = phase.select == "grounding" and phase.objective == "lm" and data.val is not None
    start_epoch, step, best, best_val, best_epoch, bad, initial_val = 0, 0, None, None, None, 0, None
    best_key: tuple | None = None  # (grounding score, -val loss) when selecting by grounding
    if resume is not None:
        weights, best, opt_state = load_state(ctx.state_dir)
        model.load_trainable_state_dict(weights)
        optimizer.load_state_dict(opt_state)
        start_epoch, step = resume["epoch"] + 1, resume["step"]
        best_val, best_epoch, bad = resume["best_val_loss"], resume["best_epoch"], resume["bad_epochs"]
        initial_val = resume["initial_val_loss"]
        best_key = tuple(resume["best_key"]) if resume.get("best_key") is not None else None
    else:
        initial_val = evaluate(model, phase, data, ctx.eval_batch_size, acc.autocast)
        _log(ctx, {"kind": "epoch", "phase": name, "epoch": -1, "step": 0, "train_loss": None, "val_loss": initial_val})

    stopped = bool(resume and resume.get("stopped"))
    train_loss = resume.get("train_loss") if resume else None
    done_epochs = start_epoch
    model.train()
    for epoch in range(start_epoch, phase.epochs if not stopped else start_epoch):
        t0 = time.time()
        torch.manual_seed(stable_int(ctx.seed, "dropout", name, epoch, rank))
        data.train.set_epoch(epoch)
        plan = batches(epoch)
        bar = _bar(ctx, len(plan), f"phase {name} epoch {epoch + 1}/{phase.epochs}")
        micro, losses, epoch_losses, step_rows = 0, [], [], []
        for i, idx in enumerate(plan):
            group_end = min(len(plan), (i // phase.grad_accum + 1) * phase.grad_accum)
            in_group = group_end - (i // phase.grad_accum) * phase.grad_accum
            sync = i + 1 == group_end
            batch = collate([data.train[j] for j in idx])
            with contextlib.nullcontext() if sync else acc.no_sync(objective):
                labels = batch.get("labels")
                loss = objective(batch["inputs"].to(acc.device), batch["report"],
                                 labels.to(acc.device) if labels is not None else None)
                if not torch.isfinite(loss):
                    raise TrainingError(f"phase {name}, epoch {epoch + 1}, step {step + 1}: the loss is {float(loss)}; "
                                        "lower the learning rate or check the data")
                acc.backward(loss / in_group)
            losses.append(float(loss.detach()))
            micro += 1
            if not sync:
                continue
            factor = lr_factor(step, total, warmup, phase.min_lr_ratio)
            for g in optimizer.param_groups:
                g["lr"] = g["base_lr"] * factor
            grad_norm = float(acc.clip_grad_norm_(params, ctx.max_grad_norm)) if ctx.max_grad_norm else None
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step_loss = float(acc.reduce(torch.tensor(sum(losses) / len(losses), device=acc.device), "mean"))
            epoch_losses.append(step_loss)
            step += 1
            step_rows.append({"kind": "step", "phase": name, "epoch": epoch, "step": step, "loss": step_loss,
                              "lr": phase.lr * factor, "grad_norm": grad_norm, "time": round(time.time(), 3)})
            if bar is not None:
                bar.update(micro)
                bar.set_postfix(loss=f"{step_loss:.4f}")
            micro, losses = 0, []
        if bar is not None:
            bar.close()
        train_loss = sum(epoch_losses) / len(epoch_losses) if epoch_losses else None
        val = evaluate(model, phase, data, ctx.eval_batch_size, acc.autocast)
        grounding = None
        if by_grounding:
            with acc.autocast():
                grounding = grounding_score(model, data.val.records, data.val.source, data.inputs, ctx.eval_batch_size)
            key = (grounding["score"] if grounding["score"] is not None else -1.0, -val if val is not None else 0.0)
            improved = best_key is None or key > best_key
            if improved:
                best_key = key
        else:
            improved = val is not None and (best_val is None or val < best_val)
        if improved:
            best_val, best_epoch, bad = val, epoch, 0
            best = {k: v.detach().cpu().clone() for k, v in model.trainable_state_dict().items()}
        elif val is not None:
            bad += 1
        stopped = phase.patience is not None and val is not None and bad >= phase.patience
        _log(ctx, *step_rows, {"kind": "epoch", "phase": name, "epoch": epoch, "step": step, "train_loss": train_loss,
                               "val_loss": val, "best_val_loss": best_val, "val_grounding": grounding,
                               "seconds": round(time.time() - t0, 3)})
        if ctx.progress and ctx.main:
            from tqdm.auto import tqdm

            tqdm.write(f"phase {name} epoch {epoch + 1}/{phase.epochs}: train loss {_fmt(train_loss)}, "
                       f"val loss {_fmt(val)} (best {_fmt(best_val)})"
                       + (f", val grounding {_fmt(grounding['score'])}" if grounding else "")
                       + f", {time.time() - t0:.1f} s" + (", early stop" if stopped else ""))
        info = {"phase": name, "epoch": epoch, "step": step, "best_val_loss": best_val, "best_epoch": best_epoch,
                "bad_epochs": bad, "initial_val_loss": initial_val, "stopped": stopped, "train_loss": train_loss,
                "best_key": list(best_key) if best_key is not None else None}
        if ctx.main:
            save_state(ctx.state_dir, info, model.trainable_state_dict(), best, optimizer)
        acc.wait_for_everyone()
        done_epochs = epoch + 1
        if ctx.on_epoch_end is not None:
            ctx.on_epoch_end(name, epoch, info)
        if stopped:
            break

    if best is not None:
        model.load_trainable_state_dict(best)
    model.eval()
    digests = rank_digests(acc, model)
    if len(set(digests)) > 1:
        raise TrainingError(f"phase {name}: the {world} processes ended with different weights ({digests})")
    acc.free_memory()
    return PhaseResult(
        name=name, best_val_loss=best_val, best_epoch=best_epoch, initial_val_loss=initial_val,
        epochs_run=done_epochs, steps=step, stopped_early=stopped and done_epochs < phase.epochs,
        final_train_loss=train_loss, trainable_parameters=sum(p.numel() for p in params), rank_digests=digests,
        best_grounding=best_key[0] if best_key is not None and best_key[0] >= 0 else None,
    )


def rank_digests(acc, model: nn.Module) -> list[str]:
    """Digest of the trainable weights in every process (gathered), to prove the replicas agree."""
    digest = tensors_digest(model.trainable_state_dict())
    if acc.num_processes == 1:
        return [digest]
    code = torch.tensor([int(digest[i:i + 8], 16) for i in range(0, 32, 8)], dtype=torch.int64, device=acc.device)
    gathered = acc.gather(code[None]).cpu()  # (world, 4)
    return ["".join(f"{int(v):08x}" for v in row) for row in gathered]


def _log(ctx: LoopContext, *rows: dict) -> None:
    """Append metric rows (main process). Step rows are buffered and written with their epoch's row: one
    fsync per epoch, and rows after the last resume state are dropped on resume anyway."""
    if ctx.main:
        now = round(time.time(), 3)
        append_jsonl_rows(ctx.metrics_path, [{**r, "time": r.get("time", now)} for r in rows])


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _bar(ctx: LoopContext, total: int, desc: str):
    if not (ctx.progress and ctx.main):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True)
