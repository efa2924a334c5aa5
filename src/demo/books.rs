//! `qpipe demo-site --site books`: a small books.toscrape.com look-alike.
//! 50 books, 20 a page as on the real site: `/` and `/catalogue/page-N.html`
//! list `article.product_pod`s (relative links, like the real site's), and
//! each book has `/catalogue/<slug>_<id>/index.html` with its price, stock
//! count, description and product table.

use super::{esc, Reply, Request, Site};
use std::fmt::Write;

/// Books in the catalogue.
pub const BOOKS: u64 = 50;
/// Books per list page.
pub const PER_PAGE: u64 = 20;
const ADJECTIVES: [&str; 10] = [
    "Silent", "Hidden", "Last", "Broken", "Golden", "Quiet", "Wild", "Burning", "Secret", "Little",
];
const NOUNS: [&str; 5] = ["Garden", "Harbour", "Kingdom", "Letters", "Stars"];
const RATINGS: [&str; 5] = ["One", "Two", "Three", "Four", "Five"];

/// The books site (it has no state).
pub struct Books;

/// One book of the catalogue.
struct Book {
    id: u64,
    title: String,
    price: String,
    rating: &'static str,
    stock: u64,
}

impl Book {
    /// Book `k` (0-based); ids count down from 1000 as on the real site.
    fn nth(k: u64) -> Book {
        let mut title = format!(
            "The {} {}",
            ADJECTIVES[(k % 10) as usize],
            NOUNS[(k / 10) as usize % 5]
        );
        if k % 7 == 3 {
            title.push_str(" & Other Stories of the Sea");
        }
        Book {
            id: 1000 - k,
            title,
            price: format!("£{}.{:02}", 10 + (k * 37) % 50, (k * 53) % 100),
            rating: RATINGS[((k * 3) % 5) as usize],
            stock: (k * 7) % 22 + 1,
        }
    }

    /// `the-little-stars_960`: the directory under `catalogue/`.
    fn dir(&self) -> String {
        let slug = self
            .title
            .to_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        format!("{slug}_{}", self.id)
    }

    /// The list's shortened title: four words, then ` ...` (Django's truncatewords).
    fn short_title(&self) -> String {
        let words: Vec<&str> = self.title.split_whitespace().collect();
        if words.len() > 4 {
            format!("{} ...", words[..4].join(" "))
        } else {
            self.title.clone()
        }
    }

    fn upc(&self) -> String {
        format!("{:016x}", xxhash_rust::xxh3::xxh3_64(self.title.as_bytes()))
    }
}

fn frame(title: &str, root: &str, main: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en-us\" class=\"no-js\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title} | Books to Scrape - Sandbox</title>\n</head>\n<body id=\"default\" class=\"default\">\n\
         <header class=\"header container-fluid\"><div class=\"page_inner\"><div class=\"row\">\
         <div class=\"col-sm-8 h1\"><a href=\"{root}index.html\">Books to Scrape</a><small> We love being scraped!</small>\
         </div></div></div></header>\n<div class=\"container-fluid page\"><div class=\"page_inner\">\n{main}</div></div>\n\
         <footer class=\"footer container-fluid\"><p>qpipe demo site</p></footer>\n</body>\n</html>\n"
    )
}

fn star_rating(rating: &str) -> String {
    format!(
        "<p class=\"star-rating {rating}\">\n{}</p>\n",
        "    <i class=\"icon-star\"></i>\n".repeat(5)
    )
}

/// List page `p`; `root` is `""` for `/` and `../` under `catalogue/`.
fn list_page(p: u64, root: &str) -> Option<String> {
    let last = BOOKS.div_ceil(PER_PAGE);
    if !(1..=last).contains(&p) {
        return None;
    }
    let (first, end) = ((p - 1) * PER_PAGE, (p * PER_PAGE).min(BOOKS));
    // Links are relative to the page, as on the real site.
    let cat = if root.is_empty() { "catalogue/" } else { "" };
    let mut m = format!(
        "<ul class=\"breadcrumb\"><li><a href=\"{root}index.html\">Home</a></li><li class=\"active\">All products</li></ul>\n\
         <div class=\"page-header action\"><h1>All products</h1></div>\n\
         <form class=\"form-horizontal\"><strong>{BOOKS}</strong> results - showing <strong>{}</strong> to <strong>{end}</strong>.</form>\n\
         <section><div><ol class=\"row\">\n",
        first + 1
    );
    for k in first..end {
        let b = Book::nth(k);
        let href = format!("{cat}{}/index.html", b.dir());
        let _ = write!(
            m,
            "<li class=\"col-xs-6 col-sm-4 col-md-3 col-lg-3\">\n<article class=\"product_pod\">\n\
             <div class=\"image_container\"><a href=\"{href}\"><img src=\"{root}media/{}.jpg\" alt=\"{}\" class=\"thumbnail\"></a></div>\n\
             {}<h3><a href=\"{href}\" title=\"{}\">{}</a></h3>\n\
             <div class=\"product_price\">\n<p class=\"price_color\">{}</p>\n\
             <p class=\"instock availability\">\n    <i class=\"icon-ok\"></i>\n        In stock\n</p>\n</div>\n\
             </article>\n</li>\n",
            b.id,
            esc(&b.title),
            star_rating(b.rating),
            esc(&b.title),
            esc(&b.short_title()),
            b.price
        );
    }
    m.push_str("</ol>\n<div><ul class=\"pager\">\n");
    if p > 1 {
        let _ = writeln!(
            m,
            "<li class=\"previous\"><a href=\"{cat}page-{}.html\">previous</a></li>",
            p - 1
        );
    }
    let _ = writeln!(m, "<li class=\"current\">Page {p} of {last}</li>");
    if p < last {
        let _ = writeln!(
            m,
            "<li class=\"next\"><a href=\"{cat}page-{}.html\">next</a></li>",
            p + 1
        );
    }
    m.push_str("</ul></div>\n</div></section>\n");
    Some(frame("All products", root, &m))
}

fn detail_page(dir: &str) -> Option<String> {
    let id: u64 = dir.rsplit_once('_')?.1.parse().ok()?;
    let k = 1000u64.checked_sub(id).filter(|k| *k < BOOKS)?;
    let b = Book::nth(k);
    if b.dir() != dir {
        return None;
    }
    let (title, stock) = (esc(&b.title), format!("In stock ({} available)", b.stock));
    let rows = [
        ("UPC", b.upc()),
        ("Product Type", "Books".to_string()),
        ("Price (excl. tax)", b.price.clone()),
        ("Price (incl. tax)", b.price.clone()),
        ("Tax", "£0.00".to_string()),
        ("Availability", stock.clone()),
        ("Number of reviews", "0".to_string()),
    ];
    let mut table = String::new();
    for (th, td) in rows {
        let _ = writeln!(table, "<tr><th>{th}</th><td>{td}</td></tr>");
    }
    let main = format!(
        "<ul class=\"breadcrumb\"><li><a href=\"../../index.html\">Home</a></li><li class=\"active\">{title}</li></ul>\n\
         <article class=\"product_page\">\n<div class=\"row\"><div class=\"col-sm-6 product_main\">\n<h1>{title}</h1>\n\
         <p class=\"price_color\">{}</p>\n<p class=\"instock availability\">\n    <i class=\"icon-ok\"></i>\n    {stock}\n</p>\n{}\
         </div></div>\n<div id=\"product_description\" class=\"sub-header\"><h2>Product Description</h2></div>\n\
         <p>{title} is book {} of the {BOOKS} in the qpipe demo catalogue &amp; ships at once.</p>\n\
         <div class=\"sub-header\"><h2>Product Information</h2></div>\n<table class=\"table table-striped\">\n{table}</table>\n</article>\n",
        b.price,
        star_rating(b.rating),
        k + 1
    );
    Some(frame(&title, "../../", &main))
}

impl Site for Books {
    fn answer(&self, req: &Request) -> Reply {
        if !matches!(req.method, "GET" | "HEAD") {
            return Reply::text(405, "method not allowed\n");
        }
        let page = match req.route() {
            "/" | "/index.html" => list_page(1, ""),
            route => match route.strip_prefix("/catalogue/") {
                Some(rest) => match rest.strip_suffix("/index.html") {
                    Some(dir) => detail_page(dir),
                    None => rest
                        .strip_prefix("page-")
                        .and_then(|r| r.strip_suffix(".html"))
                        .and_then(|n| n.parse().ok())
                        .and_then(|p| list_page(p, "../")),
                },
                None => None,
            },
        };
        page.map_or_else(
            || Reply {
                status: 404,
                ..Reply::html(frame("Not found", "/", "<h1>404 Not Found</h1>\n"))
            },
            Reply::html,
        )
    }

    fn paths(&self) -> Box<dyn Iterator<Item = String> + '_> {
        let lists = (1..=BOOKS.div_ceil(PER_PAGE)).map(|p| format!("/catalogue/page-{p}.html"));
        let books = (0..BOOKS).map(|k| format!("/catalogue/{}/index.html", Book::nth(k).dir()));
        Box::new(std::iter::once("/".to_string()).chain(lists).chain(books))
    }

    fn describe(&self) -> String {
        format!("books demo site with {BOOKS} books")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> (u16, String) {
        let r = Books.answer(&Request::get(path));
        (r.status, String::from_utf8(r.body).unwrap())
    }

    #[test]
    fn fifty_books_over_three_pages() {
        let (_, home) = get("/");
        assert_eq!(home.matches("<article class=\"product_pod\">").count(), 20);
        assert!(home.contains("<li class=\"next\"><a href=\"catalogue/page-2.html\">next</a></li>"));
        assert!(home.contains(
            "<h3><a href=\"catalogue/the-silent-garden_1000/index.html\" title=\"The Silent Garden\">The Silent Garden</a></h3>"
        ));
        assert!(home.contains("<p class=\"price_color\">£10.00</p>"));
        let (_, p3) = get("/catalogue/page-3.html");
        assert_eq!(p3.matches("<article class=\"product_pod\">").count(), 10);
        assert!(!p3.contains("class=\"next\""));
        assert!(p3.contains("<a href=\"page-2.html\">previous</a>"));
        assert_eq!(get("/catalogue/page-4.html").0, 404);
        assert_eq!(get("/catalogue/page-0.html").0, 404);
        let paths: Vec<String> = Books.paths().collect();
        assert_eq!(paths.len(), 1 + 3 + 50);
        for p in &paths {
            assert_eq!(get(p).0, 200, "{p}");
        }
    }

    #[test]
    fn detail_pages_have_the_real_sites_fields() {
        let b = Book::nth(3);
        assert_eq!(b.title, "The Broken Garden & Other Stories of the Sea");
        assert_eq!(b.short_title(), "The Broken Garden & ...");
        let (status, page) = get(&format!("/catalogue/{}/index.html", b.dir()));
        assert_eq!(status, 200);
        assert!(page.contains("<h1>The Broken Garden &amp; Other Stories of the Sea</h1>"));
        assert!(page.contains("In stock (22 available)"));
        assert!(page.contains("<tr><th>UPC</th><td>"));
        assert!(page.contains("<p class=\"star-rating Five\">"));
        assert_eq!(get("/catalogue/the-silent-garden_999/index.html").0, 404);
        assert_eq!(get("/catalogue/x_99999999999999999999/index.html").0, 404);
    }
}
