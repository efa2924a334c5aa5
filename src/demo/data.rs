//! The demo's quotes: deterministic text, authors and tags, and the lists
//! (all quotes, one tag's quotes) that every variant of the site pages through.
//!
//! Quote `i` (0-based) is the `i % 10`-th on `/page/{i/10+1}/`; its text
//! encodes `i` in base 64 over a word list, so every quote is distinct.

const WORDS: [&str; 64] = [
    "world", "truth", "love", "time", "mind", "heart", "life", "light", "dream", "fear", "hope",
    "art", "silence", "river", "stone", "book", "friend", "music", "road", "winter", "summer",
    "sea", "fire", "garden", "city", "wisdom", "courage", "night", "morning", "memory", "star",
    "door", "mirror", "bridge", "journey", "shadow", "voice", "question", "answer", "story",
    "island", "window", "forest", "storm", "echo", "candle", "harbour", "letter", "promise",
    "secret", "mountain", "wave", "thread", "season", "lantern", "compass", "meadow", "ember",
    "horizon", "whisper", "kingdom", "feather", "anchor", "puzzle",
];
const VERBS: [&str; 8] = [
    "is",
    "becomes",
    "outlives",
    "remembers",
    "forgives",
    "follows",
    "rewrites",
    "teaches",
];
/// Author names, each with its Goodreads author id (the real one where the
/// live site has the author).
pub const AUTHORS: [(&str, u32); 16] = [
    ("Albert Einstein", 9810),
    ("Jane Austen", 1265),
    ("Marilyn Monroe", 82952),
    ("J.K. Rowling", 1077326),
    ("André Gide", 7617),
    ("Thomas A. Edison", 3091287),
    ("Eleanor Roosevelt", 44566),
    ("Steve Martin", 7103),
    ("Zoë Ångström", 1000001),
    ("Mark Twain", 1244),
    ("Dr. Seuss", 61105),
    ("Douglas Adams", 4),
    ("Elie Wiesel", 1049),
    ("Friedrich Nietzsche", 1938),
    ("Søren Kierkegaard", 6172),
    ("Bob Marley", 25241),
];
/// Tag names; quote `i`'s primary tag is `TAGS[i % TAGS.len()]`.
pub const TAGS: [&str; 12] = [
    "love",
    "inspirational",
    "life",
    "humor",
    "books",
    "reading",
    "friendship",
    "friends",
    "truth",
    "simile",
    "change",
    "deep-thoughts",
];
/// Tag pages are capped, like a "best of" list; they only repeat quotes.
pub const MAX_TAG_PAGES: u64 = 3;
/// Quotes per list page.
pub const PER_PAGE: u64 = 10;
const NT: u64 = TAGS.len() as u64;
/// `tags(i)` depends only on `i % TAG_PERIOD` (lcm of 12 × 5 and 3 × 12).
const TAG_PERIOD: u64 = 180;

/// The text of quote `i`, with the site's curly quotes.
pub fn quote_text(i: u64) -> String {
    // Digit k of i in base 64, shifted per position so small ids still read varied.
    let w = |k: u32| WORDS[((i / 64u64.pow(k) + u64::from(k) * 13) % 64) as usize];
    let amp = if i.is_multiple_of(5) { " & more" } else { "" };
    let mut first = w(0).to_string();
    first[..1].make_ascii_uppercase();
    format!(
        "“{first} {} {} of the {} {} {}{amp}.”",
        VERBS[(i % 8) as usize],
        w(1),
        w(2),
        w(3),
        w(4)
    )
}

/// The index into `AUTHORS` of quote `i`'s author.
pub fn author_index(i: u64) -> usize {
    ((i * 7 + i / 16) % 16) as usize
}

/// The author of quote `i`.
pub fn author(i: u64) -> &'static str {
    AUTHORS[author_index(i)].0
}

/// The tags of quote `i`: none for one in five, else a primary and maybe a secondary.
pub fn tags(i: u64) -> Vec<&'static str> {
    if (i / NT) % 5 == 4 {
        return Vec::new();
    }
    let primary = i % NT;
    let secondary = (i / 3 + 5) % NT;
    if i.is_multiple_of(3) && secondary != primary {
        vec![TAGS[primary as usize], TAGS[secondary as usize]]
    } else {
        vec![TAGS[primary as usize]]
    }
}

/// The author's URL slug: `J.K. Rowling` -> `J-K-Rowling` (letters kept as they are).
pub fn slug(name: &str) -> String {
    name.split(|c: char| !c.is_alphanumeric())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-")
}

/// The author's Goodreads path, shaped like the live site's:
/// `/author/show/1077326.J_K_Rowling` (each run of other than ASCII letters
/// and digits becomes one `_`, so `Martin Luther King Jr.` ends in `_`).
pub fn goodreads_link(author: usize) -> String {
    let (name, id) = AUTHORS[author];
    let mut out = format!("/author/show/{id}.");
    let mut gap = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
            gap = false;
        } else if !gap {
            out.push('_');
            gap = true;
        }
    }
    out
}

/// How many of the first `total` quotes carry each tag (primary or secondary).
pub fn tag_counts(total: u64) -> [u64; TAGS.len()] {
    let mut counts = [0u64; TAGS.len()];
    let mut add = |i: u64, times: u64| {
        for t in tags(i) {
            let k = TAGS.iter().position(|x| *x == t).unwrap_or(0);
            counts[k] += times;
        }
    };
    let full = total / TAG_PERIOD;
    if full > 0 {
        (0..TAG_PERIOD).for_each(|i| add(i, full));
    }
    (full * TAG_PERIOD..total).for_each(|i| add(i, 1));
    counts
}

/// The ten most used tags with their counts, most used first (ties in `TAGS` order),
/// like the app's `Counter(tags).most_common(10)`.
pub fn top_ten_tags(total: u64) -> Vec<(&'static str, u64)> {
    let counts = tag_counts(total);
    let mut top: Vec<(&'static str, u64)> = TAGS.iter().copied().zip(counts).collect();
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    top.truncate(10);
    top
}

/// One paginated list of quotes: all of them, or those filed under one tag
/// (its primary tag; the untagged fifth is skipped), ten a page.
#[derive(Debug, Clone, Copy)]
pub struct Listing {
    /// The tag, for a tag's list.
    pub tag: Option<&'static str>,
    /// How many quotes the list has.
    pub count: u64,
    /// Its last page (at least 1, even when empty).
    pub last: u64,
}

impl Listing {
    /// Every quote of a site with `pages` list pages.
    pub fn all(pages: u64) -> Listing {
        Listing {
            tag: None,
            count: pages * PER_PAGE,
            last: pages,
        }
    }

    /// The quotes filed under tag `t` (`None` for an unknown tag), capped at
    /// `MAX_TAG_PAGES` pages.
    pub fn tagged(pages: u64, t: &str) -> Option<Listing> {
        let k = TAGS.iter().position(|x| *x == t)?;
        let total = pages * PER_PAGE;
        let blocks = if (k as u64) < total {
            (total - k as u64).div_ceil(NT)
        } else {
            0
        };
        let filed = blocks - blocks / 5;
        let count = filed.min(MAX_TAG_PAGES * PER_PAGE);
        Some(Listing {
            tag: Some(TAGS[k]),
            count,
            last: count.div_ceil(PER_PAGE).clamp(1, MAX_TAG_PAGES),
        })
    }

    /// The quote ids on page `p`, or `None` if `p` is not in `1..=last`.
    pub fn page(&self, p: u64) -> Option<impl Iterator<Item = u64> + '_> {
        if !(1..=self.last).contains(&p) {
            return None;
        }
        let tag = self.tag.and_then(|t| TAGS.iter().position(|x| *x == t));
        let j = (p - 1) * PER_PAGE..(p * PER_PAGE).min(self.count);
        Some(j.map(move |j| match tag {
            // Quote tag + NT*m for every m not in the untagged fifth (m % 5 == 4).
            Some(k) => k as u64 + NT * ((j / 4) * 5 + j % 4),
            None => j,
        }))
    }

    /// Whether page `p` has a next page.
    pub fn has_next(&self, p: u64) -> bool {
        p < self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn quotes_are_distinct() {
        let texts: HashSet<String> = (0..100_000).map(quote_text).collect();
        assert_eq!(texts.len(), 100_000);
    }

    #[test]
    fn tag_counts_match_a_full_count() {
        for total in [0, 1, 10, 100, 179, 180, 181, 1000, 1234] {
            let mut want = [0u64; TAGS.len()];
            for i in 0..total {
                for t in tags(i) {
                    want[TAGS.iter().position(|x| *x == t).unwrap()] += 1;
                }
            }
            assert_eq!(tag_counts(total), want, "{total} quotes");
        }
    }

    #[test]
    fn default_site_top_ten_tags() {
        let top = top_ten_tags(100);
        assert_eq!(
            top,
            vec![
                ("inspirational", 11),
                ("life", 11),
                ("love", 10),
                ("humor", 10),
                ("reading", 10),
                ("friendship", 10),
                ("friends", 10),
                ("truth", 10),
                ("books", 9),
                ("simile", 9),
            ]
        );
    }

    #[test]
    fn goodreads_links_look_like_the_live_ones() {
        let link = |name: &str| goodreads_link(AUTHORS.iter().position(|a| a.0 == name).unwrap());
        assert_eq!(link("J.K. Rowling"), "/author/show/1077326.J_K_Rowling");
        assert_eq!(link("André Gide"), "/author/show/7617.Andr_Gide");
        assert_eq!(
            link("Thomas A. Edison"),
            "/author/show/3091287.Thomas_A_Edison"
        );
        assert_eq!(slug("J.K. Rowling"), "J-K-Rowling");
        assert_eq!(slug("Zoë Ångström"), "Zoë-Ångström");
    }

    #[test]
    fn listings_page_through_their_quotes() {
        let all = Listing::all(3);
        assert_eq!((all.count, all.last), (30, 3));
        assert_eq!(
            all.page(3).unwrap().collect::<Vec<_>>(),
            (20..30).collect::<Vec<_>>()
        );
        assert!(all.page(0).is_none() && all.page(4).is_none());
        assert!(all.has_next(2) && !all.has_next(3));
        let love = Listing::tagged(10, "love").unwrap();
        assert_eq!((love.count, love.last), (8, 1));
        assert_eq!(
            love.page(1).unwrap().collect::<Vec<_>>(),
            [0, 12, 24, 36, 60, 72, 84, 96]
        );
        for i in love.page(1).unwrap() {
            assert_eq!(tags(i)[0], "love");
        }
        let big = Listing::tagged(1000, "books").unwrap();
        assert_eq!((big.count, big.last), (30, 3));
        assert!(Listing::tagged(10, "nope").is_none());
    }
}
