//! A reader for the parts of sentencepiece's `ModelProto` (protobuf, proto2) that a tokenizer
//! conversion needs. Hand-written so the core needs no protobuf code generator: the wire format
//! is five record kinds, and every field we do not know is skipped.
//!
//! Field numbers (from `sentencepiece_model.proto`):
//! - `ModelProto`: 1 `pieces` (repeated `SentencePiece`), 2 `trainer_spec`, 3 `normalizer_spec`.
//! - `SentencePiece`: 1 `piece` (string), 2 `score` (float), 3 `type` (enum, default NORMAL).
//! - `TrainerSpec`: 3 `model_type` (default UNIGRAM), 35 `byte_fallback`, 42 `eos_id` (default 2).
//! - `NormalizerSpec`: 1 `name`, 2 `precompiled_charsmap` (bytes), 3 `add_dummy_prefix`
//!   (default true), 4 `remove_extra_whitespaces` (default true).

use crate::error::{Error, Result};

/// `SentencePiece.Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

impl PieceType {
    fn from_proto(value: u64) -> Result<Self> {
        Ok(match value {
            1 => PieceType::Normal,
            2 => PieceType::Unknown,
            3 => PieceType::Control,
            4 => PieceType::UserDefined,
            5 => PieceType::Unused,
            6 => PieceType::Byte,
            other => return Err(malformed(&format!("unknown piece type {other}"))),
        })
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// `TrainerSpec.ModelType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelType {
    Unigram,
    Bpe,
    Word,
    Char,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SpmModel {
    pub pieces: Vec<Piece>,
    pub model_type: ModelType,
    pub byte_fallback: bool,
    pub eos_id: i64,
    pub precompiled_charsmap: Vec<u8>,
    pub add_dummy_prefix: bool,
    pub remove_extra_whitespaces: bool,
}

fn malformed(what: &str) -> Error {
    Error::Tokenizer(format!("malformed sentencepiece model: {what}"))
}

/// One protobuf field value as it appears on the wire.
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| malformed("truncated varint"))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| malformed("field runs past the end of the data"))?;
        let bytes = &self.buf[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    /// The next `(field number, value)`, or `None` at the end of the message.
    fn field(&mut self) -> Result<Option<(u64, Value<'a>)>> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed64
            }
            2 => {
                let len = usize::try_from(self.varint()?)
                    .map_err(|_| malformed("length does not fit in memory"))?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                Value::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            other => return Err(malformed(&format!("unsupported wire type {other}"))),
        };
        Ok(Some((key >> 3, value)))
    }
}

fn utf8(bytes: &[u8], what: &str) -> Result<String> {
    String::from_utf8(bytes.to_vec()).map_err(|_| malformed(&format!("{what} is not UTF-8")))
}

fn parse_piece(buf: &[u8]) -> Result<Piece> {
    let mut piece = Piece {
        piece: String::new(),
        score: 0.0,
        kind: PieceType::Normal,
    };
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.field()? {
        match (number, value) {
            (1, Value::Bytes(b)) => piece.piece = utf8(b, "a piece")?,
            (2, Value::Fixed32(bits)) => piece.score = f32::from_bits(bits),
            (3, Value::Varint(v)) => piece.kind = PieceType::from_proto(v)?,
            (1..=3, _) => return Err(malformed("a piece field has the wrong wire type")),
            _ => {}
        }
    }
    Ok(piece)
}

fn as_i64(v: u64) -> i64 {
    // int32 fields are sign-extended to 64 bits on the wire.
    v as i64
}

/// Parse a serialized `ModelProto` (the content of a `spiece.model` file).
pub fn parse_model(buf: &[u8]) -> Result<SpmModel> {
    let mut model = SpmModel {
        pieces: Vec::new(),
        model_type: ModelType::Unigram,
        byte_fallback: false,
        eos_id: 2,
        precompiled_charsmap: Vec::new(),
        add_dummy_prefix: true,
        remove_extra_whitespaces: true,
    };
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.field()? {
        match (number, value) {
            (1, Value::Bytes(b)) => model.pieces.push(parse_piece(b)?),
            (2, Value::Bytes(b)) => parse_trainer_spec(b, &mut model)?,
            (3, Value::Bytes(b)) => parse_normalizer_spec(b, &mut model)?,
            (1..=3, _) => return Err(malformed("a top-level field has the wrong wire type")),
            _ => {}
        }
    }
    if model.pieces.is_empty() {
        return Err(malformed(
            "no pieces (is this a sentencepiece .model file?)",
        ));
    }
    Ok(model)
}

fn parse_trainer_spec(buf: &[u8], model: &mut SpmModel) -> Result<()> {
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.field()? {
        match (number, value) {
            (3, Value::Varint(v)) => {
                model.model_type = match v {
                    1 => ModelType::Unigram,
                    2 => ModelType::Bpe,
                    3 => ModelType::Word,
                    4 => ModelType::Char,
                    other => return Err(malformed(&format!("unknown model type {other}"))),
                }
            }
            (35, Value::Varint(v)) => model.byte_fallback = v != 0,
            (42, Value::Varint(v)) => model.eos_id = as_i64(v),
            _ => {}
        }
    }
    Ok(())
}

fn parse_normalizer_spec(buf: &[u8], model: &mut SpmModel) -> Result<()> {
    let mut reader = Reader::new(buf);
    while let Some((number, value)) = reader.field()? {
        match (number, value) {
            (2, Value::Bytes(b)) => model.precompiled_charsmap = b.to_vec(),
            (3, Value::Varint(v)) => model.add_dummy_prefix = v != 0,
            (4, Value::Varint(v)) => model.remove_extra_whitespaces = v != 0,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes_field(number: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn varint_field(number: u64, value: u64, out: &mut Vec<u8>) {
        varint(number << 3, out);
        varint(value, out);
    }

    /// Serialize a minimal `ModelProto` the way protobuf would (used by the converter tests too).
    pub(crate) fn encode_model(pieces: &[(&str, f32, u64)], eos_id: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (text, score, kind) in pieces {
            let mut p = Vec::new();
            bytes_field(1, text.as_bytes(), &mut p);
            varint(2 << 3 | 5, &mut p);
            p.extend_from_slice(&score.to_le_bytes());
            varint_field(3, *kind, &mut p);
            bytes_field(1, &p, &mut out);
        }
        let mut trainer = Vec::new();
        varint_field(3, 1, &mut trainer);
        varint_field(42, eos_id, &mut trainer);
        varint_field(9999, 5, &mut trainer); // an unknown field must be skipped
        bytes_field(2, &trainer, &mut out);
        let mut normalizer = Vec::new();
        bytes_field(1, b"identity", &mut normalizer);
        varint_field(4, 1, &mut normalizer);
        bytes_field(3, &normalizer, &mut out);
        out
    }

    #[test]
    fn parses_pieces_types_and_specs() {
        let buf = encode_model(
            &[
                ("<pad>", 0.0, 3),
                ("</s>", 0.0, 3),
                ("<unk>", 0.0, 2),
                ("▁a", -1.5, 1),
            ],
            1,
        );
        let model = parse_model(&buf).unwrap();
        assert_eq!(model.pieces.len(), 4);
        assert_eq!(model.pieces[2].kind, PieceType::Unknown);
        assert_eq!(model.pieces[3].piece, "▁a");
        assert_eq!(model.pieces[3].score, -1.5);
        assert_eq!(model.eos_id, 1);
        assert_eq!(model.model_type, ModelType::Unigram);
        assert!(model.add_dummy_prefix);
        assert!(model.precompiled_charsmap.is_empty());
    }

    #[test]
    fn truncated_data_is_an_error() {
        let buf = encode_model(&[("<unk>", 0.0, 2), ("▁a", -1.0, 1)], 2);
        for cut in [1, 5, buf.len() - 1] {
            assert!(matches!(parse_model(&buf[..cut]), Err(Error::Tokenizer(_))));
        }
        assert!(matches!(parse_model(b""), Err(Error::Tokenizer(_))));
    }
}
