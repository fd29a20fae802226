//! Accumulated validation problems. Loading a service reports every problem of
//! every file at once, each naming its file and field, instead of stopping at
//! the first; this module owns that list and its wording, nothing else.

use std::fmt;

/// One problem: where (file and field path) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `services/churn/service.json: mapping.entries[1].proba`, or a field path
    /// alone while the file is not known yet.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() { f.write_str(&self.message) } else { write!(f, "{}: {}", self.path, self.message) }
    }
}

/// A list of problems, built by validation code that keeps going after the first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Problems {
    items: Vec<Problem>,
}

impl Problems {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.items.push(Problem { path: path.into(), message: message.into() });
    }

    /// Moves every problem of `other` here, prefixing its paths with `prefix`
    /// (a file name, or a parent field followed by '.').
    pub fn absorb(&mut self, prefix: &str, other: Problems) {
        for p in other.items {
            let path = match (prefix.is_empty(), p.path.is_empty()) {
                (true, _) => p.path,
                (false, true) => prefix.to_owned(),
                (false, false) if prefix.ends_with(['.', '/']) => format!("{prefix}{}", p.path),
                (false, false) => format!("{prefix}: {}", p.path),
            };
            self.items.push(Problem { path, message: p.message });
        }
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The problems, in the order they were found.
    pub fn items(&self) -> &[Problem] {
        &self.items
    }

    /// `Ok(value)` when no problem was recorded.
    ///
    /// # Errors
    /// The list itself when it is not empty.
    pub fn into_result<T>(self, value: T) -> Result<T, Problems> {
        if self.is_empty() { Ok(value) } else { Err(self) }
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absorb_prefixes_files_and_fields() {
        let mut inner = Problems::new();
        inner.push("params.intercept", "missing");
        inner.push("", "not JSON");
        let mut outer = Problems::new();
        outer.absorb("gen/model.json", inner.clone());
        outer.absorb("endpoints[0].", inner);
        let text: Vec<String> = outer.items().iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "gen/model.json: params.intercept: missing",
                "gen/model.json: not JSON",
                "endpoints[0].params.intercept: missing",
                "endpoints[0].: not JSON",
            ]
        );
    }
}
