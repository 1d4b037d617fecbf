//! Cleaning of the proposer's negative-prompt candidates, and the fixed fallback list used to top
//! them up (docs/npc-method.md, "Proposer").
//!
//! Choices where the method text is silent (**ours**):
//! - Order: lowercase, then strip the trailing run of `, . ; : ! ?` *and whitespace* (so `"cat ."`
//!   and `"cat?!"` both become `"cat"`), then collapse whitespace. Words are counted after
//!   stripping, so trailing punctuation never counts as a word.
//! - Whitespace is Unicode `White_Space` (`char::is_whitespace`: includes NBSP, U+2000..U+200A,
//!   U+3000, tabs, newlines); every run becomes one ASCII space and the ends are trimmed. Zero-width
//!   characters such as U+200B are not whitespace and are kept.
//! - Leading punctuation is kept as it is (`"- cat"` stays a two-word phrase): the method only
//!   strips trailing punctuation, and we do not guess at what leading marks mean.
//! - Negation: the phrase is split on every non-alphanumeric character and dropped if any piece is
//!   exactly `no`, `not` or `without` (so `"no-entry sign"` is dropped; `"knot"`, `"nothing"` and
//!   `"cannot"` are kept).
//! - Duplicates are judged after cleaning (`"Cat."` duplicates `"cat"`); the first one wins.
//!
//! Because each kept phrase is a fixed point of the normalisation, cleaning is idempotent.

use std::collections::HashSet;

use rayon::prelude::*;

/// Generic negatives, in the method's order, used to top a short candidate list up to K.
pub const FALLBACK_NEGATIVES: [&str; 14] = [
    "cgi",
    "3d render",
    "cartoon",
    "illustration",
    "digital painting",
    "text",
    "logo",
    "watermark",
    "jpeg artifacts",
    "blurry",
    "low quality",
    "overexposed",
    "underexposed",
    "harsh lighting",
];

/// A phrase containing one of these words says what *should* be there; as a negative it would
/// negate itself, so it is dropped.
pub const NEGATION_WORDS: [&str; 3] = ["no", "not", "without"];

/// Longest phrase kept, in words.
pub const MAX_PHRASE_WORDS: usize = 6;

const TRAILING_PUNCTUATION: [char; 6] = [',', '.', ';', ':', '!', '?'];

/// Lowercase, strip trailing punctuation/whitespace, collapse whitespace. May return `""`.
pub fn normalize_phrase(raw: &str) -> String {
    let lower = raw.to_lowercase();
    let stripped =
        lower.trim_end_matches(|c: char| c.is_whitespace() || TRAILING_PUNCTUATION.contains(&c));
    stripped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a normalised phrase contains the word `no`, `not` or `without`.
pub fn has_negation(phrase: &str) -> bool {
    phrase
        .split(|c: char| !c.is_alphanumeric())
        .any(|piece| NEGATION_WORDS.contains(&piece))
}

/// Whether a normalised phrase is acceptable: 1 to 6 words and no negation word.
pub fn is_acceptable(phrase: &str) -> bool {
    let words = phrase.split(' ').filter(|w| !w.is_empty()).count();
    (1..=MAX_PHRASE_WORDS).contains(&words) && !has_negation(phrase)
}

/// Clean a candidate list: normalise each phrase, drop unacceptable ones and duplicates, keep the
/// first `k` (`None`: all).
pub fn clean_candidates<S: AsRef<str>>(phrases: &[S], k: Option<usize>) -> Vec<String> {
    let limit = k.unwrap_or(usize::MAX);
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    for raw in phrases {
        if kept.len() >= limit {
            break;
        }
        let phrase = normalize_phrase(raw.as_ref());
        if is_acceptable(&phrase) && seen.insert(phrase.clone()) {
            kept.push(phrase);
        }
    }
    kept
}

/// [`clean_candidates`] over many lists at once, in parallel; output order follows input order.
pub fn clean_candidates_batch<S: AsRef<str> + Sync>(
    lists: &[Vec<S>],
    k: Option<usize>,
) -> Vec<Vec<String>> {
    lists
        .par_iter()
        .map(|list| clean_candidates(list, k))
        .collect()
}

/// The first `k` distinct entries of `candidates` (taken as given), then fallback negatives not
/// already present, in the method's order, until there are `k`. Fewer than `k` only when the
/// candidates and the 14 fallbacks together have fewer distinct entries.
pub fn top_up<S: AsRef<str>>(candidates: &[S], k: usize) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(k);
    let pool = candidates
        .iter()
        .map(|c| c.as_ref())
        .chain(FALLBACK_NEGATIVES.iter().copied());
    for phrase in pool {
        if out.len() >= k {
            break;
        }
        if seen.insert(phrase) {
            out.push(phrase.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_case_whitespace_and_trailing_punctuation() {
        assert_eq!(normalize_phrase("  Red\tBALL \n"), "red ball");
        assert_eq!(normalize_phrase("cat ."), "cat");
        assert_eq!(normalize_phrase("cat?! ,"), "cat");
        assert_eq!(normalize_phrase("a.b."), "a.b");
        assert_eq!(normalize_phrase("- cat"), "- cat");
        assert_eq!(normalize_phrase("big\u{00a0}\u{3000}dog"), "big dog");
        assert_eq!(normalize_phrase("big\u{200b}dog"), "big\u{200b}dog");
        assert_eq!(normalize_phrase("..."), "");
    }

    #[test]
    fn drops_negations_lengths_and_duplicates() {
        let raw = [
            "A red ball.",
            "no dogs",
            "Dog, NOT cat",
            "without people",
            "no-entry sign",
            "knot",
            "one two three four five six",
            "one two three four five six seven",
            "a red ball",
            " ",
            "?!",
            "nothing",
        ];
        assert_eq!(
            clean_candidates(&raw, None),
            vec![
                "a red ball",
                "knot",
                "one two three four five six",
                "nothing"
            ]
        );
        assert_eq!(clean_candidates(&raw, Some(2)), vec!["a red ball", "knot"]);
        assert!(clean_candidates(&raw, Some(0)).is_empty());
    }

    #[test]
    fn top_up_fills_in_order_without_duplicates() {
        assert_eq!(
            top_up(&["cartoon", "dog"], 4),
            vec!["cartoon", "dog", "cgi", "3d render"]
        );
        assert_eq!(top_up(&["a", "b", "c"], 2), vec!["a", "b"]);
        let all = top_up::<&str>(&[], 100);
        assert_eq!(all, FALLBACK_NEGATIVES.to_vec());
    }

    #[test]
    fn batch_matches_single() {
        let lists = vec![vec!["A.", "b"], vec!["no c", "d!"], vec![]];
        let batch = clean_candidates_batch(&lists, Some(1));
        let single: Vec<_> = lists.iter().map(|l| clean_candidates(l, Some(1))).collect();
        assert_eq!(batch, single);
    }

    fn phrase_strategy() -> impl Strategy<Value = String> {
        // Words from a small alphabet that includes negations, punctuation and odd whitespace.
        let word = prop_oneof![
            Just("no".to_string()),
            Just("Not".to_string()),
            Just("WITHOUT".to_string()),
            "[a-zA-Z0-9İß]{1,6}",
            "[,.;:!?\\-]{1,2}",
        ];
        let sep = prop_oneof![
            Just(" ".to_string()),
            Just("  ".to_string()),
            Just("\t".to_string()),
            Just("\u{00a0}".to_string()),
            Just("\n".to_string()),
            Just(",".to_string()),
        ];
        proptest::collection::vec((word, sep), 0..9)
            .prop_map(|parts| parts.into_iter().map(|(w, s)| w + &s).collect())
    }

    proptest! {
        #[test]
        fn cleaning_invariants(
            phrases in proptest::collection::vec(phrase_strategy(), 0..12),
            k in proptest::option::of(0usize..8),
        ) {
            let once = clean_candidates(&phrases, k);
            prop_assert_eq!(&clean_candidates(&once, k), &once);
            if let Some(k) = k {
                prop_assert!(once.len() <= k);
            }
            let distinct: HashSet<_> = once.iter().collect();
            prop_assert_eq!(distinct.len(), once.len());
            for p in &once {
                let words = p.split(' ').count();
                prop_assert!((1..=MAX_PHRASE_WORDS).contains(&words), "{p:?}");
                prop_assert!(!p.is_empty() && !has_negation(p), "{p:?}");
                prop_assert_eq!(p.trim(), p.as_str());
                prop_assert_eq!(&p.to_lowercase(), p);
            }
        }
    }
}
