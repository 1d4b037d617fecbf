"""What a model family hands the generic exporter: contracts, loaders, inputs and manifest parts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from npc_rt_export.contracts import ComponentContract
from npc_rt_export.tokenizer_files import TokenizerEntry


@dataclass(frozen=True)
class ExportPlan:
    """A family's export, resolved against one source folder and one set of options.

    ``contracts`` are in export order. ``load[name]()`` returns the wrapped torch module whose
    positional inputs and single output match the contract; ``sample_inputs(contract, sizes, gen)``
    builds well-formed inputs at given dynamic sizes; ``write_tokenizers(out_dir)`` converts the
    tokenizers and returns their manifest entries.
    """

    family: str
    contracts: Mapping[str, ComponentContract]
    load: Mapping[str, Callable[[], nn.Module]]
    sample_inputs: Callable[
        [ComponentContract, Mapping[str, int], torch.Generator], tuple[torch.Tensor, ...]
    ]
    write_tokenizers: Callable[[Path], list[TokenizerEntry]]
    scheduler_config: Path
    pipeline: dict
    scoring_encoder: dict
