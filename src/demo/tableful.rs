//! `/tableful/`: the quotes in a table, as the app's `tableful.html` has
//! them. Each quote takes two rows: the first row's cell holds the text, then
//! ` Author: ` and the name; the next row holds `Tags:` and the tag links.
//! The last row holds the Previous and Next links (`td a`), as in the app.

use super::data::{self, Listing};
use super::esc;
use super::pages::base;
use std::fmt::Write;

/// Page `p` of `/tableful/` or `/tableful/tag/T/`, or `None` past the end.
pub fn page(list: &Listing, p: u64, top_ten: &[(&str, u64)]) -> Option<String> {
    let ids = list.page(p)?;
    let mut t = String::with_capacity(8 * 1024);
    t.push_str("<table>\n<tr>\n<td>\n");
    if let Some(tag) = list.tag {
        let _ = writeln!(
            t,
            "Viewing tag: <a href=\"/tableful/tag/{tag}/page/1/\">{tag}</a>"
        );
    }
    t.push_str(
        "</td>\n<td rowspan=\"5\" style=\"padding-left: 50px;\">\n\
         <div style=\"width: 200px; border:none;\" >\n</div>\n<h3>Top Ten tags</h3>\n",
    );
    for (tag, count) in top_ten {
        let _ = writeln!(
            t,
            "<a href=\"/tableful/tag/{tag}/page/1/\">{tag}</a> ({count}) <br />"
        );
    }
    t.push_str("</td>\n</tr>\n");
    for i in ids {
        let _ = write!(
            t,
            "<tr style=\"border-bottom: 0px; \">\n<td style=\"padding-top: 2em;\">{} Author: {}</td>\n</tr>\n\
             <tr>\n<td style=\"padding-bottom: 2em;\">Tags:\n",
            esc(&data::quote_text(i)),
            esc(data::author(i))
        );
        for tag in data::tags(i) {
            let _ = writeln!(t, "<a href=\"/tableful/tag/{tag}/page/1/\">{tag}</a>");
        }
        t.push_str("</td>\n</tr>\n");
    }
    let prefix = match list.tag {
        Some(tag) => format!("/tableful/tag/{tag}"),
        None => "/tableful".to_string(),
    };
    t.push_str("<tr>\n");
    if p > 1 {
        let _ = writeln!(
            t,
            "<td><a href=\"{prefix}/page/{}/\"><span aria-hidden=\"true\">&larr;</span> Previous</a></td>",
            p - 1
        );
    } else {
        t.push_str("<td></td>\n");
    }
    if list.has_next(p) {
        let _ = writeln!(
            t,
            "<td><a href=\"{prefix}/page/{}/\">Next <span aria-hidden=\"true\">&rarr;</span></a></td>",
            p + 1
        );
    }
    t.push_str("</tr>\n</table>\n");
    Some(base(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_quote_is_two_rows() {
        let top = data::top_ten_tags(100);
        let html = page(&Listing::all(10), 1, &top).unwrap();
        assert_eq!(html.matches("<td style=\"padding-top: 2em;\">").count(), 10);
        assert_eq!(
            html.matches("<td style=\"padding-bottom: 2em;\">Tags:")
                .count(),
            10
        );
        let first = format!(
            "<td style=\"padding-top: 2em;\">{} Author: {}</td>",
            esc(&data::quote_text(0)),
            esc(data::author(0))
        );
        assert!(html.contains(&first), "{html}");
        assert!(html.contains(
            "<a href=\"/tableful/tag/inspirational/page/1/\">inspirational</a> (11) <br />"
        ));
        assert!(html.contains("<td></td>\n<td><a href=\"/tableful/page/2/\">Next"));
        let last = page(&Listing::all(10), 10, &top).unwrap();
        assert!(last.contains("/tableful/page/9/\"><span aria-hidden=\"true\">&larr;"));
        assert!(!last.contains("Next"));
        assert!(page(&Listing::all(10), 11, &top).is_none());
        let love = Listing::tagged(10, "love").unwrap();
        let tagged = page(&love, 1, &top).unwrap();
        assert!(tagged.contains("Viewing tag: <a href=\"/tableful/tag/love/page/1/\">love</a>"));
        assert_eq!(tagged.matches("padding-top: 2em;").count(), 8);
    }
}
