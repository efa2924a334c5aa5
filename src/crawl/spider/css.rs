//! CSS selectors as specs write them: compiled once, and a bad one
//! explained in one clean line (the spec's keys and the login's form and
//! error selectors all go through here).

use scraper::Selector;

/// Compiles a CSS selector; the error is one clean line.
pub fn compile(css: &str) -> Result<Selector, String> {
    Selector::parse(css).map_err(|e| {
        // Some parser errors span lines and ask to be reported; keep one clean line.
        let why: Vec<String> = e
            .to_string()
            .lines()
            .filter(|l| !l.contains("Please report"))
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        format!(
            "invalid CSS selector {css:?}: {} (check the selector syntax)",
            why.join("; ")
        )
    })
}
