//! The JSON variants: `/api/quotes?page=N[&tag=T]`, shaped like the app's
//! Flask `jsonify` (sorted keys, two-space indent), and `/js/page/N/`, whose
//! quotes sit in a `<script>` as `var data = [...]` (Python's
//! `json.dumps(indent=4)`, keys in the app's data order). Both escape
//! non-ASCII as `\uXXXX`, as Python does.

use super::data::{self, Listing};
use super::pages::{base, pager};
use super::{Reply, Request};
use serde_json::{json, Value};
use std::fmt::Write;

/// `/api/quotes`: one page of a list as JSON; past the end, no quotes and
/// `has_next` false. A `page` that is not a positive number is a 400.
pub fn quotes(pages: u64, top_ten: &[(&str, u64)], req: &Request) -> Reply {
    let page = match req.query("page").map(|p| p.parse::<u64>()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        _ => return Reply::text(400, "page must be a number from 1\n"),
    };
    let tag = req.query("tag");
    let list = match &tag {
        None => Some(Listing::all(pages)),
        Some(t) => Listing::tagged(pages, t),
    };
    let ids: Vec<u64> = list
        .as_ref()
        .and_then(|l| l.page(page).map(Iterator::collect))
        .unwrap_or_default();
    let has_next = list.is_some_and(|l| !ids.is_empty() && l.has_next(page));
    let body = json!({
        "has_next": has_next,
        "page": page,
        "quotes": ids.iter().map(|&i| api_quote(i)).collect::<Vec<_>>(),
        "tag": tag,
        "top_ten_tags": top_ten.iter().map(|(t, c)| json!([t, c])).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string_pretty(&body).unwrap_or_default();
    Reply::ok("application/json", ascii(&text) + "\n")
}

/// Quote `i` as the API has it: keys sorted, as `jsonify` sorts them.
fn api_quote(i: u64) -> Value {
    let a = data::author_index(i);
    json!({
        "author": {
            "goodreads_link": data::goodreads_link(a),
            "name": data::AUTHORS[a].0,
            "slug": data::slug(data::AUTHORS[a].0),
        },
        "tags": data::tags(i),
        "text": data::quote_text(i),
    })
}

/// Quote `i` as `/js/` has it: keys in the app's data order (slug added last).
fn js_quote(i: u64) -> Value {
    let a = data::author_index(i);
    json!({
        "tags": data::tags(i),
        "author": {
            "name": data::AUTHORS[a].0,
            "goodreads_link": data::goodreads_link(a),
            "slug": data::slug(data::AUTHORS[a].0),
        },
        "text": data::quote_text(i),
    })
}

/// The JSON of a `/js/` page's quotes, as `json.dumps(quotes, indent=4)`.
pub fn js_data(ids: impl Iterator<Item = u64>) -> String {
    let quotes: Vec<Value> = ids.map(js_quote).collect();
    let mut out = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
    let _ = serde::Serialize::serialize(&quotes, &mut ser);
    ascii(&String::from_utf8_lossy(&out))
}

/// `/js/page/N/`, or `None` past the end.
pub fn js_page(pages: u64, p: u64) -> Option<String> {
    let list = Listing::all(pages);
    let data = js_data(list.page(p)?);
    let mut content = String::with_capacity(data.len() + 1024);
    let _ = write!(
        content,
        "<script src=\"/static/jquery.js\"></script>\n<script>\n    var data = {data};\n\
         \x20   for (var i in data) {{\n\
         \x20       var d = data[i];\n\
         \x20       var tags = $.map(d['tags'], function(t) {{\n\
         \x20           return \"<a class='tag'>\" + t + \"</a>\";\n\
         \x20       }}).join(\" \");\n\
         \x20       document.write(\"<div class='quote'><span>\" + d['text'] + \"</span><small>\" + d['author']['name'] + \"</small><div class='tags'>Tags: \" + tags + \"</div></div>\");\n\
         \x20   }}\n</script>\n"
    );
    pager(&mut content, "/js", p, list.last);
    Some(base(&content))
}

/// JSON text with every non-ASCII character written `\uXXXX` (UTF-16 units,
/// lower-case hex), as Python's `ensure_ascii`. Serialized JSON holds
/// non-ASCII only inside strings, so this cannot break its syntax.
fn ascii(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + 64);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{u:04x}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(path: &str) -> Value {
        let top = data::top_ten_tags(100);
        let reply = quotes(10, &top, &Request::get(path));
        assert_eq!(
            (reply.status, reply.content_type),
            (200, "application/json")
        );
        serde_json::from_slice(&reply.body).unwrap()
    }

    #[test]
    fn api_pages_have_the_apps_shape() {
        let v = api("/api/quotes?page=2");
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["has_next", "page", "quotes", "tag", "top_ten_tags"]);
        assert_eq!(
            (v["has_next"].as_bool(), v["page"].as_u64()),
            (Some(true), Some(2))
        );
        assert_eq!(v["tag"], Value::Null);
        assert_eq!(v["quotes"].as_array().unwrap().len(), 10);
        assert_eq!(v["top_ten_tags"][0], json!(["inspirational", 11]));
        let q = &v["quotes"][0];
        assert_eq!(q["text"], data::quote_text(10));
        assert_eq!(q["author"]["name"], data::author(10));
        assert_eq!(q["author"]["slug"], data::slug(data::author(10)));
        assert_eq!(q["tags"], json!(data::tags(10)));
        let keys: Vec<&str> = q.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys, ["author", "tags", "text"]);
        let raw = String::from_utf8(quotes(10, &[], &Request::get("/api/quotes")).body).unwrap();
        assert!(raw.is_ascii() && raw.contains("\\u201c"), "{raw}");
    }

    #[test]
    fn api_ends_and_tags() {
        assert_eq!(api("/api/quotes?page=10")["has_next"], json!(false));
        let past = api("/api/quotes?page=11");
        assert_eq!(
            (past["has_next"].clone(), past["quotes"].clone()),
            (json!(false), json!([]))
        );
        let love = api("/api/quotes?tag=love");
        assert_eq!(love["tag"], "love");
        assert_eq!(love["quotes"].as_array().unwrap().len(), 8);
        assert_eq!(love["has_next"], json!(false));
        let none = api("/api/quotes?tag=%3Cnope%3E");
        assert_eq!(
            (none["tag"].clone(), none["quotes"].clone()),
            (json!("<nope>"), json!([]))
        );
        for bad in [
            "/api/quotes?page=0",
            "/api/quotes?page=x",
            "/api/quotes?page=-1",
        ] {
            assert_eq!(quotes(10, &[], &Request::get(bad)).status, 400, "{bad}");
        }
        let huge = api("/api/quotes?page=18446744073709551615");
        assert_eq!(huge["quotes"], json!([]));
    }

    #[test]
    fn js_data_is_python_json_dumps_indent_4() {
        let text = js_data([12].into_iter());
        let want = r#"[
    {
        "tags": [
            "love",
            "simile"
        ],
        "author": {
            "name": "Andr\u00e9 Gide",
            "goodreads_link": "/author/show/7617.Andr_Gide",
            "slug": "Andr\u00e9-Gide"
        },
        "text": "\u201cSilence forgives river of the courage story thread.\u201d"
    }
]"#;
        assert_eq!(text, want);
        let page = js_page(10, 2).unwrap();
        assert!(page.contains("    var data = [\n    {\n"));
        assert!(page.contains("<li class=\"next\"><a href=\"/js/page/3/\">"));
        assert!(page.contains("<li class=\"previous\"><a href=\"/js/page/1/\">"));
        assert!(js_page(10, 11).is_none());
        let all: Value = serde_json::from_str(&js_data(0..10)).unwrap();
        assert_eq!(all.as_array().unwrap().len(), 10);
        assert_eq!(all[3]["text"], data::quote_text(3));
    }
}
