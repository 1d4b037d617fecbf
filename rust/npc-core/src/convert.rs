//! Converters that turn the vocabulary files diffusion checkpoints ship into a `tokenizer.json`
//! (Hugging Face tokenizers format) that [`crate::tokenize`] loads.
//!
//! The pipelines reproduce the tokenizers the diffusers pipelines run under transformers 5:
//!
//! - CLIP (`vocab.json` + `merges.txt`): transformers' `CLIPTokenizer`, i.e. NFC, every run of
//!   whitespace to one space, lowercase; CLIP's split regex; byte-level BPE with the `</w>`
//!   end-of-word suffix; `<|startoftext|> … <|endoftext|>` around each text.
//! - T5 (`spiece.model`): transformers' `T5TokenizerFast`, i.e. the model's own precompiled
//!   normalizer, whitespace split + `▁` metaspace, a unigram model with the model's scores, `</s>`
//!   appended, and the `<extra_id_N>` sentinel tokens after the pieces.

mod spm_proto;

use std::collections::HashMap;
use std::path::Path;

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::replace::ReplacePattern;
use tokenizers::normalizers::{
    Lowercase, Precompiled, Replace, Sequence as NormalizerSequence, NFC,
};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::processors::roberta::RobertaProcessing;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

use crate::error::{Error, Result};

pub use spm_proto::{parse_model as parse_sentencepiece_model, ModelType, PieceType, SpmModel};

/// CLIP's beginning-of-text token.
pub const CLIP_BOS: &str = "<|startoftext|>";
/// CLIP's end-of-text token; also its unknown token and (for CLIP-L) its padding token.
pub const CLIP_EOS: &str = "<|endoftext|>";
/// How CLIP splits normalized text into words before BPE (OpenAI's pattern, as transformers has it).
pub const CLIP_SPLIT_PATTERN: &str =
    r"<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+";
/// Sentinel tokens T5 tokenizers append after the sentencepiece pieces.
pub const T5_EXTRA_IDS: usize = 100;

fn tok_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Tokenizer(format!("{what}: {e}"))
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::Io(format!("cannot read {what} {}: {e}", path.display())))
}

/// Parse a `merges.txt`: an optional `#version` header, then one `left right` pair a line.
pub fn parse_merges(text: &str) -> Result<Vec<(String, String)>> {
    let mut merges = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if (index == 0 && line.starts_with("#version")) || line.is_empty() {
            continue;
        }
        let mut parts = line.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), None) if !a.is_empty() && !b.is_empty() => {
                merges.push((a.to_string(), b.to_string()))
            }
            _ => {
                return Err(Error::Tokenizer(format!(
                    "merges line {} is not two symbols separated by one space: {line:?}",
                    index + 1
                )))
            }
        }
    }
    Ok(merges)
}

/// Build CLIP's tokenizer from its vocabulary (token -> id) and merges (in rank order).
pub fn clip_tokenizer(
    vocab: HashMap<String, u32>,
    merges: Vec<(String, String)>,
) -> Result<Tokenizer> {
    let bos = *vocab
        .get(CLIP_BOS)
        .ok_or_else(|| Error::Tokenizer(format!("CLIP vocabulary has no {CLIP_BOS}")))?;
    let eos = *vocab
        .get(CLIP_EOS)
        .ok_or_else(|| Error::Tokenizer(format!("CLIP vocabulary has no {CLIP_EOS}")))?;
    for (a, b) in &merges {
        if !vocab.contains_key(&format!("{a}{b}")) {
            return Err(Error::Tokenizer(format!(
                "merge {a:?} + {b:?} produces a symbol missing from the vocabulary"
            )));
        }
    }
    let vocab: Vocab = vocab.into_iter().collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .unk_token(CLIP_EOS.to_string())
        .continuing_subword_prefix(String::new())
        .end_of_word_suffix("</w>".to_string())
        .fuse_unk(false)
        .build()
        .map_err(|e| tok_err("invalid CLIP BPE vocabulary", e))?;

    let normalizer = NormalizerSequence::new(vec![
        NFC.into(),
        Replace::new(ReplacePattern::Regex(r"\s+".into()), " ")
            .map_err(|e| tok_err("whitespace pattern", e))?
            .into(),
        Lowercase.into(),
    ]);
    let split = Split::new(
        SplitPattern::Regex(CLIP_SPLIT_PATTERN.into()),
        SplitDelimiterBehavior::Removed,
        true,
    )
    .map_err(|e| tok_err("CLIP split pattern", e))?;
    let pre_tokenizer =
        PreTokenizerSequence::new(vec![split.into(), ByteLevel::new(false, true, true).into()]);
    let post = RobertaProcessing::new((CLIP_EOS.to_string(), eos), (CLIP_BOS.to_string(), bos))
        .trim_offsets(false)
        .add_prefix_space(false);

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer
        .with_normalizer(Some(NormalizerWrapper::from(normalizer)))
        .with_pre_tokenizer(Some(PreTokenizerWrapper::from(pre_tokenizer)))
        .with_post_processor(Some(post))
        .with_decoder(Some(DecoderWrapper::from(ByteLevelDecoder::default())));
    tokenizer.add_special_tokens(&[
        AddedToken::from(CLIP_BOS, true),
        AddedToken::from(CLIP_EOS, true),
    ]);
    Ok(tokenizer)
}

/// Build CLIP's tokenizer from a `vocab.json` and a `merges.txt` file.
pub fn clip_tokenizer_from_files(vocab_json: &Path, merges_txt: &Path) -> Result<Tokenizer> {
    let vocab: HashMap<String, u32> = serde_json::from_str(&read_text(vocab_json, "vocabulary")?)
        .map_err(|e| {
        Error::Tokenizer(format!(
            "{} is not a JSON object of token -> id: {e}",
            vocab_json.display()
        ))
    })?;
    let merges = parse_merges(&read_text(merges_txt, "merges")?)
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", merges_txt.display())))?;
    clip_tokenizer(vocab, merges)
}

/// Options of the sentencepiece conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentencePieceOptions {
    /// How many `<extra_id_N>` sentinel tokens to add after the pieces (T5: 100).
    pub extra_ids: usize,
}

impl Default for SentencePieceOptions {
    fn default() -> Self {
        SentencePieceOptions {
            extra_ids: T5_EXTRA_IDS,
        }
    }
}

/// Build a T5-style tokenizer from a parsed sentencepiece unigram model.
pub fn sentencepiece_tokenizer(
    model: &SpmModel,
    options: &SentencePieceOptions,
) -> Result<Tokenizer> {
    if model.model_type != ModelType::Unigram {
        return Err(Error::Tokenizer(format!(
            "only unigram sentencepiece models are supported, this one is {:?}",
            model.model_type
        )));
    }
    let unk_id = model
        .pieces
        .iter()
        .position(|p| p.kind == PieceType::Unknown)
        .ok_or_else(|| Error::Tokenizer("sentencepiece model has no unknown piece".into()))?;
    let eos = usize::try_from(model.eos_id)
        .ok()
        .and_then(|id| model.pieces.get(id))
        .ok_or_else(|| {
            Error::Tokenizer(format!(
                "sentencepiece eos_id {} is not a piece",
                model.eos_id
            ))
        })?;
    let eos_token = eos.piece.clone();
    let eos_id = model.eos_id as u32;

    let vocab = model
        .pieces
        .iter()
        .map(|p| (p.piece.clone(), f64::from(p.score)))
        .collect();
    let unigram = Unigram::from(vocab, Some(unk_id), model.byte_fallback)
        .map_err(|e| tok_err("invalid unigram vocabulary", e))?;

    let mut pre_tokenizers: Vec<PreTokenizerWrapper> = Vec::new();
    // sentencepiece's remove_extra_whitespaces collapses and trims spaces; splitting on
    // whitespace before the metaspace gives the same pieces.
    if model.remove_extra_whitespaces {
        pre_tokenizers.push(WhitespaceSplit.into());
    }
    let prepend = if model.add_dummy_prefix {
        PrependScheme::Always
    } else {
        PrependScheme::Never
    };
    pre_tokenizers.push(Metaspace::new('▁', prepend, true).into());

    let post = TemplateProcessing::builder()
        .try_single(format!("$A:0 {eos_token}:0"))
        .and_then(|b| b.try_pair(format!("$A:0 {eos_token}:0 $B:0 {eos_token}:0")))
        .map_err(|e| tok_err("EOS template", e))?
        .special_tokens(vec![(eos_token.clone(), eos_id)])
        .build()
        .map_err(|e| tok_err("EOS template", e))?;

    let mut tokenizer = Tokenizer::new(unigram);
    if !model.precompiled_charsmap.is_empty() {
        let precompiled = Precompiled::from(&model.precompiled_charsmap)
            .map_err(|e| tok_err("invalid precompiled_charsmap", e))?;
        tokenizer.with_normalizer(Some(NormalizerWrapper::from(precompiled)));
    }
    tokenizer
        .with_pre_tokenizer(Some(PreTokenizerWrapper::from(PreTokenizerSequence::new(
            pre_tokenizers,
        ))))
        .with_post_processor(Some(post))
        .with_decoder(Some(DecoderWrapper::from(Metaspace::new(
            '▁', prepend, true,
        ))));

    // Control and unknown pieces are matched verbatim in the input, before normalization;
    // user-defined pieces likewise, but they are ordinary (not special) tokens.
    let special: Vec<AddedToken> = model
        .pieces
        .iter()
        .filter(|p| matches!(p.kind, PieceType::Control | PieceType::Unknown))
        .map(|p| AddedToken::from(p.piece.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&special);
    let user: Vec<AddedToken> = model
        .pieces
        .iter()
        .filter(|p| p.kind == PieceType::UserDefined)
        .map(|p| AddedToken::from(p.piece.clone(), false))
        .collect();
    tokenizer.add_tokens(&user);
    // T5 numbers its sentinels downwards: <extra_id_0> is the last id.
    let sentinels: Vec<AddedToken> = (0..options.extra_ids)
        .rev()
        .map(|i| AddedToken::from(format!("<extra_id_{i}>"), true))
        .collect();
    tokenizer.add_special_tokens(&sentinels);
    Ok(tokenizer)
}

/// Build a T5-style tokenizer from a `spiece.model` file.
pub fn sentencepiece_tokenizer_from_file(
    path: &Path,
    options: &SentencePieceOptions,
) -> Result<Tokenizer> {
    let bytes = std::fs::read(path).map_err(|e| {
        Error::Io(format!(
            "cannot read sentencepiece model {}: {e}",
            path.display()
        ))
    })?;
    let model = parse_sentencepiece_model(&bytes)
        .map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))?;
    sentencepiece_tokenizer(&model, options)
}

fn save(tokenizer: &Tokenizer, out_json: &Path) -> Result<()> {
    let json = tokenizer
        .to_string(false)
        .map_err(|e| tok_err("cannot serialize tokenizer", e))?;
    std::fs::write(out_json, json)
        .map_err(|e| Error::Io(format!("cannot write {}: {e}", out_json.display())))
}

/// Convert a CLIP `vocab.json` + `merges.txt` into `out_json`.
pub fn convert_clip_vocab(vocab_json: &Path, merges_txt: &Path, out_json: &Path) -> Result<()> {
    save(
        &clip_tokenizer_from_files(vocab_json, merges_txt)?,
        out_json,
    )
}

/// Convert a T5 `spiece.model` into `out_json`.
pub fn convert_sentencepiece(
    spiece_model: &Path,
    out_json: &Path,
    options: &SentencePieceOptions,
) -> Result<()> {
    save(
        &sentencepiece_tokenizer_from_file(spiece_model, options)?,
        out_json,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy CLIP vocabulary: a few letters, their end-of-word forms and merges for "cat"/"at".
    fn toy_clip() -> Tokenizer {
        let mut tokens: Vec<String> = "acdt".chars().map(String::from).collect();
        tokens.extend("acdt".chars().map(|c| format!("{c}</w>")));
        tokens.extend(["at</w>", "cat</w>", "!</w>", "!"].map(String::from));
        tokens.extend([CLIP_BOS, CLIP_EOS].map(String::from));
        let vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        let merges = parse_merges("#version: 0.2\na t</w>\nc at</w>\n").unwrap();
        clip_tokenizer(vocab, merges).unwrap()
    }

    fn tokens(tokenizer: &Tokenizer, text: &str, special: bool) -> Vec<String> {
        tokenizer
            .encode(text, special)
            .unwrap()
            .get_tokens()
            .to_vec()
    }

    #[test]
    fn clip_lowercases_collapses_whitespace_and_merges() {
        let tok = toy_clip();
        assert_eq!(
            tokens(&tok, "CAT \t\n at", true),
            [CLIP_BOS, "cat</w>", "at</w>", CLIP_EOS]
        );
        assert_eq!(tokens(&tok, "Cat!", false), ["cat</w>", "!</w>"]);
        assert_eq!(tokens(&tok, "", true), [CLIP_BOS, CLIP_EOS]);
    }

    #[test]
    fn clip_unknown_symbols_become_the_eos_token() {
        let tok = toy_clip();
        let ids = tok.encode_fast("zz", false).unwrap().get_ids().to_vec();
        let eos = tok.token_to_id(CLIP_EOS).unwrap();
        assert!(!ids.is_empty() && ids.iter().all(|&id| id == eos));
    }

    #[test]
    fn clip_round_trips_through_json() {
        let tok = toy_clip();
        let json = tok.to_string(false).unwrap();
        let back: Tokenizer = json.parse().unwrap();
        for text in ["a cat!", "", "DAD at CAT"] {
            assert_eq!(
                tok.encode_fast(text, true).unwrap().get_ids(),
                back.encode_fast(text, true).unwrap().get_ids()
            );
        }
    }

    #[test]
    fn clip_files_round_trip() {
        let dir = std::env::temp_dir().join(format!("npc-convert-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let vocab = dir.join("vocab.json");
        let merges = dir.join("merges.txt");
        let out = dir.join("tokenizer.json");
        std::fs::write(
            &vocab,
            r#"{"a":0,"t":1,"a</w>":2,"t</w>":3,"at</w>":4,"<|startoftext|>":5,"<|endoftext|>":6}"#,
        )
        .unwrap();
        std::fs::write(&merges, "#version: 0.2\na t</w>\n").unwrap();
        convert_clip_vocab(&vocab, &merges, &out).unwrap();
        let back = Tokenizer::from_file(&out).unwrap();
        assert_eq!(
            back.encode_fast("AT a", true).unwrap().get_ids(),
            [5, 4, 2, 6]
        );

        std::fs::write(&merges, "#version: 0.2\na t x\n").unwrap();
        let err = convert_clip_vocab(&vocab, &merges, &out).unwrap_err();
        assert!(
            matches!(err, Error::Tokenizer(ref m) if m.contains("line 2")),
            "{err}"
        );
        let missing = convert_clip_vocab(&dir.join("nope.json"), &merges, &out).unwrap_err();
        assert!(matches!(missing, Error::Io(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn clip_requires_its_special_tokens_and_consistent_merges() {
        let vocab: HashMap<String, u32> = [("a".to_string(), 0)].into();
        assert!(matches!(
            clip_tokenizer(vocab, vec![]),
            Err(Error::Tokenizer(_))
        ));
        let vocab: HashMap<String, u32> = [("a", 0), ("b", 1), (CLIP_BOS, 2), (CLIP_EOS, 3)]
            .map(|(t, i)| (t.to_string(), i))
            .into();
        let bad = vec![("a".to_string(), "b".to_string())];
        assert!(matches!(
            clip_tokenizer(vocab, bad),
            Err(Error::Tokenizer(_))
        ));
    }

    fn toy_spm(kinds_scores: &[(&str, f32, u64)]) -> SpmModel {
        parse_sentencepiece_model(&spm_proto::tests::encode_model(kinds_scores, 1)).unwrap()
    }

    #[test]
    fn sentencepiece_appends_eos_and_sentinels() {
        let model = toy_spm(&[
            ("<pad>", 0.0, 3),
            ("</s>", 0.0, 3),
            ("<unk>", 0.0, 2),
            ("▁", -2.0, 1),
            ("▁a", -1.0, 1),
            ("b", -3.0, 1),
            ("▁ab", -1.5, 1),
        ]);
        let tok = sentencepiece_tokenizer(&model, &SentencePieceOptions { extra_ids: 3 }).unwrap();
        assert_eq!(tok.get_vocab_size(true), 10);
        assert_eq!(tok.token_to_id("<extra_id_0>"), Some(9));
        assert_eq!(tok.token_to_id("<extra_id_2>"), Some(7));
        // "ab" as one piece beats "a"+"b"; runs of spaces collapse; EOS last.
        assert_eq!(tokens(&tok, "ab  a", true), ["▁ab", "▁a", "</s>"]);
        assert_eq!(tokens(&tok, "ab", false), ["▁ab"]);
        assert_eq!(tokens(&tok, "", true), ["</s>"]);
        assert_eq!(tok.encode_fast("zz", false).unwrap().get_ids()[1], 2);
    }

    #[test]
    fn sentencepiece_without_unknown_piece_is_rejected() {
        let model = toy_spm(&[("<pad>", 0.0, 3), ("</s>", 0.0, 3), ("▁a", -1.0, 1)]);
        let err = sentencepiece_tokenizer(&model, &SentencePieceOptions::default()).unwrap_err();
        assert!(
            matches!(err, Error::Tokenizer(ref m) if m.contains("unknown")),
            "{err}"
        );
    }
}
