//! Decoding a fetched body to text: by the Content-Type charset, else (HTML
//! only) a `<meta charset>` near the top, else UTF-8. The crawler and the
//! login step both read pages through here.

use crate::crawl::page::Kind;

/// Decodes by the Content-Type charset, else (HTML only) `<meta charset>`,
/// else UTF-8.
pub fn decode(bytes: &[u8], content_type: &str, kind: Kind) -> String {
    let meta = || (kind == Kind::Html).then(|| meta_charset(bytes)).flatten();
    let label = charset_param(content_type).or_else(meta);
    let encoding = label
        .and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes()))
        .unwrap_or(encoding_rs::UTF_8);
    encoding.decode_with_bom_removal(bytes).0.into_owned()
}

/// `decode`, keeping the buffer when it already is the UTF-8 text (the
/// usual case), instead of copying it.
pub fn decode_owned(bytes: Vec<u8>, content_type: &str, kind: Kind) -> String {
    let utf8 = |l: &str| encoding_rs::Encoding::for_label(l.as_bytes()) == Some(encoding_rs::UTF_8);
    let label = charset_param(content_type);
    let is_utf8 = match &label {
        Some(l) => utf8(l),
        None => kind != Kind::Html || meta_charset(&bytes).is_none_or(|l| utf8(&l)),
    };
    if is_utf8 && !bytes.starts_with(b"\xEF\xBB\xBF") {
        return String::from_utf8(bytes)
            .unwrap_or_else(|e| decode(e.as_bytes(), content_type, kind));
    }
    decode(&bytes, content_type, kind)
}

fn charset_param(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k.trim() == "charset").then(|| v.trim().trim_matches('"').to_string())
    })
}

/// `<meta charset="x">` or `<meta http-equiv content="...; charset=x">` in the first 1 KiB.
fn meta_charset(bytes: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(1024)]).to_ascii_lowercase();
    let at = head.find("charset=")? + "charset=".len();
    let rest = head[at..].trim_start_matches(['"', '\'']);
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))?;
    Some(rest[..end].to_string()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_by_header_then_meta_then_utf8() {
        let latin1 = b"<p>caf\xe9</p>";
        assert_eq!(
            decode(latin1, "text/html; charset=ISO-8859-1", Kind::Html),
            "<p>café</p>"
        );
        let meta = b"<meta charset=\"windows-1252\"><p>\x93hi\x94</p>";
        assert_eq!(
            decode(meta, "text/html", Kind::Html),
            "<meta charset=\"windows-1252\"><p>“hi”</p>"
        );
        let equiv =
            b"<meta http-equiv=\"Content-Type\" content=\"text/html; charset=iso-8859-1\">\xe9";
        assert!(decode(equiv, "text/html", Kind::Html).ends_with('é'));
        assert_eq!(decode("ünï".as_bytes(), "text/html", Kind::Html), "ünï");
        // A JSON body saying "charset=" is not a meta tag.
        let json = b"{\"a\":\"charset=latin1 \xc3\xa9\"}";
        assert_eq!(
            decode(json, "application/json", Kind::Json),
            "{\"a\":\"charset=latin1 é\"}"
        );
    }

    #[test]
    fn decoding_in_place_matches_decode() {
        let cases: [(&[u8], &str, Kind); 8] = [
            (
                b"<p>caf\xe9</p>",
                "text/html; charset=ISO-8859-1",
                Kind::Html,
            ),
            (
                b"<meta charset=\"windows-1252\"><p>\x93hi\x94</p>",
                "text/html",
                Kind::Html,
            ),
            ("<p>ünï</p>".as_bytes(), "text/html", Kind::Html),
            (
                "<p>ünï</p>".as_bytes(),
                "text/html; charset=utf-8",
                Kind::Html,
            ),
            (b"\xEF\xBB\xBF<p>bom</p>", "text/html", Kind::Html),
            (b"<p>bad \xff utf-8</p>", "text/html", Kind::Html),
            (b"\xFF\xFE<\x00p\x00>\x00", "text/html", Kind::Html),
            (
                b"{\"a\":\"charset=latin1 \xc3\xa9\"}",
                "application/json",
                Kind::Json,
            ),
        ];
        for (bytes, ct, kind) in cases {
            assert_eq!(
                decode_owned(bytes.to_vec(), ct, kind),
                decode(bytes, ct, kind)
            );
        }
    }
}
