//! The Java `.properties` format as log4j 1.x reads it: `key=value`,
//! `key: value` or `key value`, `#` and `!` comments, lines continued with a
//! trailing backslash, and the escapes `\t \n \r \f \\ \uXXXX`. Every entry
//! keeps its file and line so that errors can point at them. Layers (the base
//! file, then the overrides) are merged key by key. Pure text processing: no
//! I/O, no knowledge of log4j's keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::error::{Location, Log4jError};

/// One `key=value` entry and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, unescaped.
    pub key: String,
    /// The value, unescaped, leading white space removed.
    pub value: String,
    /// File and line of the key.
    pub at: Location,
}

/// Parses one properties file; `file` names it in locations and errors.
///
/// # Errors
/// Every malformed `\u` escape, with its line.
pub fn parse(file: &str, text: &str) -> Result<Vec<Entry>, Vec<Log4jError>> {
    let file: Arc<str> = Arc::from(file);
    let mut entries = Vec::new();
    let mut errors = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let first = line.trim_start();
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines: an odd number of trailing backslashes.
        let mut logical = first.to_owned();
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let at = Location { file: file.clone(), line: index + 1, key: String::new() };
        let (raw_key, raw_value) = split_key_value(&logical);
        match (unescape(raw_key), unescape(raw_value)) {
            (Ok(key), Ok(value)) => entries.push(Entry { at: Location { key: key.clone(), ..at }, key, value }),
            (Err(message), _) | (_, Err(message)) => errors.push(Log4jError::new(at, message)),
        }
    }
    if errors.is_empty() { Ok(entries) } else { Err(errors) }
}

/// Merges layers in order: a key of a later layer replaces the same key of
/// an earlier one (and, within a file, the last occurrence wins, as in Java).
pub fn merge(layers: Vec<Vec<Entry>>) -> BTreeMap<String, Entry> {
    let mut merged = BTreeMap::new();
    for entry in layers.into_iter().flatten() {
        merged.insert(entry.key.clone(), entry);
    }
    merged
}

fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

/// Splits at the first unescaped `=`, `:` or white space; the separator and
/// the white space around it are dropped.
fn split_key_value(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'=' | b':' | b' ' | b'\t' | b'\x0c' => break,
            _ => i += 1,
        }
    }
    let i = i.min(bytes.len());
    let key = &line[..i];
    let rest = line[i..].trim_start_matches([' ', '\t', '\x0c']);
    let rest = rest.strip_prefix(['=', ':']).unwrap_or(rest);
    (key, rest.trim_start_matches([' ', '\t', '\x0c']))
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                let code = u32::from_str_radix(&hex, 16).ok().filter(|_| hex.len() == 4);
                match code.and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => return Err(format!("malformed \\u escape \"\\u{hex}\"")),
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(text: &str) -> Vec<(String, String, usize)> {
        parse("f", text).expect("valid").into_iter().map(|e| (e.key, e.value, e.at.line)).collect()
    }

    #[test]
    fn separators_comments_and_continuations() {
        let text = "# comment\n! also\n a = 1\nb:2\nc 3\nd=x \\\n   y\ne=\nf=p\\=q\\u0041\n";
        assert_eq!(
            kv(text),
            [
                ("a".into(), "1".into(), 3),
                ("b".into(), "2".into(), 4),
                ("c".into(), "3".into(), 5),
                ("d".into(), "x y".into(), 6),
                ("e".into(), String::new(), 8),
                ("f".into(), "p=qA".into(), 9),
            ]
        );
    }

    #[test]
    fn the_seed_pattern_keeps_its_spaces_and_colons() {
        let line = r#"log4j.appender.Q.layout.ConversionPattern={"timestamp" : "%d{yyyy/MM/dd-HH:mm:ss.SSS}Z", "message" : %m}%n"#;
        let entries = kv(line);
        assert_eq!(entries[0].0, "log4j.appender.Q.layout.ConversionPattern");
        assert_eq!(entries[0].1, r#"{"timestamp" : "%d{yyyy/MM/dd-HH:mm:ss.SSS}Z", "message" : %m}%n"#);
    }

    #[test]
    fn later_layers_replace_keys_and_bad_escapes_are_errors() {
        let base = parse("base", "a=1\nb=2").expect("valid");
        let over = parse("over", "b=3").expect("valid");
        let merged = merge(vec![base, over]);
        assert_eq!(merged["a"].value, "1");
        assert_eq!((merged["b"].value.as_str(), &*merged["b"].at.file), ("3", "over"));
        let errors = parse("f", "ok=1\nbad=\\u12G4").unwrap_err();
        assert_eq!(errors[0].to_string(), r#"f:2: malformed \u escape "\u12G4""#);
    }
}
