//! Reference profiles (docs/monitoring.md "Reference profiles"): what the
//! training data looked like, per feature and for the model's own
//! predictions, as the exporter stores it in the model file under
//! `referenceProfile`, or as the monitor builds it from a CSV file
//! (`--reference`). Read once per run; the drift of every window is
//! computed against it without re-reading anything.
//!
//! Owns reading and building profiles; it must not compute statistics
//! (`stattest`) or read records (`read`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::stattest::{Column, Numbers};

/// Whether a column is numeric or categorical.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    /// Numbers.
    Numeric,
    /// Text categories.
    Category,
}

/// One column of a profile.
#[derive(Debug, Clone)]
pub struct ColumnProfile {
    /// Its values (missing ones apart).
    pub column: Column,
    /// Missing values (null, NaN, infinite).
    pub missing: u64,
    /// The values are a seeded sample (more than 100,000 distinct values).
    pub sampled: bool,
}

impl ColumnProfile {
    /// Numeric or categorical.
    pub fn kind(&self) -> Kind {
        match self.column {
            Column::Numbers(_) => Kind::Numeric,
            Column::Categories(_) => Kind::Category,
        }
    }
}

/// A generation's reference: features by name, and its predictions.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Where it came from (a model file or a CSV file).
    pub source: String,
    /// Feature columns.
    pub features: BTreeMap<String, ColumnProfile>,
    /// The model's predictions on the same rows.
    pub prediction: Option<ColumnProfile>,
}

/// The profile as the exporter writes it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    features: BTreeMap<String, StoredColumn>,
    prediction: Option<StoredColumn>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE")]
enum StoredColumn {
    Numeric {
        values: Vec<f64>,
        counts: Vec<u64>,
        #[serde(default)]
        missing: u64,
        #[serde(default)]
        sampled: bool,
    },
    Category {
        values: Vec<String>,
        counts: Vec<u64>,
        #[serde(default)]
        missing: u64,
    },
}

impl StoredColumn {
    fn build(self) -> ColumnProfile {
        match self {
            StoredColumn::Numeric { values, counts, missing, sampled } => {
                let mut pairs: Vec<(f64, u64)> = values.into_iter().map(|v| v + 0.0).zip(counts).collect();
                pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
                ColumnProfile {
                    column: Column::Numbers(Numbers::from_sorted_pairs(pairs.into_iter())),
                    missing,
                    sampled,
                }
            }
            StoredColumn::Category { values, counts, missing } => {
                let mut map = BTreeMap::new();
                for (v, c) in values.into_iter().zip(counts) {
                    *map.entry(v).or_default() += c;
                }
                ColumnProfile { column: Column::Categories(map), missing, sampled: false }
            }
        }
    }
}

/// Errors reading a reference.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// A file cannot be read.
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{}: {why}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// The references of a run: each generation's own, or one given for all.
#[derive(Debug, Default)]
pub struct References {
    /// Profiles from the generations' model files.
    pub generations: BTreeMap<String, Profile>,
    /// `--reference`: used for every generation.
    pub given: Option<Profile>,
}

impl References {
    /// The reference of `generation`.
    pub fn of(&self, generation: &str) -> Option<&Profile> {
        self.given.as_ref().or_else(|| self.generations.get(generation))
    }

    /// Every profile.
    pub fn all(&self) -> impl Iterator<Item = &Profile> {
        self.given.iter().chain(self.generations.values())
    }

    /// The references of a service: every generation under `generations`
    /// (its model file for `endpoint`, or the first), or the CSV file
    /// `given` (its column types taken from the models where they say).
    ///
    /// # Errors
    /// When a file cannot be read or parsed.
    pub fn load(
        generations: Option<&Path>,
        endpoint: Option<&str>,
        given: Option<&Path>,
    ) -> Result<References, ReferenceError> {
        let mut out = References::default();
        let mut kinds = BTreeMap::new();
        if let Some(dir) = generations.filter(|d| d.is_dir()) {
            let entries =
                std::fs::read_dir(dir).map_err(|source| ReferenceError::Read { path: dir.to_path_buf(), source })?;
            for entry in entries.flatten() {
                let (Some(name), true) = (entry.file_name().to_str().map(String::from), entry.path().is_dir()) else {
                    continue;
                };
                let (k, profile) = from_generation(&entry.path(), endpoint)?;
                kinds.extend(k);
                if let Some(p) = profile {
                    out.generations.insert(name, p);
                }
            }
        }
        if let Some(path) = given {
            out.given = Some(from_csv(path, &kinds)?);
        }
        Ok(out)
    }
}

/// A generation's feature types and the profile stored in its model file
/// for `endpoint` (or its first endpoint); None when the model has none
/// (older exports).
///
/// # Errors
/// When the generation's files exist but cannot be read or parsed.
pub fn from_generation(
    folder: &Path,
    endpoint: Option<&str>,
) -> Result<(BTreeMap<String, Kind>, Option<Profile>), ReferenceError> {
    #[derive(Deserialize)]
    struct Generation {
        endpoints: Vec<Endpoint>,
    }
    #[derive(Deserialize)]
    struct Endpoint {
        id: String,
        model: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Model {
        #[serde(default)]
        features: Vec<Feature>,
        reference_profile: Option<Stored>,
    }
    #[derive(Deserialize)]
    struct Feature {
        name: String,
        #[serde(rename = "type")]
        kind: Kind,
    }
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).map_err(|source| ReferenceError::Read { path: path.clone(), source })
    };
    let path = folder.join("generation.json");
    let generation: Generation =
        serde_json::from_str(&read(path.clone())?).map_err(|e| ReferenceError::Invalid { path, why: e.to_string() })?;
    let Some(model) = generation
        .endpoints
        .iter()
        .filter(|e| e.model.is_some())
        .find(|e| endpoint.is_none_or(|want| want == e.id))
        .and_then(|e| e.model.clone())
    else {
        return Ok((BTreeMap::new(), None));
    };
    let path = folder.join(model);
    let model: Model = serde_json::from_str(&read(path.clone())?)
        .map_err(|e| ReferenceError::Invalid { path: path.clone(), why: e.to_string() })?;
    let kinds = model.features.iter().map(|f| (f.name.clone(), f.kind)).collect();
    Ok((
        kinds,
        model.reference_profile.map(|stored| Profile {
            source: path.display().to_string(),
            features: stored.features.into_iter().map(|(k, v)| (k, v.build())).collect(),
            prediction: stored.prediction.map(StoredColumn::build),
        }),
    ))
}

/// What pandas' `read_csv` reads as missing (its default `na_values`).
const MISSING: [&str; 17] = [
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "null",
];

/// A profile built from a CSV file with a header row: every column is a
/// feature, except `prediction`, the model's predictions. A column's type
/// is `kinds`' (the model's) when known, else numeric when every present
/// value is a number.
///
/// # Errors
/// When the file cannot be read or is not CSV.
pub fn from_csv(path: &Path, kinds: &BTreeMap<String, Kind>) -> Result<Profile, ReferenceError> {
    let invalid = |why: String| ReferenceError::Invalid { path: path.to_path_buf(), why };
    let mut reader = csv::Reader::from_path(path).map_err(|e| invalid(e.to_string()))?;
    let header: Vec<String> = reader.headers().map_err(|e| invalid(e.to_string()))?.iter().map(String::from).collect();
    let mut cells: Vec<Vec<String>> = vec![Vec::new(); header.len()];
    for (i, row) in reader.records().enumerate() {
        let row = row.map_err(|e| invalid(format!("row {}: {e}", i + 2)))?;
        for (k, cell) in row.iter().enumerate().take(header.len()) {
            cells[k].push(cell.to_owned());
        }
    }
    let mut profile = Profile { source: path.display().to_string(), ..Profile::default() };
    for (name, values) in header.into_iter().zip(cells) {
        let present: Vec<&String> = values.iter().filter(|v| !MISSING.contains(&v.as_str())).collect();
        let numeric = match kinds.get(&name) {
            Some(k) => *k == Kind::Numeric,
            None => present.iter().all(|v| v.trim().parse::<f64>().is_ok()),
        };
        let mut missing = (values.len() - present.len()) as u64;
        let column = if numeric {
            let numbers: Vec<f64> =
                present.iter().filter_map(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite()).collect();
            missing += present.len() as u64 - numbers.len() as u64;
            Column::Numbers(Numbers::from_values(numbers.into_iter().map(|v| v + 0.0).collect()))
        } else {
            let mut map = BTreeMap::new();
            for v in present {
                *map.entry(v.clone()).or_default() += 1;
            }
            Column::Categories(map)
        };
        let column = ColumnProfile { column, missing, sampled: false };
        if name == "prediction" {
            profile.prediction = Some(column);
        } else {
            profile.features.insert(name, column);
        }
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_profile_reads_with_its_sample_mark_and_merged_repeats() {
        let stored: Stored = serde_json::from_str(
            r#"{"rows": 6, "features": {
                "x": {"type": "NUMERIC", "values": [2.0, -0.0, 0.0], "counts": [1, 2, 3], "missing": 1, "sampled": true},
                "c": {"type": "CATEGORY", "values": ["b", "a"], "counts": [4, 2]}}}"#,
        )
        .expect("profile");
        let built: BTreeMap<String, ColumnProfile> = stored.features.into_iter().map(|(k, v)| (k, v.build())).collect();
        let x = &built["x"];
        assert!(x.sampled && x.missing == 1 && x.kind() == Kind::Numeric);
        assert_eq!(x.column, Column::Numbers(Numbers { values: vec![0.0, 2.0], counts: vec![5, 1] }));
        let c = &built["c"];
        assert_eq!(c.column.n(), 6);
        assert!(!c.sampled && c.kind() == Kind::Category);
    }
}
