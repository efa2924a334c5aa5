//! `/search.aspx` and `POST /filter.aspx`: the app's ASP.NET-style form. The
//! `__VIEWSTATE` hidden field (base64 of a random id and the author names,
//! plus each chosen tag) must come back with every post; an author not in it
//! sends the visitor back to `/search.aspx`. Results are shaped like the live
//! site's: `div.quote` with `span.content`, `span.author` and `span.tag`.
//!
//! The index covers the first `INDEXED` quotes, so a huge `--pages` costs no
//! more per request than the default site.

use super::data;
use super::pages::base;
use super::{esc, Reply, Request};
use base64::{engine::general_purpose::STANDARD, Engine};
use std::fmt::Write;

/// Quotes the search covers (the first 100 list pages).
pub const INDEXED: u64 = 1000;

/// Authors (first seen first) with their tags (first seen first) and, per
/// tag, the texts of their quotes with it: the app's `QUOTES_BY_AUTHOR_AND_TAGS`.
type Index = Vec<(&'static str, Vec<(&'static str, Vec<String>)>)>;

fn index(pages: u64) -> Index {
    let mut idx: Index = Vec::new();
    for i in 0..(pages * data::PER_PAGE).min(INDEXED) {
        for tag in data::tags(i) {
            let name = data::author(i);
            let k = match idx.iter().position(|(a, _)| *a == name) {
                Some(k) => k,
                None => {
                    idx.push((name, Vec::new()));
                    idx.len() - 1
                }
            };
            let tags = &mut idx[k].1;
            match tags.iter_mut().find(|(t, _)| *t == tag) {
                Some((_, texts)) => texts.push(data::quote_text(i)),
                None => tags.push((tag, vec![data::quote_text(i)])),
            }
        }
    }
    idx
}

/// `GET /search.aspx`: the form with a fresh ViewState.
pub fn form(pages: u64) -> Reply {
    let idx = index(pages);
    let authors: Vec<&str> = idx.iter().map(|(a, _)| *a).collect();
    let state = format!("{:032x},{}", fastrand::u128(..), authors.join(","));
    Reply::html(page(&idx, None, None, &STANDARD.encode(state)))
}

/// `POST /filter.aspx`: the chosen author's tags, and with a tag its quotes.
pub fn filter(pages: u64, req: &Request) -> Reply {
    let (mut author, mut tag, mut state) = (None, None, String::new());
    for (k, v) in url::form_urlencoded::parse(req.body) {
        match k.as_ref() {
            "author" => author = Some(v.into_owned()),
            "tag" => tag = Some(v.into_owned()).filter(|t| !t.is_empty()),
            "__VIEWSTATE" => state = v.into_owned(),
            _ => {}
        }
    }
    let decoded = STANDARD.decode(state.trim()).unwrap_or_default();
    let mut fields: Vec<String> = String::from_utf8_lossy(&decoded)
        .split(',')
        .map(String::from)
        .collect();
    let Some(author) = author.filter(|a| fields.contains(a)) else {
        return Reply::redirect("/search.aspx");
    };
    if let Some(t) = &tag {
        fields.push(t.clone());
    }
    let idx = index(pages);
    let state = STANDARD.encode(fields.join(","));
    Reply::html(page(&idx, Some(&author), tag.as_deref(), &state))
}

fn page(idx: &Index, author: Option<&str>, tag: Option<&str>, state: &str) -> String {
    let selected = |on: bool| if on { " selected" } else { "" };
    let mut authors = String::new();
    for (a, _) in idx {
        let _ = writeln!(
            authors,
            "<option value=\"{0}\"{1}>\n{0}\n</option>",
            esc(a),
            selected(author == Some(*a))
        );
    }
    let tags_of = idx.iter().find(|(a, _)| Some(*a) == author).map(|(_, t)| t);
    let mut tags = String::new();
    for (t, _) in tags_of.into_iter().flatten() {
        let _ = writeln!(
            tags,
            "<option value=\"{t}\"{}>\n{t}\n</option>",
            selected(tag == Some(*t))
        );
    }
    let quotes = tags_of
        .and_then(|ts| ts.iter().find(|(t, _)| Some(*t) == tag))
        .map(|(_, q)| q.as_slice())
        .unwrap_or_default();
    let mut results = String::new();
    if !quotes.is_empty() {
        results.push_str("<h3>Results</h3>\n<hr />\n");
    }
    for q in quotes {
        let _ = write!(
            results,
            "<div class=\"quote\">\n<span class=\"content\">{}</span>\n<span class=\"author\">{}</span>\n\
             <span class=\"tag\">{}</span>\n</div>\n<hr />\n",
            esc(q),
            esc(author.unwrap_or_default()),
            tag.unwrap_or_default()
        );
    }
    base(&format!(
        "<hr>\n<form action=\"/filter.aspx\" method=\"post\" accept-charset=\"utf-8\" name=\"filterform\">\n\
         <div class=\"row\"><div class=\"col-md-4 form-group\">\n<label for=\"author\">Author</label>\n\
         <select class=\"form-control\" name=\"author\" onchange=\"__doPostBack()\">\n\
         <option value=\"\">----------</option>\n{authors}</select>\n</div></div>\n\
         <div class=\"row\"><div class=\"col-md-4 form-group\">\n<label for=\"tag\">Tag</label>\n\
         <select class=\"form-control\" name=\"tag\">\n<option value=\"\">----------</option>\n{tags}</select>\n</div></div>\n\
         <input name=\"submit_button\" type=\"submit\" value=\"Search\" class=\"btn btn-default\" />\n\
         <input type=\"hidden\" name=\"__VIEWSTATE\" value=\"{state}\">\n</form>\n\
         <div class=\"results\">\n{results}</div>\n\
         <script type=\"text/javascript\">\nvar theForm = document.forms['filterform'];\n\
         function __doPostBack() {{ theForm.submit(); }}\n</script>\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_of(html: &str) -> String {
        let at = html.find("name=\"__VIEWSTATE\" value=\"").unwrap() + 26;
        html[at..].split('"').next().unwrap().to_string()
    }

    fn post(body: &str) -> Reply {
        filter(
            10,
            &Request {
                method: "POST",
                body: body.as_bytes(),
                ..Request::get("/filter.aspx")
            },
        )
    }

    fn enc(s: &str) -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
    }

    #[test]
    fn every_author_and_tag_finds_its_quotes() {
        let idx = index(10);
        assert_eq!(idx.len(), 16);
        let pairs: usize = idx.iter().map(|(_, t)| t.len()).sum();
        let tagged: usize = idx.iter().flat_map(|(_, t)| t).map(|(_, q)| q.len()).sum();
        let want: usize = (0..100).map(|i| data::tags(i).len()).sum();
        assert_eq!(tagged, want);
        let first = String::from_utf8(form(10).body).unwrap();
        let state = state_of(&first);
        let (author, tags) = &idx[0];
        assert_eq!(*author, data::author(0));
        let body = format!("author={}&tag=&__VIEWSTATE={}", enc(author), enc(&state));
        let second = String::from_utf8(post(&body).body).unwrap();
        // Each select also has its empty "----------" option.
        assert_eq!(
            second.matches("<option value=\"").count(),
            2 + 16 + tags.len()
        );
        assert!(second.contains(&format!("<option value=\"{}\" selected>", esc(author))));
        let (tag, texts) = &tags[0];
        let body = format!(
            "author={}&tag={tag}&__VIEWSTATE={}",
            enc(author),
            enc(&state_of(&second))
        );
        let third = String::from_utf8(post(&body).body).unwrap();
        assert_eq!(third.matches("<div class=\"quote\">").count(), texts.len());
        assert!(third.contains(&format!(
            "<span class=\"content\">{}</span>",
            esc(&texts[0])
        )));
        assert!(third.contains(&format!("<span class=\"tag\">{tag}</span>")));
        let decoded = STANDARD.decode(state_of(&third)).unwrap();
        assert!(String::from_utf8(decoded)
            .unwrap()
            .ends_with(&format!(",{tag}")));
        // The default site: 104 (author, tag) pairs, 118 results in all.
        assert_eq!((pairs, tagged), (104, 118));
    }

    #[test]
    fn a_bad_viewstate_sends_back_to_the_form() {
        for body in [
            "",
            "author=Mark+Twain",
            "author=Mark+Twain&__VIEWSTATE=%%%",
            "author=Nobody&__VIEWSTATE=TWFyayBUd2Fpbg==",
        ] {
            let r = post(body);
            assert_eq!(r.status, 302, "{body}");
            assert!(r
                .headers
                .contains(&("Location", "/search.aspx".to_string())));
        }
        // "Mark Twain" alone, base64: accepted.
        assert_eq!(
            post("author=Mark+Twain&__VIEWSTATE=TWFyayBUd2Fpbg%3D%3D").status,
            200
        );
    }
}
