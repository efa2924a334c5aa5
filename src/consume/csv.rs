//! `--format csv --fields a,b,c`: each item (a JSON object) becomes one CSV
//! row with those fields in that order (RFC 4180 quoting). A string is
//! written as its text, a number or boolean as its JSON text, null or a
//! missing field as an empty cell, and a list or object as its JSON text
//! in the cell. An item that is not an object has no fields: it is a dead
//! letter, never a row of empty cells.

use serde_json::Value;

/// The header row (without its newline).
pub fn header(fields: &[String]) -> Vec<u8> {
    let mut row = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            row.push(b',');
        }
        cell(&mut row, f);
    }
    row
}

/// Why `item` cannot be a row, if it cannot (it is valid JSON already).
pub fn verdict(item: &[u8]) -> Result<(), String> {
    match item.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(()),
        _ => Err("not a JSON object (--format csv writes the fields of objects)".into()),
    }
}

/// The row for `item`, a JSON object (checked by `verdict`).
pub fn row(item: &[u8], fields: &[String]) -> Vec<u8> {
    let v: Value = serde_json::from_slice(item).unwrap_or(Value::Null);
    let mut row = Vec::with_capacity(item.len());
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            row.push(b',');
        }
        match v.get(f) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) => cell(&mut row, s),
            Some(other) => cell(&mut row, &other.to_string()),
        }
    }
    row
}

/// One cell, quoted when it holds a comma, quote, line break or outer space.
fn cell(row: &mut Vec<u8>, text: &str) {
    let quote =
        text.contains([',', '"', '\n', '\r']) || text.starts_with(' ') || text.ends_with(' ');
    if !quote {
        row.extend_from_slice(text.as_bytes());
        return;
    }
    row.push(b'"');
    for b in text.bytes() {
        if b == b'"' {
            row.push(b'"');
        }
        row.push(b);
    }
    row.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_quote_and_render_every_kind_of_value() {
        let fields: Vec<String> = ["quote", "n", "tags", "missing", "nil", "ok"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let item = br#"{"quote":"He said \"hi\", then\nleft","n":1.5,"tags":["a","b"],"nil":null,"ok":true}"#;
        assert_eq!(
            String::from_utf8(row(item, &fields)).unwrap(),
            "\"He said \"\"hi\"\", then\nleft\",1.5,\"[\"\"a\"\",\"\"b\"\"]\",,,true"
        );
        assert_eq!(
            String::from_utf8(header(&fields)).unwrap(),
            "quote,n,tags,missing,nil,ok"
        );
        assert!(
            verdict(b" [1,2]").is_err() && verdict(b"\"s\"").is_err() && verdict(b"{}").is_ok()
        );
    }
}
