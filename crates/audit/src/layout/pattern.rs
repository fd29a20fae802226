//! log4j's `PatternLayout`: parsing a `ConversionPattern` once, then rendering
//! records with it. Supported: `%d` / `%d{java pattern}` (and `ISO8601`,
//! `ABSOLUTE`, `DATE`), `%c` / `%c{n}` (the dotted logger name, or its last n
//! parts), `%p`, `%m`, `%n`, `%t`, `%r`, `%X{key}`, `%%`, with log4j's
//! modifiers: `%-5p` (left-align in 5), `%10c` (right-align), `%.20c`
//! (keep the last 20 characters). Anything else is refused at parse time.

use std::fmt::Write as _;

use chrono::format::{Item, StrftimeItems};
use log4rs::encode::{Encode, Write};

use super::{dotted, java_date, level_name};
use crate::record_context::RecordContext;

/// A chrono format parsed once (formatting with a `&str` re-parses it for
/// every record).
#[derive(Debug, Clone, PartialEq)]
struct DateFormat(Vec<Item<'static>>);

impl Eq for DateFormat {}

thread_local! {
    /// The last date rendered on this thread: (format identity, millisecond, text).
    /// Under load many records share a millisecond; formatting a date is the
    /// costliest part of rendering a line.
    static LAST_DATE: std::cell::RefCell<(usize, i64, String)> = const { std::cell::RefCell::new((0, i64::MIN, String::new())) };
    /// Dotted forms of the log4rs targets seen on this thread.
    static DOTTED: std::cell::RefCell<std::collections::HashMap<String, String>> = std::cell::RefCell::new(std::collections::HashMap::new());
}

impl DateFormat {
    fn render(&self, out: &mut String, context: &RecordContext) {
        let time = context.local_time();
        let millis = time.timestamp_millis();
        let id = self.0.as_ptr() as usize;
        LAST_DATE.with(|cell| {
            let mut last = cell.borrow_mut();
            if last.0 != id || last.1 != millis {
                last.2.clear();
                let _ = write!(last.2, "{}", time.format_with_items(self.0.iter()));
                (last.0, last.1) = (id, millis);
            }
            out.push_str(&last.2);
        });
    }
}

/// Runs `f` with the dotted (log4j) form of a log4rs target, cached per thread.
fn with_dotted(target: &str, f: impl FnOnce(&str)) {
    if !target.contains("::") {
        return f(target);
    }
    DOTTED.with(|cell| {
        let mut cache = cell.borrow_mut();
        if !cache.contains_key(target) && cache.len() < 1024 {
            cache.insert(target.to_owned(), dotted(target).into_owned());
        }
        match cache.get(target) {
            Some(name) => f(name),
            None => f(&dotted(target)),
        }
    });
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Conversion {
    Literal(String),
    Date(DateFormat),
    Logger(Option<usize>),
    Level,
    Message,
    Newline,
    Thread,
    Relative,
    Mdc(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    conversion: Conversion,
    min: usize,
    max: Option<usize>,
    left: bool,
}

/// A parsed conversion pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternLayout {
    parts: Vec<Part>,
}

impl PatternLayout {
    /// Parses a log4j conversion pattern.
    ///
    /// # Errors
    /// A message naming the unsupported conversion or the malformed part.
    pub fn parse(pattern: &str) -> Result<PatternLayout, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut i = 0;
        while i < chars.len() {
            if chars[i] != '%' {
                literal.push(chars[i]);
                i += 1;
                continue;
            }
            i += 1;
            if chars.get(i) == Some(&'%') {
                literal.push('%');
                i += 1;
                continue;
            }
            if !literal.is_empty() {
                parts.push(Part {
                    conversion: Conversion::Literal(std::mem::take(&mut literal)),
                    min: 0,
                    max: None,
                    left: false,
                });
            }
            let left = chars.get(i) == Some(&'-');
            if left {
                i += 1;
            }
            let min = number(&chars, &mut i).unwrap_or(0);
            let max = if chars.get(i) == Some(&'.') {
                i += 1;
                Some(number(&chars, &mut i).ok_or("a '.' in a conversion must be followed by a width")?)
            } else {
                None
            };
            let c = *chars.get(i).ok_or("the pattern ends with an unfinished conversion '%'")?;
            i += 1;
            let option = if chars.get(i) == Some(&'{') {
                let end = chars[i..].iter().position(|c| *c == '}').ok_or(format!("unclosed '{{' after %{c}"))?;
                let text: String = chars[i + 1..i + end].iter().collect();
                i += end + 1;
                Some(text)
            } else {
                None
            };
            let conversion = match c {
                'd' => {
                    let format = java_date::to_chrono(option.as_deref().unwrap_or("ISO8601"))?;
                    let items = StrftimeItems::new(&format).parse_to_owned().map_err(|e| format!("{e}"))?;
                    Conversion::Date(DateFormat(items))
                }
                'c' => Conversion::Logger(match option {
                    None => None,
                    Some(n) => {
                        Some(n.parse().ok().filter(|n| *n > 0).ok_or(format!("%c{{{n}}} needs a positive number"))?)
                    }
                }),
                'p' => Conversion::Level,
                'm' => Conversion::Message,
                'n' => Conversion::Newline,
                't' => Conversion::Thread,
                'r' => Conversion::Relative,
                'X' => Conversion::Mdc(option.ok_or("%X needs a key: %X{key}")?),
                other => {
                    return Err(format!("unsupported conversion %{other} (supported: %d %c %p %m %n %t %r %X %%)"));
                }
            };
            parts.push(Part { conversion, min, max, left });
        }
        if !literal.is_empty() {
            parts.push(Part { conversion: Conversion::Literal(literal), min: 0, max: None, left: false });
        }
        Ok(PatternLayout { parts })
    }

    /// Renders a record into `out`.
    pub fn render(&self, out: &mut String, record: &log::Record<'_>, context: &RecordContext) {
        let mut field = String::new();
        for part in &self.parts {
            let plain = part.min == 0 && part.max.is_none();
            match &part.conversion {
                Conversion::Literal(text) => {
                    out.push_str(text);
                    continue;
                }
                // The message is most of a line: write it straight through.
                Conversion::Message if plain => {
                    let _ = write!(out, "{}", record.args());
                    continue;
                }
                _ => {}
            }
            field.clear();
            match &part.conversion {
                Conversion::Literal(_) => {}
                Conversion::Date(format) => format.render(&mut field, context),
                Conversion::Logger(n) => with_dotted(record.target(), |name| {
                    field.push_str(match n {
                        None => name,
                        Some(n) => last_parts(name, *n),
                    });
                }),
                Conversion::Level => field.push_str(level_name(record.level())),
                Conversion::Message => {
                    let _ = write!(field, "{}", record.args());
                }
                Conversion::Newline => field.push('\n'),
                Conversion::Thread => field.push_str(&context.thread),
                Conversion::Relative => {
                    let _ = write!(field, "{}", context.millis_since_start());
                }
                Conversion::Mdc(_) => {}
            }
            pad(out, &field, part);
        }
    }
}

impl Encode for PatternLayout {
    fn encode(&self, w: &mut dyn Write, record: &log::Record<'_>) -> anyhow::Result<()> {
        let mut out = String::with_capacity(256);
        RecordContext::with_current(|context| self.render(&mut out, record, context));
        w.write_all(out.as_bytes())?;
        Ok(())
    }
}

fn number(chars: &[char], i: &mut usize) -> Option<usize> {
    let start = *i;
    while chars.get(*i).is_some_and(char::is_ascii_digit) {
        *i += 1;
    }
    (start < *i).then(|| chars[start..*i].iter().collect::<String>().parse().ok()).flatten()
}

/// The last `n` dot-separated parts of `name`.
fn last_parts(name: &str, n: usize) -> &str {
    match name.rmatch_indices('.').nth(n - 1) {
        Some((i, _)) => &name[i + 1..],
        None => name,
    }
}

/// log4j's field formatting: truncate from the left to `max`, pad to `min`.
fn pad(out: &mut String, field: &str, part: &Part) {
    let len = field.chars().count();
    let field = match part.max {
        Some(max) if len > max => {
            let skip = field.char_indices().nth(len - max).map_or(0, |(i, _)| i);
            &field[skip..]
        }
        _ => field,
    };
    let len = field.chars().count();
    let padding = part.min.saturating_sub(len);
    if !part.left {
        out.extend(std::iter::repeat_n(' ', padding));
    }
    out.push_str(field);
    if part.left {
        out.extend(std::iter::repeat_n(' ', padding));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(pattern: &str, target: &str, level: log::Level, message: &str) -> String {
        let layout = PatternLayout::parse(pattern).expect("valid pattern");
        let context = RecordContext::fixed("worker-1", "2026-11-22T10:15:02.123Z");
        let mut out = String::new();
        let args = format_args!("{message}");
        let record = log::Record::builder().target(target).level(level).args(args).build();
        layout.render(&mut out, &record, &context);
        out
    }

    #[test]
    fn renders_conversions_with_widths_and_alignment() {
        let r =
            render("[%-5p] [%5p] [%c] [%c{2}] [%.5c] %t: %m%n", "dku::apinode::audit::queries", log::Level::Info, "hi");
        assert_eq!(r, "[INFO ] [ INFO] [dku.apinode.audit.queries] [audit.queries] [eries] worker-1: hi\n");
        assert_eq!(render("%10.3m|%-4m|%%", "x", log::Level::Warn, "abcdef"), "       def|abcdef|%");
        assert_eq!(render("%X{user}|%c{9}", "a::b", log::Level::Warn, ""), "|a.b");
    }

    #[test]
    fn renders_dates_in_java_patterns() {
        // The fixed context time is UTC; render in UTC for a stable test.
        let r = render("%d{yyyy/MM/dd-HH:mm:ss.SSS}Z", "x", log::Level::Info, "");
        assert_eq!(r.len(), "2026/11/22-10:15:02.123Z".len(), "{r}");
        assert!(r.starts_with("2026/11/2") && r.ends_with("Z"), "{r}");
        assert!(render("%d", "x", log::Level::Info, "").contains(",123"), "ISO8601 uses a comma");
    }

    #[test]
    fn refuses_unknown_or_malformed_conversions() {
        for (bad, needle) in [
            ("%L", "unsupported conversion %L"),
            ("%d{yyyy", "unclosed"),
            ("%X", "needs a key"),
            ("%c{0}", "positive"),
            ("abc%", "unfinished"),
            ("%d{qq}", "unsupported date letter"),
            ("%.p", "width"),
        ] {
            let e = PatternLayout::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
