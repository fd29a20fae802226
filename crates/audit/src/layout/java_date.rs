//! Java `SimpleDateFormat` patterns (as written in log4j's `%d{...}`) turned
//! into chrono format strings, plus log4j's named formats (`ISO8601`,
//! `ABSOLUTE`, `DATE`). Letters chrono cannot render are refused with the
//! letter named, rather than printed wrong. Pure string work.

use chrono::format::{Item, StrftimeItems};

/// Converts a Java date pattern or a log4j named format to a chrono format.
///
/// # Errors
/// A message naming the unsupported letter or the malformed quote.
pub fn to_chrono(java: &str) -> Result<String, String> {
    let java = match java {
        "ISO8601" => "yyyy-MM-dd HH:mm:ss,SSS",
        "ABSOLUTE" => "HH:mm:ss,SSS",
        "DATE" => "dd MMM yyyy HH:mm:ss,SSS",
        other => other,
    };
    let chars: Vec<char> = java.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // '' is a quote; 'text' is literal text, in which '' is a quote too.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            loop {
                match (chars.get(i), chars.get(i + 1)) {
                    (None, _) => return Err("unterminated quote in date pattern".into()),
                    (Some('\''), Some('\'')) => {
                        out.push('\'');
                        i += 2;
                    }
                    (Some('\''), _) => {
                        i += 1;
                        break;
                    }
                    (Some(ch), _) => {
                        push_literal(&mut out, *ch);
                        i += 1;
                    }
                }
            }
            continue;
        }
        if !c.is_ascii_alphabetic() {
            push_literal(&mut out, c);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|x| **x == c).count();
        out.push_str(letter(c, run)?);
        i += run;
    }
    if StrftimeItems::new(&out).any(|item| matches!(item, Item::Error)) {
        return Err(format!("date pattern {java:?} cannot be rendered"));
    }
    Ok(out)
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

fn letter(c: char, run: usize) -> Result<&'static str, String> {
    Ok(match (c, run) {
        ('y', 2) => "%y",
        ('y', _) => "%Y",
        ('M', 1) => "%-m",
        ('M', 2) => "%m",
        ('M', 3) => "%b",
        ('M', _) => "%B",
        ('d', 1) => "%-d",
        ('d', _) => "%d",
        ('H', 1) => "%-H",
        ('H', _) => "%H",
        ('h', 1) => "%-I",
        ('h', _) => "%I",
        ('m', 1) => "%-M",
        ('m', _) => "%M",
        ('s', 1) => "%-S",
        ('s', _) => "%S",
        ('S', 3) => "%3f",
        ('E', 1..=3) => "%a",
        ('E', _) => "%A",
        ('a', _) => "%p",
        ('D', _) => "%j",
        ('u', _) => "%u",
        ('z', _) => "%Z",
        ('Z', _) => "%z",
        ('X', 1 | 2) => "%z",
        ('X', _) => "%:z",
        ('S', _) => return Err("milliseconds must be written SSS".into()),
        _ => return Err(format!("unsupported date letter '{c}'")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_the_usual_patterns() {
        assert_eq!(to_chrono("yyyy/MM/dd-HH:mm:ss.SSS").expect("ok"), "%Y/%m/%d-%H:%M:%S.%3f");
        assert_eq!(to_chrono("ISO8601").expect("ok"), "%Y-%m-%d %H:%M:%S,%3f");
        assert_eq!(to_chrono("'.'yyyy-MM-dd").expect("ok"), ".%Y-%m-%d");
        assert_eq!(to_chrono("'.'yyyy-MM-dd-HH").expect("ok"), ".%Y-%m-%d-%H");
        assert_eq!(to_chrono("EEE, d MMM yy h:mm a Z").expect("ok"), "%a, %-d %b %y %-I:%M %p %z");
        assert_eq!(to_chrono("HH 'o''clock' 100%").expect("ok"), "%H o'clock 100%%");
        assert_eq!(to_chrono("''").expect("ok"), "'");
    }

    #[test]
    fn refuses_what_it_cannot_render() {
        assert!(to_chrono("yyyy-Q").unwrap_err().contains("'Q'"));
        assert!(to_chrono("ss.S").unwrap_err().contains("SSS"));
        assert!(to_chrono("'open").unwrap_err().contains("unterminated"));
    }
}
