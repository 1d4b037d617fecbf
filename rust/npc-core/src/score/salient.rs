//! The salient text-space score (docs/npc-method.md), for one prompt or many prompts at once.
//!
//! For a prompt embedding `p` and candidate `k` with full-text embedding `c_k` and phrase embedding
//! `f_k`, and the prompt's quantity phrases `q` and object phrases `o`:
//! `delta_k = p - c_k`, `s_cand = cos(delta_k, f_k)`, `s_qty = mean_q cos(delta_k, q)`,
//! `s_obj = mean_o cos(delta_k, o)`, `score = s_qty + s_obj - s_cand`; candidates are ranked by
//! score, highest first, ties kept in input order.
//!
//! Numerics: `delta` is formed in f32 (one rounding per element), every dot product uses
//! [`kernels::dot`] (f32 blocks, f64 accumulation) and cosines, means and scores are f64. The zero
//! rule of [`kernels::cosine_from_parts`] applies: a candidate whose full-text embedding equals the
//! prompt's gets `delta = 0` and all components 0.
//!
//! Ragged batches: prompt `i` owns candidate rows `cand_offsets[i]..cand_offsets[i + 1]`, and
//! likewise for quantity and object phrase rows; every segment must be non-empty.

use rayon::prelude::*;

use super::kernels::{cosine_from_parts, delta_and_dots, dots_against, prefetch, squared_norms};
use crate::error::{Error, Result};

/// A row-major `[rows, cols]` f32 matrix borrowed from the caller, with the argument name used in
/// error messages.
#[derive(Debug, Clone, Copy)]
pub struct Matrix<'a> {
    pub name: &'a str,
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

impl<'a> Matrix<'a> {
    /// Checks that `data` holds exactly `rows * cols` values.
    pub fn new(name: &'a str, data: &'a [f32], rows: usize, cols: usize) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::Shape(format!(
                "{name} has {} values, expected [{rows}, {cols}]",
                data.len()
            )));
        }
        Ok(Matrix {
            name,
            data,
            rows,
            cols,
        })
    }

    #[inline]
    pub fn row(&self, i: usize) -> &'a [f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    fn first_non_finite(&self) -> Option<usize> {
        self.data
            .iter()
            .position(|x| !x.is_finite())
            .map(|i| i / self.cols.max(1))
    }
}

/// Inputs of the ragged (many prompts) score. `*_offsets` have one entry per prompt plus one.
#[derive(Debug, Clone, Copy)]
pub struct RaggedInput<'a> {
    /// `[P, D]`: `embed(prompt)` per prompt.
    pub prompt_embs: Matrix<'a>,
    /// `[K_total, D]`: `embed(candidate)`, the candidate as a full text (with special tokens).
    pub cand_embs: Matrix<'a>,
    /// `[K_total, D]`: `phrase(candidate)` (no special tokens).
    pub cand_phrases: Matrix<'a>,
    pub cand_offsets: &'a [usize],
    /// `[Q_total, D]`: `phrase(quantity)`.
    pub qty_phrases: Matrix<'a>,
    pub qty_offsets: &'a [usize],
    /// `[O_total, D]`: `phrase(object)`.
    pub obj_phrases: Matrix<'a>,
    pub obj_offsets: &'a [usize],
}

/// Every component per candidate, in input order, and the per-prompt ranking.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scores {
    pub s_qty: Vec<f64>,
    pub s_obj: Vec<f64>,
    pub s_cand: Vec<f64>,
    pub score: Vec<f64>,
    /// For each prompt's segment, the candidate indices local to that prompt (0-based), best
    /// first; stored at the positions of the segment.
    pub order: Vec<usize>,
}

fn check_offsets(
    name: &str,
    offsets: &[usize],
    prompts: usize,
    rows: usize,
    what: &str,
) -> Result<()> {
    if offsets.len() != prompts + 1 {
        return Err(Error::Shape(format!(
            "{name} has {} entries, expected one per prompt plus one ({})",
            offsets.len(),
            prompts + 1
        )));
    }
    if offsets[0] != 0 || offsets[prompts] != rows {
        return Err(Error::Shape(format!(
            "{name} must start at 0 and end at the number of {what} rows ({rows}), got {} .. {}",
            offsets[0], offsets[prompts]
        )));
    }
    if let Some(i) = offsets.windows(2).position(|w| w[1] <= w[0]) {
        let problem = if offsets[i + 1] < offsets[i] {
            "decreases"
        } else {
            "is empty"
        };
        return Err(Error::InvalidInput(format!(
            "{name}: the {what} list of prompt {i} {problem} ({} .. {}); every prompt needs at least one",
            offsets[i],
            offsets[i + 1]
        )));
    }
    Ok(())
}

fn check(input: &RaggedInput) -> Result<()> {
    let d = input.prompt_embs.cols;
    if d == 0 {
        return Err(Error::Shape(format!(
            "{} has embedding size 0",
            input.prompt_embs.name
        )));
    }
    for m in [
        input.cand_embs,
        input.cand_phrases,
        input.qty_phrases,
        input.obj_phrases,
    ] {
        if m.cols != d {
            return Err(Error::Shape(format!(
                "{} has embedding size {}, but {} has {d}",
                m.name, m.cols, input.prompt_embs.name
            )));
        }
    }
    if input.cand_phrases.rows != input.cand_embs.rows {
        return Err(Error::Shape(format!(
            "{} has {} rows but {} has {}: one phrase per candidate",
            input.cand_phrases.name,
            input.cand_phrases.rows,
            input.cand_embs.name,
            input.cand_embs.rows
        )));
    }
    let p = input.prompt_embs.rows;
    check_offsets(
        "cand_offsets",
        input.cand_offsets,
        p,
        input.cand_embs.rows,
        "candidate",
    )?;
    check_offsets(
        "qty_offsets",
        input.qty_offsets,
        p,
        input.qty_phrases.rows,
        "quantity",
    )?;
    check_offsets(
        "obj_offsets",
        input.obj_offsets,
        p,
        input.obj_phrases.rows,
        "object",
    )?;
    Ok(())
}

/// Called once a result came out non-finite: name the first input holding NaN/inf, or say that a
/// product overflowed f32.
fn non_finite_error(input: &RaggedInput) -> Error {
    for m in [
        input.prompt_embs,
        input.cand_embs,
        input.cand_phrases,
        input.qty_phrases,
        input.obj_phrases,
    ] {
        if let Some(row) = m.first_non_finite() {
            return Error::NonFinite(format!("{} row {row} holds NaN or infinity", m.name));
        }
    }
    Error::NonFinite(
        "an embedding is too large for f32 dot products (|value| > ~1.8e19 overflows)".to_string(),
    )
}

fn rows<'a>(
    m: &Matrix<'a>,
    range: std::ops::Range<usize>,
) -> impl ExactSizeIterator<Item = &'a [f32]> {
    let m = *m;
    range.map(move |r| m.row(r))
}

/// `[s_qty, s_obj, s_cand]` for the candidates of prompt `i`, or NaN components when a norm
/// overflowed or an input was not finite (the caller then names the culprit).
///
/// Memory order matters as much as arithmetic here (the work reads every embedding once): the
/// prompt's quantity/object rows are read once for their norms and then stay in cache for every
/// candidate, and each candidate's rows are read once, back to back. Dot products go three at a
/// time ([`dots`]) to share loads.
fn score_prompt(input: &RaggedInput, i: usize, delta: &mut [f32]) -> Vec<[f64; 3]> {
    let qty_range = input.qty_offsets[i]..input.qty_offsets[i + 1];
    let obj_range = input.obj_offsets[i]..input.obj_offsets[i + 1];
    let n_qty = qty_range.len();
    let first = input.cand_offsets[i];
    prefetch(input.cand_embs.row(first));
    prefetch(input.cand_phrases.row(first));
    // Quantity rows then object rows: one list, so the dot products group across both.
    let targets: Vec<&[f32]> = rows(&input.qty_phrases, qty_range)
        .chain(rows(&input.obj_phrases, obj_range))
        .collect();
    let target_norms: Vec<f64> = squared_norms(targets.iter().copied())
        .into_iter()
        .map(f64::sqrt)
        .collect();
    let targets_finite = target_norms.iter().all(|n| n.is_finite());
    let prompt = input.prompt_embs.row(i);
    let cands = input.cand_offsets[i]..input.cand_offsets[i + 1];
    let last = cands.end - 1;
    cands
        .map(|k| {
            let phrase = input.cand_phrases.row(k);
            let [dd, df, ff] = delta_and_dots(prompt, input.cand_embs.row(k), phrase, delta);
            let delta: &[f32] = delta;
            let (delta_norm, phrase_norm) = (dd.sqrt(), ff.sqrt());
            if !(targets_finite && delta_norm.is_finite() && phrase_norm.is_finite()) {
                return [f64::NAN; 3];
            }
            let s_cand = cosine_from_parts(df, delta_norm, phrase_norm);
            if k < last {
                // The next candidate's rows come from memory while these dots run from cache.
                prefetch(input.cand_embs.row(k + 1));
                prefetch(input.cand_phrases.row(k + 1));
            }
            let cosines: Vec<f64> = dots_against(delta, targets.iter().copied())
                .into_iter()
                .zip(&target_norms)
                .map(|(d, &n)| cosine_from_parts(d, delta_norm, n))
                .collect();
            let (qty, obj) = cosines.split_at(n_qty);
            let mean = |c: &[f64]| c.iter().sum::<f64>() / c.len() as f64;
            [mean(qty), mean(obj), s_cand]
        })
        .collect()
}

/// Scores for many prompts at once, each with its own candidates, quantities and objects.
/// Prompts are scored in parallel.
pub fn salient_scores_ragged(input: &RaggedInput) -> Result<Scores> {
    check(input)?;
    let d = input.prompt_embs.cols;
    let per_prompt: Vec<Vec<[f64; 3]>> = (0..input.prompt_embs.rows)
        .into_par_iter()
        .map_init(|| vec![0.0f32; d], |delta, i| score_prompt(input, i, delta))
        .collect();
    let components: Vec<[f64; 3]> = per_prompt.into_iter().flatten().collect();
    let n = components.len();
    let mut scores = Scores {
        s_qty: Vec::with_capacity(n),
        s_obj: Vec::with_capacity(n),
        s_cand: Vec::with_capacity(n),
        score: Vec::with_capacity(n),
        order: Vec::with_capacity(n),
    };
    for [q, o, c] in components {
        scores.s_qty.push(q);
        scores.s_obj.push(o);
        scores.s_cand.push(c);
        scores.score.push(q + o - c);
    }
    if !scores.score.iter().all(|s| s.is_finite()) {
        return Err(non_finite_error(input));
    }
    for w in input.cand_offsets.windows(2) {
        let segment = &scores.score[w[0]..w[1]];
        let mut local: Vec<usize> = (0..segment.len()).collect();
        // Stable sort: equal scores keep input order.
        local.sort_by(|&a, &b| segment[b].total_cmp(&segment[a]));
        scores.order.extend(local);
    }
    Ok(scores)
}

/// Scores for the K candidates of one prompt: `prompt_emb` is `[D]`, the matrices `[K|Q|O, D]`.
pub fn salient_scores(
    prompt_emb: &[f32],
    cand_embs: Matrix,
    cand_phrases: Matrix,
    qty_phrases: Matrix,
    obj_phrases: Matrix,
) -> Result<Scores> {
    let prompt_embs = Matrix::new("prompt_emb", prompt_emb, 1, prompt_emb.len())?;
    let cand_offsets = [0, cand_embs.rows];
    let qty_offsets = [0, qty_phrases.rows];
    let obj_offsets = [0, obj_phrases.rows];
    salient_scores_ragged(&RaggedInput {
        prompt_embs,
        cand_embs,
        cand_phrases,
        cand_offsets: &cand_offsets,
        qty_phrases,
        qty_offsets: &qty_offsets,
        obj_phrases,
        obj_offsets: &obj_offsets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cos(a: &[f32], b: &[f64]) -> f64 {
        let a: Vec<f64> = a.iter().map(|&x| f64::from(x)).collect();
        let d: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
        let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
        if na == 0.0 || nb == 0.0 {
            0.0
        } else {
            d / (na * nb)
        }
    }

    /// Deterministic pseudo-random values in [-1, 1).
    fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn ragged_matches_naive_formula_and_single_form() {
        let d = 37;
        let (cand_off, qty_off, obj_off) =
            ([0usize, 3, 4, 9], [0usize, 2, 6, 7], [0usize, 1, 3, 5]);
        let p = values(3 * d, 1);
        let c = values(9 * d, 2);
        let f = values(9 * d, 3);
        let q = values(7 * d, 4);
        let o = values(5 * d, 5);
        let input = RaggedInput {
            prompt_embs: Matrix::new("prompt_embs", &p, 3, d).unwrap(),
            cand_embs: Matrix::new("cand_embs", &c, 9, d).unwrap(),
            cand_phrases: Matrix::new("cand_phrases", &f, 9, d).unwrap(),
            cand_offsets: &cand_off,
            qty_phrases: Matrix::new("qty_phrases", &q, 7, d).unwrap(),
            qty_offsets: &qty_off,
            obj_phrases: Matrix::new("obj_phrases", &o, 5, d).unwrap(),
            obj_offsets: &obj_off,
        };
        let got = salient_scores_ragged(&input).unwrap();
        for i in 0..3 {
            for k in cand_off[i]..cand_off[i + 1] {
                let delta: Vec<f64> = (0..d)
                    .map(|j| f64::from(p[i * d + j]) - f64::from(c[k * d + j]))
                    .collect();
                let mean = |m: &[f32], r: std::ops::Range<usize>| {
                    let n = r.len() as f64;
                    r.map(|x| cos(&m[x * d..(x + 1) * d], &delta)).sum::<f64>() / n
                };
                let s_cand = cos(&f[k * d..(k + 1) * d], &delta);
                let s_qty = mean(&q, qty_off[i]..qty_off[i + 1]);
                let s_obj = mean(&o, obj_off[i]..obj_off[i + 1]);
                for (name, a, b) in [
                    ("s_cand", got.s_cand[k], s_cand),
                    ("s_qty", got.s_qty[k], s_qty),
                    ("s_obj", got.s_obj[k], s_obj),
                    ("score", got.score[k], s_qty + s_obj - s_cand),
                ] {
                    assert!((a - b).abs() < 1e-6, "{name}[{k}]: {a} vs {b}");
                }
            }
            let segment = &got.score[cand_off[i]..cand_off[i + 1]];
            let order = &got.order[cand_off[i]..cand_off[i + 1]];
            assert!(order.windows(2).all(|w| segment[w[0]] >= segment[w[1]]));
        }
        // The single-prompt form on prompt 2 gives the same numbers.
        let one = salient_scores(
            &p[2 * d..],
            Matrix::new("cand_embs", &c[4 * d..], 5, d).unwrap(),
            Matrix::new("cand_phrases", &f[4 * d..], 5, d).unwrap(),
            Matrix::new("qty_phrases", &q[6 * d..], 1, d).unwrap(),
            Matrix::new("obj_phrases", &o[3 * d..], 2, d).unwrap(),
        )
        .unwrap();
        assert_eq!(one.score, got.score[4..]);
        assert_eq!(one.order, got.order[4..]);
    }

    #[test]
    fn zero_delta_is_neutral_and_ties_keep_input_order() {
        let p = [1.0f32, 2.0];
        let c = [1.0f32, 2.0, 1.0, 2.0, 0.0, 1.0];
        let f = [1.0f32, 0.0, 1.0, 0.0, 1.0, 0.0];
        let q = [0.0f32, 1.0];
        let o = [0.0f32, 0.0];
        let s = salient_scores(
            &p,
            Matrix::new("cand_embs", &c, 3, 2).unwrap(),
            Matrix::new("cand_phrases", &f, 3, 2).unwrap(),
            Matrix::new("qty_phrases", &q, 1, 2).unwrap(),
            Matrix::new("obj_phrases", &o, 1, 2).unwrap(),
        )
        .unwrap();
        // Candidates 0 and 1 equal the prompt: delta = 0, every component 0.
        assert_eq!(s.score[..2], [0.0, 0.0]);
        // Candidate 2: delta = (1, 1); s_qty = cos((1,1),(0,1)); s_obj = 0 (zero phrase).
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((s.s_qty[2] - h).abs() < 1e-12 && s.s_obj[2] == 0.0);
        assert!((s.score[2] - (h - h)).abs() < 1e-12);
        assert_eq!(s.order, vec![0, 1, 2]);
    }

    #[test]
    fn errors_name_the_argument() {
        let v = [0.5f32; 8];
        let m = |name, rows, cols| Matrix::new(name, &v[..rows * cols], rows, cols).unwrap();
        let run = |c: Matrix, f: Matrix, q: Matrix, o: Matrix| {
            salient_scores(&v[..2], c, f, q, o).unwrap_err()
        };
        let e = run(
            m("cand_embs", 2, 2),
            m("cand_phrases", 2, 2),
            m("qty_phrases", 1, 4),
            m("obj_phrases", 1, 2),
        );
        assert!(
            matches!(&e, Error::Shape(s) if s.contains("qty_phrases")),
            "{e}"
        );
        let e = run(
            m("cand_embs", 2, 2),
            m("cand_phrases", 1, 2),
            m("qty_phrases", 1, 2),
            m("obj_phrases", 1, 2),
        );
        assert!(
            matches!(&e, Error::Shape(s) if s.contains("cand_phrases")),
            "{e}"
        );
        let e = run(
            m("cand_embs", 0, 2),
            m("cand_phrases", 0, 2),
            m("qty_phrases", 1, 2),
            m("obj_phrases", 1, 2),
        );
        assert!(
            matches!(&e, Error::InvalidInput(s) if s.contains("candidate")),
            "{e}"
        );
        let e = run(
            m("cand_embs", 1, 2),
            m("cand_phrases", 1, 2),
            m("qty_phrases", 1, 2),
            m("obj_phrases", 0, 2),
        );
        assert!(
            matches!(&e, Error::InvalidInput(s) if s.contains("object")),
            "{e}"
        );
        assert!(Matrix::new("x", &v, 3, 3).is_err());
        let mut bad = v;
        bad[3] = f32::NAN;
        let e = salient_scores(
            &v[..2],
            Matrix::new("cand_embs", &bad[..4], 2, 2).unwrap(),
            m("cand_phrases", 2, 2),
            m("qty_phrases", 1, 2),
            m("obj_phrases", 1, 2),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::NonFinite(s) if s.contains("cand_embs row 1")),
            "{e}"
        );
        // Products inside a block (here the whole 64-element vector) are summed in f32, where
        // 1e20 * 1e20 overflows.
        let big = [1e20f32; 64];
        let ones = [1.0f32; 64];
        let zeros = [0.0f32; 64];
        let one = |name| Matrix::new(name, &ones, 1, 64).unwrap();
        let e = salient_scores(
            &ones,
            Matrix::new("cand_embs", &zeros, 1, 64).unwrap(),
            one("cand_phrases"),
            Matrix::new("qty_phrases", &big, 1, 64).unwrap(),
            one("obj_phrases"),
        )
        .unwrap_err();
        assert!(
            matches!(&e, Error::NonFinite(s) if s.contains("overflow")),
            "{e}"
        );
    }
}
