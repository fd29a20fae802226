//! One query record's `features` as drift reads them: a hand scanner for
//! the common flat object of scalars (and serde for anything else), plain
//! decimals by Clinger's fast path, and the node's view of a value as a
//! number or a category. Owns parsing only; what is kept is `drift`'s.

use std::borrow::Cow;

use serde::Deserialize;

/// One feature value as a record carries it.
#[derive(Debug)]
pub(super) enum Scalar<'a> {
    Number(f64),
    Integer(i64),
    Text(Cow<'a, str>),
    Absent,
}

/// A record's `features`, in its order.
pub(super) type Features<'a> = super::read::Ordered<'a, Scalar<'a>>;

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Scalar<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a feature value")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Integer(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Scalar<'a>, E> {
                Ok(i64::try_from(v).map_or(Scalar::Number(v as f64), Scalar::Integer))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Text(Cow::Borrowed(if v { "true" } else { "false" })))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Text(Cow::Owned(v.to_owned())))
            }
            fn visit_unit<E>(self) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Absent)
            }
            fn visit_none<E>(self) -> Result<Scalar<'a>, E> {
                Ok(Scalar::Absent)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut a: A) -> Result<Scalar<'a>, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Absent)
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<Scalar<'a>, M::Error> {
                while m.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
                Ok(Scalar::Absent)
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// Powers of ten an f64 holds exactly.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20,
    1e21, 1e22,
];

/// A JSON number's text: an integer when it has no fraction or exponent
/// (and fits), else by Clinger's fast path in the same pass (a mantissa
/// below 2^53 over an exact power of ten is one correctly rounded
/// division, so the result is the exact parse's), else by `str::parse`.
/// None when it is not a number.
fn number_text(t: &str) -> Option<Scalar<'_>> {
    let b = t.as_bytes();
    let neg = b.first() == Some(&b'-');
    let (mut m, mut n, mut k, mut dot, mut plain) = (0u64, 0u32, 0usize, false, true);
    for c in &b[usize::from(neg)..] {
        match c {
            b'0'..=b'9' if n < 18 => {
                m = m * 10 + u64::from(c - b'0');
                n += 1;
                k += usize::from(dot);
            }
            b'.' if !dot => dot = true,
            _ => plain = false,
        }
    }
    if plain && n > 0 && !dot {
        let i = m as i64;
        return Some(Scalar::Integer(if neg { -i } else { i }));
    }
    if plain && n > 0 && m < 1 << 53 && k < POW10.len() {
        let v = m as f64 / POW10[k];
        return Some(Scalar::Number(if neg { -v } else { v }));
    }
    if t.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
        return t.parse().map(Scalar::Integer).or_else(|_| t.parse().map(Scalar::Number)).ok();
    }
    t.parse().ok().map(Scalar::Number)
}

/// Calls `each(position, key, value)` for the members of a flat JSON object
/// of scalars (the common `features`), scanned by hand in one pass:
/// serde's exact float parsing (`float_roundtrip`, which the rest of the
/// node needs) made parsing features most of drift's cost. `Err(k)` when
/// member `k` has an escaped string or a nested value (or the text is not
/// an object): members before `k` were given, and the caller reads the
/// rest with serde.
pub(super) fn each_flat<'t>(text: &'t str, mut each: impl FnMut(usize, &'t str, Scalar<'t>)) -> Result<(), usize> {
    let b = text.as_bytes();
    let mut i = 0;
    let ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let string = |i: &mut usize| -> Option<&'t str> {
        let start = *i + 1;
        let len = b.get(start..)?.iter().position(|c| *c == b'"' || *c == b'\\')?;
        if b[start + len] != b'"' {
            return None;
        }
        *i = start + len + 1;
        text.get(start..start + len)
    };
    ws(&mut i);
    if b.get(i) != Some(&b'{') {
        return Err(0);
    }
    i += 1;
    ws(&mut i);
    if b.get(i) == Some(&b'}') {
        return Ok(());
    }
    let mut pos = 0;
    loop {
        let member = |i: &mut usize| -> Option<(&'t str, Scalar<'t>)> {
            ws(i);
            if b.get(*i) != Some(&b'"') {
                return None;
            }
            let key = string(i)?;
            ws(i);
            if b.get(*i) != Some(&b':') {
                return None;
            }
            *i += 1;
            ws(i);
            let value = match b.get(*i)? {
                b'"' => Scalar::Text(Cow::Borrowed(string(i)?)),
                b'n' if b[*i..].starts_with(b"null") => {
                    *i += 4;
                    Scalar::Absent
                }
                b't' if b[*i..].starts_with(b"true") => {
                    *i += 4;
                    Scalar::Text(Cow::Borrowed("true"))
                }
                b'f' if b[*i..].starts_with(b"false") => {
                    *i += 5;
                    Scalar::Text(Cow::Borrowed("false"))
                }
                c if *c == b'-' || c.is_ascii_digit() => {
                    let start = *i;
                    while *i < b.len() && matches!(b[*i], b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E') {
                        *i += 1;
                    }
                    number_text(text.get(start..*i)?)?
                }
                _ => return None,
            };
            ws(i);
            match b.get(*i)? {
                b',' | b'}' => Some((key, value)),
                _ => None,
            }
        };
        let Some((key, value)) = member(&mut i) else { return Err(pos) };
        each(pos, key, value);
        pos += 1;
        let end = b[i] == b'}';
        i += 1;
        if end {
            return Ok(());
        }
    }
}

/// A category as the node sees one: text (numbers as Python's `repr`
/// writes them, as the exporter labels categories).
pub(super) fn category_text(s: &Scalar<'_>) -> Option<String> {
    match s {
        Scalar::Text(t) => Some(t.to_string()),
        Scalar::Integer(i) => Some(i.to_string()),
        Scalar::Number(v) if v.fract() == 0.0 && v.abs() < 1e16 => Some(format!("{v:.1}")),
        Scalar::Number(v) => Some(v.to_string()),
        Scalar::Absent => None,
    }
}

pub(super) fn number(s: &Scalar<'_>) -> Option<f64> {
    let v = match s {
        Scalar::Number(v) => *v,
        Scalar::Integer(i) => *i as f64,
        Scalar::Text(t) => t.trim().parse().ok()?,
        Scalar::Absent => return None,
    };
    // -0.0 and 0.0 are one value, as pandas counts them.
    v.is_finite().then_some(v + 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(text: &str) -> Vec<(String, String)> {
        let f: Features<'_> = serde_json::from_str(text).expect("json");
        f.0.iter().map(|(k, v)| (k.to_string(), format!("{v:?}"))).collect()
    }

    fn hand(text: &str) -> (Vec<(String, String)>, Result<(), usize>) {
        let mut out = Vec::new();
        let done = each_flat(text, |_, k, v| out.push((k.to_owned(), format!("{v:?}"))));
        (out, done)
    }

    #[test]
    fn the_hand_scanner_reads_what_serde_reads_or_says_where_it_stopped() {
        for text in [
            r#"{"a": 1.5, "b": "x", "c": null, "d": -0.0, "e": 12, "f": true, "g": 1e-7, "h": 123456789012345678901}"#,
            r#" { } "#,
            r#"{"a":0.1,"b":-3,"c":-9223372036854775808,"d":12345678901234567890}"#,
        ] {
            assert_eq!(hand(text), (serde(text), Ok(())), "{text}");
        }
        for (text, at) in [
            (r#"{"a\n": 1}"#, 0),
            (r#"{"z": 1, "a": "x\"y"}"#, 1),
            (r#"{"a": [1]}"#, 0),
            (r#"{"z": 2, "y": 3, "a": {"b": 1}}"#, 2),
            (r#"{"a" 1}"#, 0),
            ("null", 0),
        ] {
            let (given, done) = hand(text);
            assert_eq!((given.len(), done), (at, Err(at)), "{text}");
        }
        for t in ["0.1", "-0.0", "123.456", "0.000123", "99999999999999.99", "1.7976931348623157", "5e-324", "1.", "-7"]
        {
            let want = t.parse::<f64>().expect("number");
            match number_text(t) {
                Some(Scalar::Number(v)) => assert_eq!(v.to_bits(), want.to_bits(), "{t}"),
                Some(Scalar::Integer(i)) => assert_eq!(i as f64, want, "{t}"),
                other => panic!("{t}: {other:?}"),
            }
        }
    }
}
