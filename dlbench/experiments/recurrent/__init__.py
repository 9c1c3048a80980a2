"""Recurrent nets: batch norm per time step against layer norm in an Elman RNN on sequences of varying length;
claim N13.

What the claim measures, its negative control, its nuisance grid and its threshold are in CLAIMS below (and in
`dlbench claims --list`); the nets, their training and the checks are in `claims`. N13 is a normalization claim
(its id is in the norm family) with an experiment of its own because its model and data are its own: an RNN
(`dlbench.nn.rnn`) on the adding task instead of an MLP on a classification set, and a verdict that needs 48
seeds of 1500 Adam steps per norm, training set and hidden size, which costs more CPU than every other
normalization claim together. `dlbench norm` answers N1-N12 within a minute; `dlbench recurrent` answers N13.
"""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.experiments.base import Part, option
from dlbench.protocol import Axis, CheckSpec, ClaimSpec

NAME = "recurrent"
HELP = "Recurrent nets: batch norm per time step against layer norm on sequences of varying length (claim N13)."

CLAIMS = {
    "N13": ClaimSpec(
        "N13", "batch norm does not suit recurrent nets; layer norm does",
        measures="an Elman tanh RNN (torch.nn.RNN's cell, one layer) on the adding task, sequences of lengths uniform "
                 "in shortest .. 12 padded to 12 steps, batch 16, Adam: per seed log10(test mse with batch norm per "
                 "time step / with layer norm inside the cell) after --steps (1500) steps, 48 verdict seeds (16 at "
                 "--quick), each norm and training set at the learning rate of {0.003, 0.01} whose 8 tuning seeds "
                 "(apart from the verdict's) ended lowest on validation sequences drawn apart from the test set "
                 "(--quick: 0.01 alone; 0.001 was never the best of either norm on any set in the runs that had it). "
                 "At 300 steps layer norm had not yet learned the task (test mse near the 1/6 of always answering 1) "
                 "and the ratio measured batch norm's head start. Step t's batch statistics are over the sequences "
                 "still running at t; the evidence counts them at the last 3 steps and, where they differ, gives the "
                 "ratio on the test sequences that reach those steps and on the shortest ones. Test lengths stay "
                 "within the training lengths: Ba et al.'s case of test sequences longer than any seen in training is "
                 "not measured. Two parts, both required: the ratio on varying lengths, and per seed that ratio minus "
                 "the fixed-length one (the ragged batch must be what costs batch norm, not batch norm in a recurrent "
                 "net as such). Batch 16, not 32: at 32 the fixed-length control itself put batch norm 0.09-0.41 "
                 "decades behind (16 seeds, base seeds 0, 1000, 2000), so it could not tell the ragged batch from "
                 "batch norm as such; at 16 it is -0.10 to +0.20 over six base seeds, inconclusive everywhere. Both "
                 "choices favour the ragged part, and were made after those runs. The grid's milder point is shortest "
                 "10, also chosen after them: at shortest 6 the ragged part measured 0.24-0.46 decades with interval "
                 "bounds 0.03-0.25 at 48 seeds, so the base seed decided the verdict (conditional, conditional, "
                 "supported: inconclusive across base seeds); where between 6 and 10 it stops holding is not resolved",
        control="every sequence 12 steps long: every step's statistics are over the whole batch (the ragged "
                "batch removed, and with it the short, easier sequences: a control of the same varying-length "
                "data in batches bucketed by length is not measured); one fixed-length set, shared by both grid "
                "points, so their controls are one finding and their ragged parts are correlated",
        grid=(Axis("hidden", (32, 16), quick=(16,)), Axis("shortest", (2, 10), quick=(10,))),
        threshold="0.1 decades (a test mse 26 % higher) either way, for both parts",
        literature="Ba, Kiros & Hinton 2016 (Layer normalization, section 3.1 and 6.3); Cooijmans, Ballas, "
                   "Laurent, Gulcehre & Courville 2017 (Recurrent batch normalization: statistics per time step); "
                   "Laurent, Pereyra, Brakel, Zhang & Bengio 2016 (batch norm on the recurrent term does not "
                   "help); Hochreiter & Schmidhuber 1997 (the adding task)"),
}

CHECKS = {
    "N13.layer-independence": CheckSpec(
        "N13.layer-independence", "an RNN with layer norm inside the cell treats each sequence alone: a "
        "sequence's output does not change when the rest of its batch (and their lengths) is replaced (2 layers, "
        "float32 and float64)", "exact", "N13"),
    "N13.batch-control": CheckSpec(
        "N13.batch-control", "... while batch norm per time step changes it (the check above is not blind)",
        "a relative change of at least 1e-3", "N13"),
    "N13.padding": CheckSpec(
        "N13.padding", "padded steps change nothing: noise in them leaves every output and every gradient of an "
        "RNN with layer or batch norm as it was (their statistics leave padded steps out)", "exact", "N13"),
}

SECTIONS = {
    "n13.rnn": "N13 · test mse of an RNN with batch or layer norm, varying and fixed lengths",
    "n13.statistics": "N13 · sequences behind each time step's batch statistics",
    "n13.checks": "N13 · a sequence's output with the rest of the batch replaced, and with noise in padded steps",
}


@dataclass
class Options:
    steps: int = option(1500, help="Adam steps of every net (at 300, layer norm had not yet learned the task).",
                        min=100, max=100_000)


SUITE_OPTIONS: dict = {}


def memory(opts: Options, seeds: int) -> int:
    """Bytes the run needs at its peak, from the options alone: the replicas of one training pass (3 sets x the
    verdict seeds, or 3 sets x 2 learning rates x 8 tuning seeds) x (a training batch of 16 or an evaluation
    chunk of 128) x 12 steps x 32 units, ~16 float32 arrays, and their histograms of running sequences per
    step (12 x 17, int64), with the data sets. None of it grows with --steps: what a step leaves behind is
    reduced as it streams."""
    from dlbench.experiments.recurrent.claims import BATCH, EVAL_CHUNK, LONGEST, N13_SIZE, TEST_SIZE, TRAIN_SIZE

    replicas = 3 * max(N13_SIZE[False][0], seeds)
    per_replica = EVAL_CHUNK * LONGEST * 32 * 16 * 4 + LONGEST * (BATCH + 1) * 8
    data = 6 * (TRAIN_SIZE + TEST_SIZE) * LONGEST * 3 * 8
    return int(replicas * per_replica + data + 64 * 2**20)


def parts(opts: Options) -> list[Part]:
    """One part per hidden size of N13's grid, so two workers share it; the first also runs the checks."""
    from dlbench.experiments.recurrent.claims import parts_n13

    return [Part(name, fn, heavy=cost) for name, fn, cost in parts_n13()]


def plot(results, path) -> None:
    """N13's test mse per norm on varying and fixed lengths at each grid point, and the sequences behind each time
    step's batch statistics."""
    from dlbench.experiments.recurrent.figure import draw

    draw(results, path)
