//! Prompt analysis for the salient score: the quantity and object words a prompt asks for, and the
//! cleaning of negative-prompt candidates (docs/npc-method.md, "Proposer" and "Salient text-space
//! score").
//!
//! Extraction rules (the method's, with our choices marked **ours**):
//! - The prompt is lowercased and split into words: maximal runs of alphanumeric characters and
//!   `-`, with leading/trailing `-` trimmed (**ours**; apostrophes split, so `dog's` is `dog`, `s`).
//! - A *number* is a word from `zero` to `twenty`, a plain decimal from `0` to `20` (leading zeros
//!   allowed: `02` is 2), or `a`/`an`, which count as 1 (**ours**: the range 0..=20 covers every
//!   count in GenEval-style prompts; larger numbers are not treated as counts).
//! - Each `<number> [of] <word>` match (the optional `of` is skipped) gives the quantity in word and
//!   digit form (`two` -> `"two"`, `"2"`; `a`/`an` -> `"one"`, `"1"`) and the object word in
//!   singular and plural form (see [`inflect`]). A match is kept only when `<word>` is purely
//!   alphabetic, not in [`STOP_WORDS`] and not itself a number word (**ours**: `a photo of` gives
//!   nothing, rather than a stray quantity 1). The word right after the number is the object, even
//!   when it is an adjective (`two red apples` gives `red`/`reds`), as the method states it.
//! - With no kept match, `fallback` is set: the objects are every purely alphabetic word longer than
//!   2 characters (Unicode letters) not in the stop list, as written in the prompt (lowercase, no
//!   inflection, **ours**), and the quantities are `one, two, three, 1, 2, 3`.
//! - Lists keep first-appearance order and hold no duplicates. Quantities are listed word form then
//!   digit form per match; objects singular then plural.
//!
//! An object list can be empty (a prompt like `"ox"` has no match and no word longer than two
//! letters); the scoring then refuses it with a clear error.

pub mod clean;
pub mod inflect;

use rayon::prelude::*;

pub use clean::{
    clean_candidates, clean_candidates_batch, normalize_phrase, top_up, FALLBACK_NEGATIVES,
    MAX_PHRASE_WORDS, NEGATION_WORDS,
};

/// Words that are never object words.
pub const STOP_WORDS: [&str; 21] = [
    "a", "an", "the", "and", "or", "with", "of", "in", "on", "at", "to", "for", "from", "photo",
    "picture", "image", "scene", "view", "close-up", "closeup", "shot",
];

/// Number words 0..=20; the index is the value.
pub const NUMBER_WORDS: [&str; 21] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
];

/// Quantities used when the prompt has no `<number> <word>` match.
pub const FALLBACK_QUANTITIES: [&str; 6] = ["one", "two", "three", "1", "2", "3"];

/// Largest count recognised, in words or digits.
pub const MAX_COUNT: usize = 20;

/// The quantity and object words of one prompt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PromptTerms {
    pub quantities: Vec<String>,
    pub objects: Vec<String>,
    /// True when no `<number> [of] <word>` match was found and the fallback lists were used.
    pub fallback: bool,
}

fn words(prompt: &str) -> Vec<String> {
    prompt
        .to_lowercase()
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .map(|w| w.trim_matches('-'))
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// The count a word stands for, if it is a number word, a decimal 0..=20, or `a`/`an`.
pub fn parse_count(word: &str) -> Option<usize> {
    if word == "a" || word == "an" {
        return Some(1);
    }
    if let Some(n) = NUMBER_WORDS.iter().position(|w| *w == word) {
        return Some(n);
    }
    if !word.is_empty() && word.len() <= 4 && word.bytes().all(|b| b.is_ascii_digit()) {
        return word.parse::<usize>().ok().filter(|n| *n <= MAX_COUNT);
    }
    None
}

fn is_alphabetic(word: &str) -> bool {
    !word.is_empty() && word.chars().all(char::is_alphabetic)
}

fn push_unique(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// Extract the quantity and object words of one prompt (rules in the module documentation).
pub fn analyze_prompt(prompt: &str) -> PromptTerms {
    let words = words(prompt);
    let mut terms = PromptTerms::default();
    for (i, word) in words.iter().enumerate() {
        let Some(count) = parse_count(word) else {
            continue;
        };
        let mut j = i + 1;
        if words.get(j).map(String::as_str) == Some("of") {
            j += 1;
        }
        let Some(object) = words.get(j) else {
            continue;
        };
        if !is_alphabetic(object)
            || STOP_WORDS.contains(&object.as_str())
            || NUMBER_WORDS.contains(&object.as_str())
        {
            continue;
        }
        push_unique(&mut terms.quantities, NUMBER_WORDS[count].to_string());
        push_unique(&mut terms.quantities, count.to_string());
        let (singular, plural) = inflect::forms(object);
        push_unique(&mut terms.objects, singular);
        push_unique(&mut terms.objects, plural);
    }
    if terms.quantities.is_empty() {
        terms.fallback = true;
        terms.quantities = FALLBACK_QUANTITIES.iter().map(|q| q.to_string()).collect();
        for word in words {
            if word.chars().count() > 2
                && is_alphabetic(&word)
                && !STOP_WORDS.contains(&word.as_str())
            {
                push_unique(&mut terms.objects, word);
            }
        }
    }
    terms
}

/// [`analyze_prompt`] over many prompts in parallel; output order follows input order.
pub fn analyze_prompts<S: AsRef<str> + Sync>(prompts: &[S]) -> Vec<PromptTerms> {
    prompts
        .par_iter()
        .map(|p| analyze_prompt(p.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[track_caller]
    fn check(prompt: &str, quantities: &[&str], objects: &[&str], fallback: bool) {
        let terms = analyze_prompt(prompt);
        assert_eq!(
            terms,
            PromptTerms {
                quantities: strings(quantities),
                objects: strings(objects),
                fallback
            },
            "{prompt:?}"
        );
    }

    #[test]
    fn counts_in_words_digits_and_articles() {
        check(
            "a photo of two cats",
            &["two", "2"],
            &["cat", "cats"],
            false,
        );
        check("A photo of a Dog", &["one", "1"], &["dog", "dogs"], false);
        check(
            "3 buses and an umbrella",
            &["three", "3", "one", "1"],
            &["bus", "buses", "umbrella", "umbrellas"],
            false,
        );
        check(
            "twenty of mice",
            &["twenty", "20"],
            &["mouse", "mice"],
            false,
        );
        check(
            "a knife, 02 people.",
            &["one", "1", "two", "2"],
            &["knife", "knives", "person", "people"],
            false,
        );
        check("two red apples", &["two", "2"], &["red", "reds"], false);
        check(
            "four sheep and four sheep",
            &["four", "4"],
            &["sheep"],
            false,
        );
    }

    #[test]
    fn rejected_matches_fall_back() {
        // "a photo": stop word; "21": outside the range; "a 3d": not alphabetic.
        check(
            "a photo of 21 cats on a 3d grid",
            &FALLBACK_QUANTITIES,
            &["cats", "grid"],
            true,
        );
        check("", &FALLBACK_QUANTITIES, &[], true);
        check("ox", &FALLBACK_QUANTITIES, &[], true);
        check(
            "A close-up shot of the Café",
            &FALLBACK_QUANTITIES,
            &["café"],
            true,
        );
    }

    #[test]
    fn number_parsing_bounds() {
        assert_eq!(parse_count("0"), Some(0));
        assert_eq!(parse_count("20"), Some(20));
        assert_eq!(parse_count("21"), None);
        assert_eq!(parse_count("an"), Some(1));
        assert_eq!(parse_count("twelve"), Some(12));
        assert_eq!(parse_count("99999999999999999999999"), None);
        assert_eq!(parse_count("２"), None);
    }

    #[test]
    fn batch_matches_single() {
        let prompts = ["a cat", "two dogs on a bench", "sunset over water", ""];
        let batch = analyze_prompts(&prompts);
        let single: Vec<_> = prompts.iter().map(|p| analyze_prompt(p)).collect();
        assert_eq!(batch, single);
    }
}
