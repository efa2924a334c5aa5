//! `--format csv --fields a,b,c`: each item (a JSON object) becomes one CSV
//! row with those fields in that order (RFC 4180 quoting). A string is
//! written as its text, a number or boolean as its JSON text, null or a
//! missing field as an empty cell, and a list or object as its JSON text
//! in the cell. An item that is not an object has no fields: it is a dead
//! letter, never a row of empty cells.

use serde_json::value::RawValue;
use std::collections::HashMap;

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
pub fn verdict(item: &[u8], fields: &[String]) -> Result<(), String> {
    row(item, fields).map(drop)
}

/// The row for `item`, a JSON object. Each cell is taken from the item's
/// own text: numbers keep their digits (`1.10`, `1e400`, 30-digit
/// integers), lists and objects their JSON. A string is decoded; one that
/// cannot be (a lone surrogate) makes the item a dead letter, as does an
/// item serde cannot read as an object at all.
pub fn row(item: &[u8], fields: &[String]) -> Result<Vec<u8>, String> {
    let map: HashMap<String, &RawValue> = serde_json::from_slice(item).map_err(|e| {
        format!("not a JSON object (--format csv writes the fields of objects): {e}")
    })?;
    let mut row = Vec::with_capacity(item.len());
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            row.push(b',');
        }
        let Some(raw) = map.get(f) else { continue };
        match raw.get() {
            "null" => {}
            text if text.starts_with('"') => {
                let s: String = serde_json::from_str(text)
                    .map_err(|e| format!("field {f:?} is not a readable string: {e}"))?;
                cell(&mut row, &s);
            }
            text => cell(&mut row, text),
        }
    }
    Ok(row)
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
    fn rows_quote_and_keep_every_kind_of_value() {
        let fields: Vec<String> = ["quote", "n", "tags", "missing", "nil", "ok"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let item = br#"{"quote":"He said \"hi\", then\nleft","n":1.50,"tags":["a","b"],"nil":null,"ok":true}"#;
        assert_eq!(
            String::from_utf8(row(item, &fields).unwrap()).unwrap(),
            "\"He said \"\"hi\"\", then\nleft\",1.50,\"[\"\"a\"\",\"\"b\"\"]\",,,true"
        );
        assert_eq!(
            String::from_utf8(header(&fields)).unwrap(),
            "quote,n,tags,missing,nil,ok"
        );
        assert_eq!(row(br#"{"n":1e400}"#, &fields).unwrap(), b",1e400,,,,");
        assert!(verdict(b" [1,2]", &fields).is_err());
        assert!(verdict(b"\"s\"", &fields).is_err());
        assert!(verdict(b"{}", &fields).is_ok());
        assert!(verdict(br#"{"quote":"\ud800x"}"#, &fields).is_err());
    }
}
