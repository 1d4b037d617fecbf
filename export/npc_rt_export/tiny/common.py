"""Pieces every tiny pipeline builder shares: the tiny VAE, tokenizers from the real CLIP
vocabulary / the in-process T5 model, and saving with the source vocabulary files that hub
repositories carry (transformers 5 saves only tokenizer.json; the exporter converts the sources)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path


def tiny_vae(
    channels: tuple[int, int, int, int],
    *,
    latent_channels: int,
    scaling_factor: float,
    shift_factor: float | None = None,
    norm_groups: int = 4,
    sample_size: int = 64,
):
    """Four blocks keep the real 8x downsampling (vae_scale_factor 8). FLUX and SD3 VAEs have a
    shift and no quant convs; SDXL's has quant convs and no shift."""
    from diffusers import AutoencoderKL

    shifted = shift_factor is not None
    extra = (
        {"shift_factor": shift_factor, "use_quant_conv": False, "use_post_quant_conv": False}
        if shifted
        else {}
    )
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=channels,
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=norm_groups,
        sample_size=sample_size,
        scaling_factor=scaling_factor,
        **extra,
    )


def clip_tokenizer(vocab_json: Path, pad_token: str):
    """CLIP BPE over the real vocabulary; pad ``<|endoftext|>`` (CLIP-L) or ``!`` (bigG/CLIP-G)."""
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(
        vocab_json.parent, model_max_length=77, pad_token=pad_token
    )


def t5_tokenizer(spiece: Path):
    from transformers import T5TokenizerFast

    return T5TokenizerFast.from_pretrained(spiece.parent, extra_ids=0, model_max_length=512)


def save_with_sources(pipe, out_dir: Path, sources: Iterable[tuple[Path, str]]) -> Path:
    """``save_pretrained`` and copy each (source file, tokenizer folder) next to tokenizer.json."""
    pipe.save_pretrained(out_dir)
    for source, folder in sources:
        shutil.copyfile(source, Path(out_dir) / folder / source.name)
    return Path(out_dir)
