//! Batched tokenization into the padded `input_ids` / `attention_mask` matrices text encoders take.
//!
//! A [`TextTokenizer`] is a `tokenizer.json` (Hugging Face tokenizers format) plus the options
//! that say how a batch is laid out. The [`Preset`]s reproduce what diffusers feeds each text
//! encoder: `tokenizer(prompts, padding="max_length", max_length=L, truncation=True)`. With
//! truncation, the special tokens survive: the text is cut to `L - n_special` tokens first, so a
//! CLIP row always ends in `<|endoftext|>` at position 76 and a T5 row keeps its `</s>`.

use std::path::Path;
use std::str::FromStr;

use rayon::prelude::*;
use tokenizers::{
    AddedToken, PostProcessor, Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy,
};

use crate::error::{Error, Result};

/// How rows shorter than the batch width are filled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// Every row is `max_length` wide (diffusers' `padding="max_length"`).
    MaxLength,
    /// Rows are as wide as the longest encoded text of the batch.
    Longest,
}

impl FromStr for Padding {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "max_length" => Ok(Padding::MaxLength),
            "longest" => Ok(Padding::Longest),
            other => Err(Error::InvalidInput(format!(
                "padding must be \"max_length\" or \"longest\", not {other:?}"
            ))),
        }
    }
}

impl Padding {
    pub fn name(self) -> &'static str {
        match self {
            Padding::MaxLength => "max_length",
            Padding::Longest => "longest",
        }
    }
}

/// Batch layout of a tokenizer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Width of `max_length` padding and the truncation limit (special tokens included).
    pub max_length: Option<usize>,
    pub pad_id: u32,
    pub padding: Padding,
    pub truncation: bool,
    pub add_special_tokens: bool,
}

/// The text encoders of the diffusion families, as diffusers tokenizes for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// OpenAI CLIP ViT-L/14 (SD 1.x, SDXL `tokenizer`, FLUX, SD3): 77 tokens, padded with
    /// `<|endoftext|>`.
    ClipL,
    /// OpenCLIP ViT-bigG/14 (SDXL `tokenizer_2`, SD3): 77 tokens, padded with `!` (id 0).
    OpenClipBigG,
    /// T5 v1.1 XXL (FLUX.1-dev, SD3): `</s>` appended, padded with `<pad>`, 512 tokens.
    T5,
    /// T5 at 256 tokens (FLUX.1-schnell).
    T5_256,
}

impl Preset {
    pub const ALL: [Preset; 4] = [
        Preset::ClipL,
        Preset::OpenClipBigG,
        Preset::T5,
        Preset::T5_256,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Preset::ClipL => "clip-l",
            Preset::OpenClipBigG => "openclip-bigg",
            Preset::T5 => "t5",
            Preset::T5_256 => "t5-256",
        }
    }

    pub fn max_length(self) -> usize {
        match self {
            Preset::ClipL | Preset::OpenClipBigG => 77,
            Preset::T5 => 512,
            Preset::T5_256 => 256,
        }
    }

    /// The padding token, looked up in the vocabulary (49407, 0 and 0 for the real ones).
    pub fn pad_token(self) -> &'static str {
        match self {
            Preset::ClipL => "<|endoftext|>",
            Preset::OpenClipBigG => "!",
            Preset::T5 | Preset::T5_256 => "<pad>",
        }
    }

    /// Whether the padding token is an ordinary vocabulary entry that the transformers tokenizer
    /// nevertheless registers as a special token (SDXL's `tokenizer_2` declares `pad_token="!"`).
    /// A special token is matched before normalization and splits the text around it, so a `!`
    /// in a prompt becomes id 0 instead of the BPE token `!</w>`; the preset reproduces that.
    pub fn pad_is_special(self) -> bool {
        matches!(self, Preset::OpenClipBigG)
    }

    /// Tokens the vocabulary must hold for the preset to make sense.
    fn required_tokens(self) -> &'static [&'static str] {
        match self {
            Preset::ClipL | Preset::OpenClipBigG => &["<|startoftext|>", "<|endoftext|>"],
            Preset::T5 | Preset::T5_256 => &["</s>"],
        }
    }
}

impl FromStr for Preset {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Preset::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Preset::ALL.iter().map(|p| p.name()).collect();
                Error::InvalidInput(format!(
                    "unknown tokenizer preset {s:?}; known: {}",
                    names.join(", ")
                ))
            })
    }
}

/// Row-major `[batch_size, seq_len]` token ids and attention mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    pub input_ids: Vec<i64>,
    pub attention_mask: Vec<i64>,
    pub batch_size: usize,
    pub seq_len: usize,
}

/// A loaded `tokenizer.json` with its batch layout.
pub struct TextTokenizer {
    inner: Tokenizer,
    options: EncodeOptions,
    preset: Option<Preset>,
    /// Special tokens the post-processor adds to one text.
    n_special: usize,
}

/// Below this many texts a batch is encoded on the calling thread: rayon's fan-out costs more.
const PARALLEL_MIN_TEXTS: usize = 8;

fn load(path: &Path) -> Result<Tokenizer> {
    if !path.is_file() {
        return Err(Error::Io(format!(
            "no tokenizer file at {}",
            path.display()
        )));
    }
    Tokenizer::from_file(path)
        .map_err(|e| Error::Tokenizer(format!("cannot load {}: {e}", path.display())))
}

impl TextTokenizer {
    /// Wrap a tokenizer with explicit options. Padding and truncation stored in the tokenizer
    /// itself are replaced by `options`.
    pub fn new(
        mut inner: Tokenizer,
        options: EncodeOptions,
        preset: Option<Preset>,
    ) -> Result<Self> {
        let n_special = inner
            .get_post_processor()
            .map_or(0, |p| p.added_tokens(false));
        let vocab_size = inner.get_vocab_size(true);
        if options.pad_id as usize >= vocab_size {
            return Err(Error::InvalidInput(format!(
                "pad_id {} is outside the vocabulary of {vocab_size} tokens",
                options.pad_id
            )));
        }
        match options.max_length {
            Some(0) => return Err(Error::InvalidInput("max_length must be positive".into())),
            Some(len) if options.truncation && len <= n_special => {
                return Err(Error::InvalidInput(format!(
                    "max_length {len} leaves no room for text next to the {n_special} special tokens"
                )))
            }
            None if options.padding == Padding::MaxLength || options.truncation => {
                return Err(Error::InvalidInput(
                    "max_length is required for padding=\"max_length\" or truncation".into(),
                ))
            }
            _ => {}
        }
        let truncation = match (options.truncation, options.max_length) {
            (true, Some(max_length)) => Some(TruncationParams {
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }),
            _ => None,
        };
        inner
            .with_truncation(truncation)
            .map_err(|e| Error::Tokenizer(format!("cannot set truncation: {e}")))?;
        inner.with_padding(None);
        Ok(TextTokenizer {
            inner,
            options,
            preset,
            n_special,
        })
    }

    /// Load `tokenizer.json`. Unset options come from the file: `max_length` from its truncation
    /// or fixed padding length; `pad_id` from its padding, else the `<pad>` token, else 0.
    pub fn from_file(
        path: &Path,
        max_length: Option<usize>,
        pad_id: Option<u32>,
        padding: Padding,
        truncation: bool,
        add_special_tokens: bool,
    ) -> Result<Self> {
        let inner = load(path)?;
        let file_max = inner.get_truncation().map(|t| t.max_length).or_else(|| {
            inner.get_padding().and_then(|p| match p.strategy {
                tokenizers::PaddingStrategy::Fixed(n) => Some(n),
                tokenizers::PaddingStrategy::BatchLongest => None,
            })
        });
        let pad_id = pad_id
            .or_else(|| inner.get_padding().map(|p| p.pad_id))
            .or_else(|| inner.token_to_id("<pad>"))
            .unwrap_or(0);
        let options = EncodeOptions {
            max_length: max_length.or(file_max),
            pad_id,
            padding,
            truncation,
            add_special_tokens,
        };
        TextTokenizer::new(inner, options, None)
    }

    /// Load `tokenizer.json` with a preset's layout (max_length padding, truncation, specials).
    /// `max_length` overrides the preset's row width (small test engines use shorter T5 rows).
    pub fn from_preset(preset: Preset, path: &Path, max_length: Option<usize>) -> Result<Self> {
        let mut inner = load(path)?;
        for token in preset.required_tokens() {
            if inner.token_to_id(token).is_none() {
                return Err(Error::Tokenizer(format!(
                    "{} has no {token:?} token, so it is not a {} tokenizer",
                    path.display(),
                    preset.name()
                )));
            }
        }
        let pad_id = inner.token_to_id(preset.pad_token()).ok_or_else(|| {
            Error::Tokenizer(format!(
                "{} has no padding token {:?} for preset {}",
                path.display(),
                preset.pad_token(),
                preset.name()
            ))
        })?;
        if preset.pad_is_special() {
            inner.add_special_tokens(&[AddedToken::from(preset.pad_token(), true)]);
        }
        let options = EncodeOptions {
            max_length: Some(max_length.unwrap_or(preset.max_length())),
            pad_id,
            padding: Padding::MaxLength,
            truncation: true,
            add_special_tokens: true,
        };
        TextTokenizer::new(inner, options, Some(preset))
    }

    pub fn options(&self) -> &EncodeOptions {
        &self.options
    }

    pub fn preset(&self) -> Option<Preset> {
        self.preset
    }

    /// Vocabulary size including added (special) tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    fn encode_one(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.inner
            .encode_fast(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::Tokenizer(format!("cannot encode {text:?}: {e}")))
    }

    /// Encode `texts` into a `[len(texts), L]` batch. `add_special_tokens` and `padding` override
    /// the tokenizer's options for this call. Without truncation, `max_length` padding widens
    /// to the longest row when a text is longer.
    pub fn encode_batch<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        add_special_tokens: Option<bool>,
        padding: Option<Padding>,
    ) -> Result<TokenBatch> {
        let specials = add_special_tokens.unwrap_or(self.options.add_special_tokens);
        let padding = padding.unwrap_or(self.options.padding);
        let rows: Vec<Vec<u32>> = if texts.len() >= PARALLEL_MIN_TEXTS {
            texts
                .par_iter()
                .map(|t| self.encode_one(t.as_ref(), specials))
                .collect::<Result<_>>()?
        } else {
            texts
                .iter()
                .map(|t| self.encode_one(t.as_ref(), specials))
                .collect::<Result<_>>()?
        };
        let longest = rows.iter().map(Vec::len).max().unwrap_or(0);
        let seq_len = match (padding, self.options.max_length) {
            (Padding::MaxLength, Some(max_length)) => max_length.max(longest),
            _ => longest,
        };
        Ok(fill_batch(&rows, seq_len, self.options.pad_id))
    }

    /// Special tokens added around one text (2 for CLIP, 1 for T5).
    pub fn n_special_tokens(&self) -> usize {
        self.n_special
    }
}

/// Lay ragged rows out in a padded row-major matrix with its attention mask.
fn fill_batch(rows: &[Vec<u32>], seq_len: usize, pad_id: u32) -> TokenBatch {
    let batch_size = rows.len();
    let mut input_ids = vec![i64::from(pad_id); batch_size * seq_len];
    let mut attention_mask = vec![0i64; batch_size * seq_len];
    if seq_len > 0 {
        let fill = |((ids, mask), row): ((&mut [i64], &mut [i64]), &Vec<u32>)| {
            for (slot, &id) in ids.iter_mut().zip(row) {
                *slot = i64::from(id);
            }
            mask[..row.len()].fill(1);
        };
        let ids = input_ids.chunks_mut(seq_len);
        let masks = attention_mask.chunks_mut(seq_len);
        ids.zip(masks).zip(rows).for_each(fill);
    }
    TokenBatch {
        input_ids,
        attention_mask,
        batch_size,
        seq_len,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::{clip_tokenizer, CLIP_BOS, CLIP_EOS};
    use std::collections::HashMap;

    /// Toy CLIP vocabulary: "!" is id 0 (as in CLIP), single letters, their word-final forms.
    fn toy_clip() -> Tokenizer {
        let mut tokens = vec!["!".to_string()];
        tokens.extend("abc".chars().map(String::from));
        tokens.extend("abc".chars().map(|c| format!("{c}</w>")));
        tokens.extend([CLIP_BOS, CLIP_EOS].map(String::from));
        let vocab: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        clip_tokenizer(vocab, vec![]).unwrap()
    }

    fn options(max_length: usize, padding: Padding, truncation: bool) -> EncodeOptions {
        EncodeOptions {
            max_length: Some(max_length),
            pad_id: 8,
            padding,
            truncation,
            add_special_tokens: true,
        }
    }

    fn clip(opts: EncodeOptions) -> TextTokenizer {
        TextTokenizer::new(toy_clip(), opts, None).unwrap()
    }

    const BOS: i64 = 7;
    const EOS: i64 = 8;

    #[test]
    fn max_length_padding_and_mask() {
        let tok = clip(options(6, Padding::MaxLength, true));
        let batch = tok.encode_batch(&["a b", ""], None, None).unwrap();
        assert_eq!((batch.batch_size, batch.seq_len), (2, 6));
        assert_eq!(
            batch.input_ids,
            [BOS, 4, 5, EOS, 8, 8, BOS, EOS, 8, 8, 8, 8]
        );
        assert_eq!(batch.attention_mask, [1, 1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0]);
    }

    #[test]
    fn truncation_keeps_eos_last() {
        let tok = clip(options(4, Padding::MaxLength, true));
        let batch = tok.encode_batch(&["a b c a b"], None, None).unwrap();
        assert_eq!(batch.input_ids, [BOS, 4, 5, EOS]);
        assert_eq!(batch.attention_mask, [1; 4]);
    }

    #[test]
    fn without_truncation_rows_widen_to_the_longest() {
        let tok = clip(options(4, Padding::MaxLength, false));
        let batch = tok.encode_batch(&["a b c", "a"], None, None).unwrap();
        assert_eq!(batch.seq_len, 5);
        assert_eq!(&batch.input_ids[5..], [BOS, 4, EOS, 8, 8]);
    }

    #[test]
    fn longest_padding_and_no_special_tokens() {
        let tok = clip(options(77, Padding::Longest, true));
        let batch = tok.encode_batch(&["a", "b c"], Some(false), None).unwrap();
        assert_eq!(batch.seq_len, 2);
        assert_eq!(batch.input_ids, [4, 8, 5, 6]);
        assert_eq!(batch.attention_mask, [1, 0, 1, 1]);
        let per_call = tok
            .encode_batch(&["a"], None, Some(Padding::MaxLength))
            .unwrap();
        assert_eq!(per_call.seq_len, 77);
    }

    #[test]
    fn parallel_batches_equal_sequential_rows() {
        let tok = clip(options(10, Padding::MaxLength, true));
        let texts: Vec<String> = (0..50).map(|i| "a b c ".repeat(i % 5)).collect();
        let batch = tok.encode_batch(&texts, None, None).unwrap();
        for (i, text) in texts.iter().enumerate() {
            let one = tok.encode_batch(&[text], None, None).unwrap();
            assert_eq!(batch.input_ids[i * 10..(i + 1) * 10], one.input_ids[..]);
        }
    }

    #[test]
    fn empty_batch_has_zero_rows() {
        let tok = clip(options(5, Padding::MaxLength, true));
        let batch = tok.encode_batch::<&str>(&[], None, None).unwrap();
        assert_eq!((batch.batch_size, batch.seq_len), (0, 5));
        assert!(batch.input_ids.is_empty());
    }

    #[test]
    fn bad_options_are_invalid_input() {
        let mut bad_pad = options(5, Padding::MaxLength, true);
        bad_pad.pad_id = 1000;
        let too_short = options(2, Padding::MaxLength, true);
        let mut no_length = options(5, Padding::MaxLength, true);
        no_length.max_length = None;
        for opts in [
            bad_pad,
            too_short,
            no_length,
            options(0, Padding::Longest, false),
        ] {
            let err = TextTokenizer::new(toy_clip(), opts, None).err().unwrap();
            assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        }
        assert!(matches!(
            "middle".parse::<Padding>(),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            "clip-h".parse::<Preset>(),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn presets_from_files() {
        let dir = std::env::temp_dir().join(format!("npc-tokenize-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tokenizer.json");
        toy_clip().save(&path, false).unwrap();
        let l = TextTokenizer::from_preset(Preset::ClipL, &path, None).unwrap();
        let g = TextTokenizer::from_preset("openclip-bigg".parse().unwrap(), &path, None).unwrap();
        assert_eq!((l.options().pad_id, g.options().pad_id), (8, 0));
        let rows = g.encode_batch(&["a"], None, None).unwrap();
        assert_eq!(&rows.input_ids[..4], [BOS, 4, EOS, 0]);
        assert_eq!(rows.seq_len, 77);
        // For bigG the pad token "!" is special: it splits the text and keeps its own id.
        let split = g.encode_batch(&["a!b"], None, None).unwrap();
        assert_eq!(&split.input_ids[..5], [BOS, 4, 0, 5, EOS]);
        let plain = l.encode_batch(&["a!b"], None, None).unwrap();
        assert_ne!(&plain.input_ids[..5], [BOS, 4, 0, 5, EOS]);
        let short = TextTokenizer::from_preset(Preset::OpenClipBigG, &path, Some(5)).unwrap();
        let rows = short.encode_batch(&["a!b c a"], None, None).unwrap();
        assert_eq!(rows.input_ids, [BOS, 4, 0, 5, EOS]);
        assert!(matches!(
            TextTokenizer::from_preset(Preset::ClipL, &path, Some(1)),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            TextTokenizer::from_preset(Preset::T5, &path, None),
            Err(Error::Tokenizer(_))
        ));
        assert!(matches!(
            TextTokenizer::from_preset(Preset::ClipL, &dir.join("missing.json"), None),
            Err(Error::Io(_))
        ));
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(
            TextTokenizer::from_file(&path, Some(5), None, Padding::MaxLength, true, true),
            Err(Error::Tokenizer(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        /// Whatever the text: BOS first, one run of real tokens ending in EOS, then padding.
        #[test]
        fn rows_are_framed_and_padded(texts in proptest::collection::vec(".{0,40}", 1..12)) {
            let tok = clip(options(8, Padding::MaxLength, true));
            let batch = tok.encode_batch(&texts, None, None).unwrap();
            proptest::prop_assert_eq!(batch.seq_len, 8);
            for (ids, mask) in batch.input_ids.chunks(8).zip(batch.attention_mask.chunks(8)) {
                let real = mask.iter().take_while(|&&m| m == 1).count();
                proptest::prop_assert!(real >= 2);
                proptest::prop_assert!(mask[real..].iter().all(|&m| m == 0));
                proptest::prop_assert_eq!(ids[0], BOS);
                proptest::prop_assert_eq!(ids[real - 1], EOS);
                proptest::prop_assert!(ids[real..].iter().all(|&id| id == 8));
                proptest::prop_assert!(ids.iter().all(|&id| (0..9).contains(&id)));
            }
        }
    }
}
