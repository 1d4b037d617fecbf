//! A small English singular/plural rule set for the object words of image prompts.
//!
//! It is not a general inflector: it covers the regular patterns and the irregular nouns that occur
//! in COCO / GenEval object names and everyday prompts (person/people, mouse/mice, knife/knives,
//! bus/buses, sheep, skis, glasses, sandwiches, ...). Input is expected lowercase.
//!
//! Rules, in the order they are tried:
//! 1. Invariant nouns (`sheep`, `deer`, `fish`, `scissors`, ...) are their own singular and plural.
//! 2. Irregular pairs (`person`/`people`, `knife`/`knives`, `bus`/`buses`, `ski`/`skis`, ...) map
//!    either way.
//! 3. Plural to singular: `-sses` -> `-ss` (glasses), `-ches`/`-shes`/`-xes`/`-zzes` drop `-es`,
//!    consonant + `-ies` -> `-y` (except nouns listed in `IE_NOUNS`, e.g. cookies), a word ending in
//!    `-ss`, `-us` or `-is` is already singular (glass, cactus, tennis), any other final `-s` is
//!    dropped (horses -> horse, vases -> vase, shoes -> shoe).
//! 4. Singular to plural: consonant + `y` -> `-ies`, `-s`/`-x`/`-z`/`-ch`/`-sh` -> `+es`, else `+s`
//!    (`-f`/`-fe`/`-o` words that take `-ves`/`-oes` are in the irregular table).

/// Nouns whose plural is the same word.
const INVARIANT: &[&str] = &[
    "sheep",
    "deer",
    "fish",
    "moose",
    "bison",
    "salmon",
    "trout",
    "shrimp",
    "squid",
    "swine",
    "aircraft",
    "spacecraft",
    "series",
    "species",
    "scissors",
    "pants",
    "jeans",
    "shorts",
    "trousers",
    "pajamas",
    "binoculars",
    "tongs",
    "pliers",
    "cattle",
    "police",
    "news",
    "furniture",
    "luggage",
    "broccoli",
    "tennis",
];

/// (singular, plural) pairs the suffix rules get wrong.
const IRREGULAR: &[(&str, &str)] = &[
    ("person", "people"),
    ("man", "men"),
    ("woman", "women"),
    ("child", "children"),
    ("mouse", "mice"),
    ("goose", "geese"),
    ("tooth", "teeth"),
    ("foot", "feet"),
    ("ox", "oxen"),
    ("louse", "lice"),
    ("die", "dice"),
    ("knife", "knives"),
    ("wife", "wives"),
    ("life", "lives"),
    ("leaf", "leaves"),
    ("loaf", "loaves"),
    ("half", "halves"),
    ("calf", "calves"),
    ("wolf", "wolves"),
    ("shelf", "shelves"),
    ("scarf", "scarves"),
    ("thief", "thieves"),
    ("elf", "elves"),
    ("bus", "buses"),
    ("gas", "gases"),
    ("lens", "lenses"),
    ("canvas", "canvases"),
    ("quiz", "quizzes"),
    ("axe", "axes"),
    ("ski", "skis"),
    ("kiwi", "kiwis"),
    ("taxi", "taxis"),
    ("bikini", "bikinis"),
    ("safari", "safaris"),
    ("chili", "chilis"),
    ("potato", "potatoes"),
    ("tomato", "tomatoes"),
    ("mango", "mangoes"),
    ("hero", "heroes"),
    ("echo", "echoes"),
    ("volcano", "volcanoes"),
    ("torpedo", "torpedoes"),
    ("domino", "dominoes"),
    ("cactus", "cacti"),
    ("fungus", "fungi"),
    ("octopus", "octopuses"),
];

/// Nouns ending in `-ie`, whose plural `-ies` must not become `-y`.
const IE_NOUNS: &[&str] = &[
    "cookie", "movie", "pie", "tie", "necktie", "bowtie", "brownie", "hoodie", "selfie", "zombie",
    "smoothie", "genie", "pixie", "magpie", "rookie", "calorie", "beanie", "birdie", "goalie",
];

fn is_vowel(c: u8) -> bool {
    matches!(c, b'a' | b'e' | b'i' | b'o' | b'u')
}

/// The byte before the last `n` bytes, if any (ASCII suffix logic; non-ASCII words just take `+s`).
fn byte_before_suffix(word: &str, suffix_len: usize) -> Option<u8> {
    let b = word.as_bytes();
    b.len().checked_sub(suffix_len + 1).map(|i| b[i])
}

/// Singular form of a lowercase noun (already-singular words come back unchanged).
pub fn singular(word: &str) -> String {
    if INVARIANT.contains(&word) {
        return word.to_string();
    }
    if let Some((s, _)) = IRREGULAR.iter().find(|(s, p)| *p == word || *s == word) {
        return (*s).to_string();
    }
    if let Some(stem) = word.strip_suffix("ies") {
        if IE_NOUNS.contains(&&word[..word.len() - 1]) {
            return word[..word.len() - 1].to_string();
        }
        return match byte_before_suffix(word, 3) {
            Some(c) if !is_vowel(c) => format!("{stem}y"),
            _ => word[..word.len() - 1].to_string(),
        };
    }
    for suffix in ["sses", "ches", "shes", "xes", "zzes"] {
        if word.ends_with(suffix) && word.len() > suffix.len() {
            return word[..word.len() - 2].to_string();
        }
    }
    if word.ends_with("ss") || word.ends_with("us") || word.ends_with("is") {
        return word.to_string();
    }
    match word.strip_suffix('s') {
        Some(stem) if !stem.is_empty() => stem.to_string(),
        _ => word.to_string(),
    }
}

/// Plural form of a lowercase singular noun.
pub fn plural(word: &str) -> String {
    if INVARIANT.contains(&word) {
        return word.to_string();
    }
    if let Some((_, p)) = IRREGULAR.iter().find(|(s, p)| *s == word || *p == word) {
        return (*p).to_string();
    }
    if IE_NOUNS.contains(&word) {
        return format!("{word}s");
    }
    if let Some(stem) = word.strip_suffix('y') {
        if matches!(byte_before_suffix(word, 1), Some(c) if !is_vowel(c)) {
            return format!("{stem}ies");
        }
    }
    if ["s", "x", "z", "ch", "sh"]
        .iter()
        .any(|s| word.ends_with(s))
    {
        return format!("{word}es");
    }
    format!("{word}s")
}

/// `(singular, plural)` of a lowercase noun given in either form.
pub fn forms(word: &str) -> (String, String) {
    let s = singular(word);
    let p = plural(&s);
    (s, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(word: &str, s: &str, p: &str) {
        assert_eq!(
            forms(word),
            (s.to_string(), p.to_string()),
            "forms({word:?})"
        );
    }

    #[test]
    fn regular_and_sibilant_nouns() {
        for (w, s, p) in [
            ("cat", "cat", "cats"),
            ("cats", "cat", "cats"),
            ("horses", "horse", "horses"),
            ("vase", "vase", "vases"),
            ("suitcases", "suitcase", "suitcases"),
            ("boxes", "box", "boxes"),
            ("sandwich", "sandwich", "sandwiches"),
            ("toothbrushes", "toothbrush", "toothbrushes"),
            ("couches", "couch", "couches"),
            ("glasses", "glass", "glasses"),
            ("glass", "glass", "glasses"),
            ("giraffes", "giraffe", "giraffes"),
            ("shoes", "shoe", "shoes"),
            ("pianos", "piano", "pianos"),
        ] {
            check(w, s, p);
        }
    }

    #[test]
    fn y_and_ie_endings() {
        check("teddy", "teddy", "teddies");
        check("berries", "berry", "berries");
        check("toys", "toy", "toys");
        check("donkey", "donkey", "donkeys");
        check("cookies", "cookie", "cookies");
        check("tie", "tie", "ties");
        check("ties", "tie", "ties");
    }

    #[test]
    fn irregular_and_invariant_nouns() {
        for (w, s, p) in [
            ("person", "person", "people"),
            ("people", "person", "people"),
            ("mice", "mouse", "mice"),
            ("mouse", "mouse", "mice"),
            ("knife", "knife", "knives"),
            ("knives", "knife", "knives"),
            ("bus", "bus", "buses"),
            ("buses", "bus", "buses"),
            ("sheep", "sheep", "sheep"),
            ("skis", "ski", "skis"),
            ("ski", "ski", "skis"),
            ("scissors", "scissors", "scissors"),
            ("tomatoes", "tomato", "tomatoes"),
            ("children", "child", "children"),
            ("cactus", "cactus", "cacti"),
            ("tennis", "tennis", "tennis"),
        ] {
            check(w, s, p);
        }
    }

    #[test]
    fn forms_are_stable_under_reinflection() {
        for w in [
            "dogs", "people", "knives", "glasses", "cookies", "skis", "benches", "zebra",
        ] {
            let (s, p) = forms(w);
            assert_eq!(forms(&s), (s.clone(), p.clone()));
            assert_eq!(forms(&p), (s, p));
        }
    }
}
