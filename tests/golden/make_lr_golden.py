#!/usr/bin/python3
"""The learning-rate multipliers tests/unit/test_trainer.cpp checks the step schedule against.

Runs PyTorch's own MultiStepLR as AST's src/traintest.py builds it
(milestones = list(range(lrscheduler_start, 1000, lrscheduler_step)), gamma =
lrscheduler_decay, scheduler.step() after each 1-based epoch) and prints the lr used during
each epoch, as a multiple of the base lr, for AST's Speech Commands V2 and AudioSet settings.
Needs python3-torch. Usage: python3 tests/golden/make_lr_golden.py
"""
import torch

SETTINGS = {  # name: (lrscheduler_start, lrscheduler_step, lrscheduler_decay, epochs)
    "speechcommands": (5, 1, 0.85, 10),
    "audioset-balanced": (10, 5, 0.5, 21),
    "audioset-full": (2, 1, 0.5, 5),
}

for name, (start, every, decay, epochs) in SETTINGS.items():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, list(range(start, 1000, every)), gamma=decay)
    used = []
    for epoch in range(1, epochs + 1):
        used.append(opt.param_groups[0]["lr"])  # the lr of this epoch's steps
        opt.step()
        sched.step()
    print(name, ", ".join(f"{v:.12g}" for v in used))
