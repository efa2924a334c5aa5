//! The quotes site's default HTML pages: list, tag, author and `/pages/`
//! pages. Logged out they are byte for byte what they have always been; a
//! logged-in visitor also sees each author's Goodreads link and a Logout link.

use super::data::{self, Listing, TAGS};
use super::esc;
use super::padding;
use std::fmt::Write;

fn quote_html(out: &mut String, i: u64, logged_in: bool) {
    let a = data::author(i);
    let tags = data::tags(i);
    let goodreads = if logged_in {
        format!(
            " <a href=\"http://goodreads.com{}\">(Goodreads page)</a>",
            data::goodreads_link(data::author_index(i))
        )
    } else {
        String::new()
    };
    let _ = write!(
        out,
        "<div class=\"quote\" itemscope itemtype=\"http://schema.org/CreativeWork\">\n\
         <span class=\"text\" itemprop=\"text\">{}</span>\n\
         <span>by <small class=\"author\" itemprop=\"author\">{}</small>\n\
         <a href=\"/author/{}/\">(about)</a>{goodreads}</span>\n\
         <div class=\"tags\">Tags:\n<meta class=\"keywords\" itemprop=\"keywords\" content=\"{}\" />\n",
        esc(&data::quote_text(i)),
        esc(a),
        data::slug(a),
        tags.join(",")
    );
    for t in tags {
        let _ = writeln!(out, "<a class=\"tag\" href=\"/tag/{t}/page/1/\">{t}</a>");
    }
    out.push_str("</div>\n</div>\n");
}

/// The page around `main`: header, the top-ten-tags column and footer.
pub fn layout(title: &str, main: &str, logged_in: bool) -> String {
    let mut side = String::new();
    for (k, t) in TAGS.iter().enumerate().take(10) {
        let _ = writeln!(
            side,
            "<span class=\"tag-item\"><a class=\"tag\" style=\"font-size: {}px\" href=\"/tag/{t}/\">{t}</a></span>",
            28 - 2 * k
        );
    }
    // Logged out there is no Login link, so the default pages stay as they were.
    let account = if logged_in {
        "<div class=\"col-md-4\"><p><a href=\"/logout\">Logout</a></p></div>"
    } else {
        ""
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"UTF-8\">\n<title>{title}</title>\n</head>\n\
         <body>\n<div class=\"container\">\n<div class=\"row header-box\"><div class=\"col-md-8\">\
         <h1><a href=\"/\" style=\"text-decoration: none\">Quotes to Scrape</a></h1></div>{account}</div>\n\
         <div class=\"row\">\n<div class=\"col-md-8\">\n{main}</div>\n\
         <div class=\"col-md-4 tags-box\">\n<h2>Top Ten tags</h2>\n{side}</div>\n</div>\n</div>\n\
         <footer class=\"footer\"><p>qpipe demo site</p></footer>\n</body>\n</html>\n"
    )
}

/// The `ul.pager` with `li.previous` and `li.next` links to `{prefix}/page/N/`.
pub fn pager(out: &mut String, prefix: &str, p: u64, last: u64) {
    out.push_str("<nav>\n<ul class=\"pager\">\n");
    if p > 1 {
        let _ = writeln!(
            out,
            "<li class=\"previous\"><a href=\"{prefix}/page/{}/\"><span aria-hidden=\"true\">&larr;</span> Previous</a></li>",
            p - 1
        );
    }
    if p < last {
        let _ = writeln!(
            out,
            "<li class=\"next\"><a href=\"{prefix}/page/{}/\">Next <span aria-hidden=\"true\">&rarr;</span></a></li>",
            p + 1
        );
    }
    out.push_str("</ul>\n</nav>\n");
}

/// Page `p` of a list (`/page/N/` or `/tag/T/page/N/`), or `None` past its
/// end, with `pad_kb` KiB of padding around the quotes (0: none).
pub fn list_page(list: &Listing, p: u64, logged_in: bool, pad_kb: usize) -> Option<String> {
    let ids = list.page(p)?;
    let seed = list.tag.map_or(0, |t| t.len() as u64 * 1_000_003) + p;
    let pad = padding::pad(pad_kb, seed);
    let mut main = String::with_capacity(8 * 1024 + pad_kb * 1024);
    main.push_str(&pad.top);
    if let Some(t) = list.tag {
        let _ = writeln!(
            main,
            "<h3>Viewing tag: <a href=\"/tag/{t}/page/1/\">{t}</a></h3>"
        );
    }
    for i in ids {
        quote_html(&mut main, i, logged_in);
    }
    let (prefix, title) = match list.tag {
        Some(t) => (format!("/tag/{t}"), format!("Quotes to Scrape: {t}")),
        None => (String::new(), "Quotes to Scrape".to_string()),
    };
    pager(&mut main, &prefix, p, list.last);
    main.push_str(&pad.bottom);
    Some(layout(&title, &main, logged_in))
}

/// `/pages/`: a link to every list page, so a crawler can fan out at once.
pub fn all_pages(pages: u64) -> String {
    let mut main = String::with_capacity(40 * pages as usize + 256);
    main.push_str("<h2>All pages</h2>\n<ul class=\"sitemap\">\n");
    for p in 1..=pages {
        let _ = writeln!(main, "<li><a href=\"/page/{p}/\">Page {p}</a></li>");
    }
    main.push_str("</ul>\n");
    layout("Quotes to Scrape: all pages", &main, false)
}

/// `/author/<slug>/`: the app's `author.html`, with a birth date, a place and
/// a description that differ per author (the description keeps the
/// template's surrounding whitespace, as on the live site).
pub fn author_page(name: &str, logged_in: bool) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const PLACES: [&str; 8] = [
        "Ulm, Germany",
        "Steventon Rectory, Hampshire, The United Kingdom",
        "The United States",
        "Yate, South Gloucestershire, England, The United Kingdom",
        "Paris, France",
        "Milan, Ohio, The United States",
        "Copenhagen, Denmark",
        "Nine Mile, Saint Ann, Jamaica",
    ];
    let i = data::AUTHORS.iter().position(|a| a.0 == name).unwrap_or(0);
    let main = format!(
        "<div class=\"author-details\">\n<h3 class=\"author-title\">{name}</h3>\n\
         <p><strong>Born:</strong> <span class=\"author-born-date\">{} {}, {}</span> \
         <span class=\"author-born-location\">in {}</span></p>\n\
         <p><strong>Description:</strong></p>\n\
         <div class=\"author-description\">\n        {name} is author number {} of the qpipe demo site.\n        Every quote here is generated.    \n</div>\n</div>\n",
        MONTHS[i % 12],
        1 + (i * 7) % 28,
        1800 + i * 9,
        PLACES[i % PLACES.len()],
        i + 1,
        name = esc(name),
    );
    layout(
        &format!("Quotes to Scrape: {}", esc(name)),
        &main,
        logged_in,
    )
}

/// The app's own `base.html` frame (header with a Login link, no tags
/// column), which the variants (`/js/`, `/tableful/`, `/login`) use.
pub fn base(content: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"UTF-8\">\n<title>Quotes to Scrape</title>\n</head>\n\
         <body>\n<div class=\"container\">\n<div class=\"row header-box\">\n\
         <div class=\"col-md-8\"><h1><a href=\"/\" style=\"text-decoration: none\">Quotes to Scrape</a></h1></div>\n\
         <div class=\"col-md-4\"><p><a href=\"/login\">Login</a></p></div>\n</div>\n\
         {content}</div>\n<footer class=\"footer\"><p>qpipe demo site</p></footer>\n</body>\n</html>\n"
    )
}

/// The 404 page.
pub fn not_found() -> String {
    layout(
        "Not found",
        "<h2>404 Not Found</h2>\n<p>No such page.</p>\n",
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_in_pages_add_goodreads_and_logout_links() {
        let list = Listing::all(10);
        let out = list_page(&list, 1, false, 0).unwrap();
        let ins = list_page(&list, 1, true, 0).unwrap();
        assert!(!out.contains("Goodreads") && !out.contains("/logout"));
        assert_eq!(ins.matches("(Goodreads page)</a></span>").count(), 10);
        assert!(ins.contains(
            "<a href=\"/author/Albert-Einstein/\">(about)</a> \
             <a href=\"http://goodreads.com/author/show/9810.Albert_Einstein\">(Goodreads page)</a></span>"
        ));
        assert!(ins.contains("<a href=\"/logout\">Logout</a>"));
        // Only those two differences.
        let stripped = ins.replace(
            "<div class=\"col-md-4\"><p><a href=\"/logout\">Logout</a></p></div>",
            "",
        );
        let stripped = regex_free_strip(&stripped);
        assert_eq!(stripped, out);
    }

    /// Drops every ` <a href="http://goodreads.com...">(Goodreads page)</a>`.
    fn regex_free_strip(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(at) = rest.find(" <a href=\"http://goodreads.com") {
            out.push_str(&rest[..at]);
            let end = rest[at..].find("(Goodreads page)</a>").unwrap() + at;
            rest = &rest[end + "(Goodreads page)</a>".len()..];
        }
        out.push_str(rest);
        out
    }
}
